// uwcore: read the whole request body (64 KiB in the bench) and send it back.
export async function application(env, start_response) {
  const body = await env['wsgi.input'].read();
  start_response('200 OK', [['Content-Type', 'application/octet-stream'], ['Content-Length', String(body.length)]]);
  return [body];
}
