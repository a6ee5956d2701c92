// uwcore: the hello world every server answers with the same bytes (11-byte body, Content-Length).
export function application(env, start_response) {
  start_response('200 OK', [['Content-Type', 'text/plain'], ['Content-Length', '11']]);
  return ['Hello World'];
}
