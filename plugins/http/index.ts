// The `http` plugin: --http and --http-socket listeners with node's HTTP parser (llhttp, hardened against
// request smuggling). --http keeps connections alive (HTTP/1.1 semantics) on node:http; --http-socket answers
// one request per connection, as uWSGI's does, on lean sockets (socket.ts).
import { Buffer } from 'node:buffer';
import http from 'node:http';
import net, { type Socket } from 'node:net';
import { classify, FORBIDDEN_TRAILERS, HOST_BODY, validHost } from './common.js';
import { leanHttpAvailable, listenLeanHttp } from './lean.js';
import { definePlugin, STATUS_TEXT, type Address, type ListenerHandle, type ListenerInfo, type ServerHandle, type Wire } from '../../sdk/index.js';

type HttpSocket = Socket & {
  _httpMessage?: (http.ServerResponse & { req?: http.IncomingMessage }) | null;
};

/**
 * What the --http-timeout sweep knows of one connection: bytes read and written at the last sweep that saw
 * progress, and when. Kept beside the socket (a Map), never as properties on it: an expando property gives
 * node's sockets extra hidden classes and turns node:http's own property loads megamorphic (measured: ~1 µs
 * per keep-alive request).
 */
class SweepState {
  r = -1;
  w = -1;
  t = 0;
}

/**
 * The --http-timeout sweep: every connection that moved no byte for the timeout goes through onIdleTimeout.
 * One pass over the open connections every timeout/4 (at most 1 s), instead of a socket timer that node
 * would re-arm on every read and write of every request (~6 µs per keep-alive request, measured).
 */
function sweep(sockets: Map<HttpSocket, SweepState>, timeoutMs: number, idleMs: number): void {
  const now = Date.now();
  for (const [s, st] of sockets) {
    const r = s.bytesRead;
    const w = s.bytesWritten;
    if (r !== st.r || w !== st.w) { st.r = r; st.w = w; st.t = now; continue; }
    const silent = now - st.t;
    // an idle keep-alive connection (no request in progress) closes after idleMs; this replaces node's
    // keepAliveTimeout, which arms and clears a socket timer around every request
    if (silent >= idleMs && s._httpMessage == null) { s.destroy(); continue; }
    if (silent >= timeoutMs) onIdleTimeout(s);
  }
}

/**
 * A connection silent for --http-timeout: close it unless the application is still working on a request
 * that arrived completely (a slow application is not a slow client). A response stuck in the socket's
 * buffer (a client that stopped reading) is closed too.
 */
function onIdleTimeout(socket: HttpSocket): void {
  const res = socket._httpMessage;
  if (res != null && !res.writableEnded && res.req?.complete === true && socket.writableLength === 0) return;
  socket.destroy();
}

/** A refused request: the status, a short text, and the connection closes. */
function refuse(res: http.ServerResponse, status: number, text: string): void {
  res.shouldKeepAlive = false;
  res.writeHead(status, STATUS_TEXT[status] ?? 'Bad Request', [['Content-Type', 'text/plain'], ['Content-Length', String(Buffer.byteLength(text))], ['Connection', 'close']]);
  res.end(text);
}

/** A chunked body ended: a forbidden trailer field closes the connection before the application answers. */
function checkTrailers(this: http.IncomingMessage): void {
  const t = this.rawTrailers;
  for (let i = 0; i < t.length; i += 2) {
    if (FORBIDDEN_TRAILERS.has(t[i]!.toLowerCase())) { this.socket.destroy(); return; }
  }
}

function destroyLater(socket: Socket): void { if (!socket.destroyed) socket.destroy(); }

/**
 * Open one HTTP listener that feeds the core (shared by http and http11): the lean one (lean.ts: lean sockets,
 * node's parser driven directly), or node:http where node's parser module is not reachable or
 * UWCORE_LEAN_HTTP=0 asks for it.
 */
function listenAny(listener: ListenerInfo, server: ServerHandle, timeoutS: number): Promise<ListenerHandle> {
  return leanHttpAvailable ? listenLeanHttp(listener, server, timeoutS) : listenHttp(listener, server, timeoutS);
}

/** Open one node:http listener that feeds the core. */
export function listenHttp(listener: ListenerInfo, server: ServerHandle, timeoutS: number): Promise<ListenerHandle> {
  const sockets = new Map<HttpSocket, SweepState>();
  // one close listener per listener (not a closure per connection)
  const onSocketClose = function (this: HttpSocket): void { sockets.delete(this); };
  const timeoutMs = Math.round(timeoutS * 1000);
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    // what llhttp lets through but RFC 9112 refuses
    if (req.httpVersionMajor !== 1) { refuse(res, 505, 'HTTP Version Not Supported: this socket speaks HTTP/1.0 and HTTP/1.1\n'); return; }
    if (req.url === '*' && req.method !== 'OPTIONS') { refuse(res, 400, 'Bad Request: the asterisk form is only for OPTIONS\n'); return; }
    let env;
    try {
      env = server.httpEnv(req, listener);
    } catch (e) {
      refuse(res, 400, `Bad Request: ${(e as Error).message}\n`);
      return;
    }
    // (env, not req.headers: node builds that object lazily and the hot path never needs it)
    if (env.HTTP_TRANSFER_ENCODING !== undefined) {
      // §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing (a smuggling vector)
      if (req.httpVersionMinor === 0) { refuse(res, 400, 'Bad Request: Transfer-Encoding in an HTTP/1.0 request\n'); return; }
      req.once('end', checkTrailers);
    }
    const host = env.HTTP_HOST as string | undefined;
    // RFC 9112 §3.2: exactly one valid Host (node:http does not refuse duplicates)
    if (host !== undefined && !validHost(host)) {
      refuse(res, 400, HOST_BODY);
      return;
    }
    server.dispatch(env, req, res as unknown as Wire, listener);
  };
  const srv = http.createServer({
    maxHeaderSize: server.bufferSize,
    headersTimeout: timeoutMs,
    requestTimeout: 0,
    // idle keep-alive connections are closed by the sweep (min(timeout, 5 s)), not by a timer per request
    keepAliveTimeout: 0,
    // how often node looks for connections past headersTimeout (its default, 30 s, lets slow-header
    // connections pile up far beyond the timeout)
    connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.round(timeoutMs / 4))),
    noDelay: true,
    requireHostHeader: true,
  }, onRequest);
  const idleMs = Math.min(timeoutMs, 5000);
  const sweeper = setInterval(sweep, Math.max(100, Math.min(1000, Math.round(idleMs / 4))), sockets, timeoutMs, idleMs);
  sweeper.unref();
  srv.once('close', () => clearInterval(sweeper));
  // Expect: 100-continue: refuse a body over --limit-post before the client sends it
  srv.on('checkContinue', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const cl = req.headers['content-length'];
    if (!(server.limitPost > 0 && cl !== undefined && Number(cl) > server.limitPost)) res.writeContinue();
    onRequest(req, res);
  });
  // CONNECT asks for a tunnel: an application server does not offer one
  srv.on('connect', (_req: http.IncomingMessage, socket: Socket) => {
    const text = 'Method Not Allowed: CONNECT tunnels are not offered\n';
    socket.end(`HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\nContent-Type: text/plain\r\nContent-Length: ${text.length}\r\nConnection: close\r\n\r\n${text}`);
  });
  srv.on('connection', (s: HttpSocket) => {
    sockets.set(s, new SweepState());
    s.on('close', onSocketClose); // (on, not once: close fires once, and once() wraps a closure per connection)
  });
  srv.on('clientError', (err: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket: Socket) => {
    if (!socket.writable || (err.code === 'ECONNRESET')) { socket.destroy(); return; }
    const inflight = (socket as HttpSocket)._httpMessage;
    if (inflight != null) {
      // the request was already dispatched (the error is in its body): its body stream fails, the application
      // answers that (400 from wsgi.input) or has answered; one response only, then the connection closes
      inflight.shouldKeepAlive = false;
      if (inflight.headersSent) socket.destroySoon?.();
      else {
        // fail the body stream the application may be reading, so that it answers 400 (wsgi.input)
        const req = inflight.req;
        if (req !== undefined && !req.complete && req.listenerCount('error') > 0) req.emit('error', Object.assign(new Error(`malformed request body: ${err.message}`), { code: err.code }));
      }
      setTimeout(destroyLater, 2000, socket).unref();
      server.log.debug({ code: err.code }, `malformed request body: ${err.message}`);
      return;
    }
    const { status, hint } = classify(err, server.bufferSize);
    if (hint !== undefined) server.log.warn({ listener: listener.option, remote: socket.remoteAddress }, hint);
    const text = STATUS_TEXT[status] ?? 'Bad Request';
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
        connections: () => sockets.size,
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
  sdk: '^1.2.0',
  description: 'HTTP/1.0 and 1.1 listeners on node:http (--http, --http-socket)',
  options: [
    { name: 'http', type: 'addr', multiple: true, arg: 'ADDR', help: 'serve HTTP on ADDR with keep-alive (:8000, 8000 and host:port are TCP; other values without a colon are UNIX socket paths)' },
    { name: 'http-socket', type: 'addr', multiple: true, arg: 'ADDR', help: 'serve HTTP on ADDR, one request per connection (uWSGI\'s --http-socket)' },
    { name: 'http-timeout', type: 'seconds', default: 60, min: 0.1, arg: 'S', help: 'close a connection whose request headers take longer than S seconds, or that is silent for S seconds while a request is incomplete or a response is stuck; idle keep-alive connections close after min(S, 5) seconds' },
  ],
  setup(api) {
    const timeout = api.options['http-timeout'] as number;
    api.protocols.register('http', { listen: (l, s) => listenAny(l, s, timeout) });
    for (const a of (api.options.http as Address[])) api.listen('http', 'http', a, { keepAlive: true });
    for (const a of (api.options['http-socket'] as Address[])) api.listen('http-socket', 'http', a, { keepAlive: false });
    return {
      /** open an HTTP listener (persistent when `l.keepAlive`); timeoutS defaults to --http-timeout */
      listenHttp: (l: ListenerInfo, s: ServerHandle, timeoutS: number = timeout) => listenAny(l, s, timeoutS),
    };
  },
});
