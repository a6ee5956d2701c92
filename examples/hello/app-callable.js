// The same application exported as `app`: run it with --callable app.
export function app(env, start_response) {
  const data = 'Hello World';
  start_response('200 OK', [
    ['Content-Type', 'text/plain'],
    ['Content-Length', String(Buffer.byteLength(data))],
  ]);
  return [data];
}
