// The JavaScript twin of the seed's wsgi_test.py: Hello World behind nginx.
export function application(env, start_response) {
  const data = 'Hello World';
  start_response('200 OK', [
    ['Content-Type', 'text/plain'],
    ['Content-Length', String(Buffer.byteLength(data))],
  ]);
  return [data];
}
