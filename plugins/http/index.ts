// The `http` plugin: --http and --http-socket listeners on node:http (llhttp, hardened against request
// smuggling). --http keeps connections alive (HTTP/1.1 semantics); --http-socket answers one request per
// connection, as uWSGI's does.
import http from 'node:http';
import net, { type Socket } from 'node:net';
import { definePlugin, type Address, type ListenerHandle, type ListenerInfo, type ServerHandle, type Wire } from '../../sdk/index.js';

const HOST_BODY = 'Bad Request: invalid or duplicated Host header\n';
const BAD_HOST = /[^A-Za-z0-9.\-_~!$&'()*+;=%:\[\]]/;

function onSocketClose(this: Socket & { __uwSrv?: { n: number } }): void {
  const c = this.__uwSrv;
  if (c) c.n--;
}

/** Open one node:http listener that feeds the core. Shared by http and http11. */
export function listenHttp(listener: ListenerInfo, server: ServerHandle, timeoutS: number): Promise<ListenerHandle> {
  const counter = { n: 0 };
  const srv = http.createServer({
    maxHeaderSize: server.bufferSize,
    headersTimeout: Math.round(timeoutS * 1000),
    requestTimeout: 0,
    keepAliveTimeout: Math.min(Math.round(timeoutS * 1000), 5000),
    noDelay: true,
    requireHostHeader: true,
  }, (req, res) => {
    const env = server.httpEnv(req, listener);
    const host = env.HTTP_HOST as string | undefined;
    // RFC 9112 §3.2: exactly one valid Host (node:http does not refuse duplicates)
    if (host !== undefined && (host.includes(',') || host.length === 0 || BAD_HOST.test(host))) {
      res.shouldKeepAlive = false;
      res.writeHead(400, 'Bad Request', [['Content-Type', 'text/plain'], ['Content-Length', String(HOST_BODY.length)], ['Connection', 'close']]);
      res.end(HOST_BODY);
      return;
    }
    server.dispatch(env, req, res as unknown as Wire, listener);
  });
  srv.on('connection', (s: Socket & { __uwSrv?: { n: number } }) => {
    counter.n++;
    s.__uwSrv = counter;
    s.once('close', onSocketClose);
  });
  srv.on('clientError', (err: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket: Socket) => {
    if (!socket.writable || (err.code === 'ECONNRESET')) { socket.destroy(); return; }
    let status = 400;
    if (err.code === 'HPE_HEADER_OVERFLOW') status = 431;
    else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') status = 408;
    else if (err.code === 'HPE_URI_TOO_LONG') status = 414;
    const text = status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : status === 414 ? 'URI Too Long' : 'Bad Request';
    server.log.debug({ code: err.code, status }, `malformed request refused: ${err.message}`);
    socket.end(`HTTP/1.1 ${status} ${text}\r\nContent-Type: text/plain\r\nContent-Length: ${text.length + 1}\r\nConnection: close\r\n\r\n${text}\n`);
    socket.destroySoon?.();
  });
  const a = listener.address;
  const backlog = (server.options.listen as number | undefined) ?? 1024;
  return new Promise((resolve, reject) => {
    const onError = (e: Error) => reject(e);
    srv.once('error', onError);
    const done = () => {
      srv.removeListener('error', onError);
      srv.on('error', (e) => server.log.error({ err: e }, 'listener error'));
      resolve({
        // stop accepting only: node's http close() would also drop idle connections at once, including ones
        // just accepted whose request is still on its way (the core closes idle connections itself)
        close: () => new Promise<void>((r) => net.Server.prototype.close.call(srv, () => r())),
        closeIdle: () => srv.closeIdleConnections(),
        connections: () => counter.n,
        destroyAll: () => srv.closeAllConnections(),
      });
    };
    if (a.kind === 'tcp') srv.listen({ host: a.host, port: a.port, backlog }, done);
    else srv.listen({ path: a.path, backlog }, done);
  });
}

export default definePlugin({
  name: 'http',
  version: '1.0.0',
  sdk: '^1.0.0',
  description: 'HTTP/1.0 and 1.1 listeners on node:http (--http, --http-socket)',
  options: [
    { name: 'http', type: 'addr', multiple: true, arg: 'ADDR', help: 'serve HTTP on ADDR with keep-alive (:8000, 8000 and host:port are TCP; other values without a colon are UNIX socket paths)' },
    { name: 'http-socket', type: 'addr', multiple: true, arg: 'ADDR', help: 'serve HTTP on ADDR, one request per connection (uWSGI\'s --http-socket)' },
    { name: 'http-timeout', type: 'seconds', default: 60, min: 0.1, arg: 'S', help: 'close a connection whose request headers take longer than S seconds; idle keep-alive connections close after min(S, 5) seconds' },
  ],
  setup(api) {
    const timeout = api.options['http-timeout'] as number;
    api.protocols.register('http', { listen: (l, s) => listenHttp(l, s, timeout) });
    for (const a of (api.options.http as Address[])) api.listen('http', 'http', a, { keepAlive: true });
    for (const a of (api.options['http-socket'] as Address[])) api.listen('http-socket', 'http', a, { keepAlive: false });
    return { listenHttp };
  },
});
