# The Python WSGI twins of the uwcore bench apps, for uWSGI (and gunicorn for hello).
# Pick one with --callable (uWSGI) or module:name (gunicorn).
CHUNK = b'x' * 1024
HELLO = [b'Hello World']
HELLO_HEADERS = [('Content-Type', 'text/plain'), ('Content-Length', '11')]


def hello(environ, start_response):
    start_response('200 OK', HELLO_HEADERS)
    return HELLO


def chunked(environ, start_response):
    # no Content-Length: uWSGI needs `route-run = chunked:` to frame this on a keep-alive socket
    start_response('200 OK', [('Content-Type', 'text/plain')])
    for _ in range(16):
        yield CHUNK


def echo(environ, start_response):
    body = environ['wsgi.input'].read()
    start_response('200 OK', [('Content-Type', 'application/octet-stream'), ('Content-Length', str(len(body)))])
    return [body]


_n = [0]


def cache(environ, start_response):
    import uwsgi
    k = 'k%d' % (_n[0] & 255)
    _n[0] += 1
    uwsgi.cache_get(k)
    uwsgi.cache_update(k, b'Hello World')
    start_response('200 OK', HELLO_HEADERS)
    return HELLO


try:
    import uwsgi as _uwsgi
    if hasattr(_uwsgi, 'spool'):
        _uwsgi.spooler = lambda env: _uwsgi.SPOOL_OK
except ImportError:
    pass


def spool(environ, start_response):
    import uwsgi
    uwsgi.spool({b'n': b'1'})
    start_response('200 OK', HELLO_HEADERS)
    return HELLO
