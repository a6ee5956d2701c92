// The JavaScript twin of the seed's wsgi_chunked_input.py: write the (de-chunked) request body to test.json.
import fs from 'node:fs';

export async function application(environ, start_response) {
  const input = environ['wsgi.input'];
  const out = fs.createWriteStream('test.json');
  for await (const chunk of input) {
    if (!out.write(chunk)) await new Promise((r) => out.once('drain', r));
  }
  await new Promise((resolve, reject) => out.end((err) => (err ? reject(err) : resolve())));
  const body = 'Hello World\n';
  start_response('200 OK', [['Content-Type', 'text/plain'], ['Content-Length', String(body.length)]]);
  return [body];
}
