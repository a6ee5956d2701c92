// The JavaScript twin of the seed's wsgi_chunked_output.py: an iterable yielding two lines, no Content-Length.
class TestIter {
  *[Symbol.iterator]() {
    const lines = [Buffer.from('line 1\n'), Buffer.from('line 2\n')];
    for (const line of lines) yield line;
  }
}

export function application(environ, start_response) {
  const status = '200 OK';
  const response_headers = [['Content-type', 'text/plain']];
  start_response(status, response_headers);
  return new TestIter();
}
