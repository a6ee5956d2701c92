// The `http11` plugin: --http11-socket, uWSGI's persistent-connection HTTP socket, on the `http` plugin's
// listener (node's llhttp parser, the same hardening and limits). Unlike uWSGI's, it honours Connection: close,
// frames responses without Content-Length (chunked on HTTP/1.1, close-delimited on HTTP/1.0), answers
// pipelined requests in order and never pins a worker to an idle connection.
import { definePlugin, type Address, type ListenerHandle, type ListenerInfo, type ServerHandle } from '../../sdk/index.js';

interface HttpApi {
  listenHttp(listener: ListenerInfo, server: ServerHandle, timeoutS?: number): Promise<ListenerHandle>;
}

export default definePlugin({
  name: 'http11',
  version: '1.0.0',
  sdk: '^1.0.0',
  description: 'persistent HTTP/1.1 sockets (--http11-socket), on the http plugin\'s listener',
  requires: ['http'],
  options: [
    { name: 'http11-socket', type: 'addr', multiple: true, arg: 'ADDR', help: 'serve HTTP/1.1 with persistent connections on ADDR (keep-alive, pipelining, Expect: 100-continue, chunked bodies both ways)' },
  ],
  setup(api) {
    const http = api.use<HttpApi>('http');
    api.protocols.register('http11', { listen: (l, s) => http.listenHttp(l, s) });
    for (const a of (api.options['http11-socket'] as Address[])) api.listen('http11-socket', 'http11', a, { keepAlive: true });
  },
});
