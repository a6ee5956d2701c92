// The JavaScript twin of the seed's wsgi_range.py: answer a Range request from application code.
// (Static files under check-static never reach it: the static plugin answers them first.)
import fs from 'node:fs';

function parseRange(header) {
  const m = /^bytes=(\d+)-(\d+)$/.exec(header ?? '');
  return m ? [Number(m[1]), Number(m[2]) + 1] : null; // [start, end) like werkzeug
}

export async function application(environ, start_response) {
  const range = parseRange(environ.HTTP_RANGE);
  if (!range) {
    start_response('416 Range Not Satisfiable', [['Content-Type', 'text/plain']]);
    return ['send a Range: bytes=START-END header\n'];
  }
  const [start, end] = range;
  const fh = await fs.promises.open(new URL('./static/large-file.json', import.meta.url));
  try {
    const data = Buffer.alloc(end - start);
    const { bytesRead } = await fh.read(data, 0, data.length, start);
    start_response('200 OK', [['Content-type', 'application/json']]);
    return [data.subarray(0, bytesRead)];
  } finally {
    await fh.close();
  }
}
