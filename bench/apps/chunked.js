// uwcore: a streamed body of 16 chunks of 1 KiB without Content-Length (chunked on HTTP/1.1 keep-alive).
const CHUNK = Buffer.alloc(1024, 'x');
export function application(env, start_response) {
  start_response('200 OK', [['Content-Type', 'text/plain']]);
  return (function* () { for (let i = 0; i < 16; i++) yield CHUNK; })();
}
