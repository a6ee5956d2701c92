// The JavaScript twin of the seed's wsgi_test.py.
export function application(env, start_response) {
  const data = 'Hello World';
  const status = '200 OK';
  const response_headers = [
    ['Content-Type', 'text/plain'],
    ['Content-Length', String(Buffer.byteLength(data))],
  ];
  start_response(status, response_headers);
  return [data];
}
