// The JavaScript twin of the seed's wsgi_chunked_output.py: an iterable body without Content-Length.
class TestIter {
  *[Symbol.iterator]() {
    const lines = ['line 1\n', 'line 2\n'];
    for (const line of lines) yield line;
  }
}

export function application(environ, start_response) {
  start_response('200 OK', [['Content-type', 'text/plain']]);
  return new TestIter();
}
