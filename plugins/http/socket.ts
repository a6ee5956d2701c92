// --http-socket: one request per connection (uWSGI's --http-socket), on lean sockets (sdk/socket.ts) with
// node's own HTTP parser — the llhttp binding node:http runs, with the same strict settings, so request
// smuggling defences are node's — but without node:http's per-connection machinery (net.Socket, the
// IncomingMessage/ServerResponse pair, the connections list, timers). A new connection per request is where
// that machinery costs most: this listener is measured against a bare net responder (bench `hello-close`).
//
// What node:http does around llhttp is done here too: Host required on HTTP/1.1 and checked, HTTP/1.x only,
// Transfer-Encoding refused on HTTP/1.0, forbidden trailers, Expect (100-continue, 417 for anything else),
// CONNECT refused, 400/408/413/414/431 answers, a Date header, chunked framing of an HTTP/1.1 response
// without Content-Length (close-delimited on HTTP/1.0), no body on HEAD/1xx/204/304. Timeouts come from one
// sweep per listener (--http-timeout), not a timer per connection.
import { Buffer } from 'node:buffer';
import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import net from 'node:net';
import { STATUS_TEXT, type HeaderList, type HttpHead, type ListenerHandle, type ListenerInfo, type ServerHandle, type Wire } from '../../sdk/index.js';
import {
  acceptLean, badHeaderError, HEAD_ASCII, HEAD_BAD, headerPartKind, LeanBody, type LeanOwner, type LeanSocket,
} from '../../sdk/socket.js';
import { classify, FORBIDDEN_TRAILERS, HOST_BODY, validHost } from './common.js';

interface Parser {
  conn: Conn | null;
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(b: Buffer): number | (Error & { code?: string; bytesParsed?: number; rawPacket?: Buffer });
  finish(): number | Error | undefined;
  [k: number]: unknown;
}
interface ParserModule {
  HTTPParser: (new () => Parser) & Record<string, number>;
  methods: string[];
}

/** node's HTTP parser (node:http's own, from its internal module); null where it is not reachable */
function loadParser(): ParserModule | null {
  try {
    const m = createRequire(import.meta.url)('_http_common') as Partial<ParserModule>;
    const P = m.HTTPParser;
    if (typeof P !== 'function' || !Array.isArray(m.methods) || typeof P.REQUEST !== 'number' || typeof P.kOnHeadersComplete !== 'number') return null;
    return m as ParserModule;
  } catch {
    return null;
  }
}

const PM = loadParser();
/** true when --http-socket can run on this listener (else the plugin uses node:http for it) */
export const leanHttpAvailable = PM !== null;
const HTTPParser = PM?.HTTPParser;
const METHODS = PM?.methods ?? [];
const K_HEADERS = HTTPParser?.kOnHeaders ?? 0;
const K_HEADERS_COMPLETE = HTTPParser?.kOnHeadersComplete ?? 0;
const K_BODY = HTTPParser?.kOnBody ?? 0;
const K_COMPLETE = HTTPParser?.kOnMessageComplete ?? 0;
const PARSER_RESOURCE = {};
/** parsers of closed connections, re-initialized for new ones (as node:http keeps them) */
const PARSERS: Parser[] = [];

// connection states
const S_HEAD = 0;   // reading the request head
const S_BODY = 1;   // head dispatched, body arriving
const S_DONE = 2;   // the request was read completely
const S_GONE = 3;   // refused / answered early: further bytes are ignored

const EMPTY: string[] = [];

/** The Date header's value, made once a second */
let dateSec = -1;
let dateStr = '';
function httpDate(): string {
  const now = Date.now();
  const sec = Math.floor(now / 1000);
  if (sec !== dateSec) { dateSec = sec; dateStr = new Date(now).toUTCString(); }
  return dateStr;
}

interface ListenerState {
  info: ListenerInfo;
  server: ServerHandle;
  conns: Set<Conn>;
  timeoutMs: number;
  now: number;
}

/** One connection: the parser's owner, the request's head (HttpHead for httpEnv) and the response's Wire. */
class Conn extends EventEmitter implements LeanOwner, Wire, HttpHead {
  readonly socket: LeanSocket;
  readonly l: ListenerState;
  parser: Parser | null;
  state = S_HEAD;
  /** header lines / url collected when the head spans several reads (and trailers after it) */
  hdrs: string[] = EMPTY;
  partUrl = '';
  body: LeanBody | null = null;
  started: number;
  mark: number;
  closing = false;
  lastW = -1;
  gotBytes = false;
  // HttpHead
  method = 'GET';
  url = '/';
  httpVersion = '1.1';
  httpVersionMajor = 1;
  httpVersionMinor = 1;
  rawHeaders: string[] = EMPTY;
  // Wire
  headersSent = false;
  writableEnded = false;
  destroyed = false;
  head: string | null = null;
  headAscii = true;
  noBody = false;
  chunked = false;
  isHead = false;

  constructor(socket: LeanSocket, l: ListenerState) {
    super();
    this.socket = socket;
    this.l = l;
    this.started = l.now;
    this.mark = l.now;
    let p = PARSERS.pop();
    if (p === undefined) {
      p = new HTTPParser!();
      p[K_HEADERS] = onHeaders;
      p[K_HEADERS_COMPLETE] = onHeadersComplete;
      p[K_BODY] = onBody;
      p[K_COMPLETE] = onMessageComplete;
    }
    // strict: no lenient flags (node:http's default); the head limit is --buffer-size
    p.initialize(HTTPParser!.REQUEST!, PARSER_RESOURCE, l.server.bufferSize, 0);
    p.conn = this;
    this.parser = p;
  }

  // ---------------------------------------------------------------------------------------------
  // the socket's events

  onData(chunk: Buffer): void {
    if (this.state >= S_DONE) return; // one request per connection: anything after it is ignored
    this.gotBytes = true;
    if (this.state === S_BODY) this.mark = this.l.now;
    const p = this.parser!;
    const r = p.execute(chunk);
    if (typeof r !== 'number') this.parseError(r, chunk);
  }

  onEnd(): void {
    const st = this.state;
    if (st === S_HEAD) { this.socket.destroy(); return; } // gave up before a complete head
    if (st === S_BODY) {
      this.state = S_GONE;
      this.body?.destroy(Object.assign(new Error('the client closed the connection before the request body was complete'), { code: 'ECONNRESET' }));
    }
    // a complete request on a half-closed connection still gets its response
    if (this.writableEnded && !this.socket.destroyed) this.socket.destroy();
  }

  onDrain(): void { this.emit('drain'); }

  onClose(): void {
    this.destroyed = true;
    this.l.conns.delete(this);
    if (this.state === S_BODY) {
      this.state = S_GONE;
      this.body?.destroy(Object.assign(new Error('the client went away before the request body was complete'), { code: 'ECONNRESET' }));
    }
    this.freeParser();
    this.emit('close');
  }

  onError(err: NodeJS.ErrnoException): void {
    this.l.server.log.debug({ code: err.code }, `http connection error: ${err.message}`);
  }

  freeParser(): void {
    const p = this.parser;
    if (p === null) return;
    this.parser = null;
    p.conn = null;
    if (PARSERS.length < 256) PARSERS.push(p);
  }

  // ---------------------------------------------------------------------------------------------
  // the request

  headersComplete(major: number, minor: number, headers: string[] | undefined, method: number, url: string | undefined, upgrade: boolean): void {
    const raw = headers ?? this.hdrs;
    this.hdrs = EMPTY;
    this.rawHeaders = raw;
    this.url = url ?? this.partUrl;
    this.partUrl = '';
    this.method = METHODS[method] ?? 'GET';
    this.httpVersionMajor = major;
    this.httpVersionMinor = minor;
    this.httpVersion = major === 1 && minor === 1 ? '1.1' : `${major}.${minor}`;
    this.isHead = this.method === 'HEAD';
    const srv = this.l.server;
    if (major !== 1) { this.refuse(505, 'HTTP Version Not Supported: this socket speaks HTTP/1.0 and HTTP/1.1\n'); return; }
    if (this.method === 'CONNECT') { this.refuse(405, 'Method Not Allowed: CONNECT tunnels are not offered\n', 'Allow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\n'); return; }
    if (this.url === '*' && this.method !== 'OPTIONS') { this.refuse(400, 'Bad Request: the asterisk form is only for OPTIONS\n'); return; }
    let env;
    try {
      env = srv.httpEnv(this, this.l.info);
    } catch (e) {
      this.refuse(400, `Bad Request: ${(e as Error).message}\n`);
      return;
    }
    const host = env.HTTP_HOST as string | undefined;
    // RFC 9112 §3.2: HTTP/1.1 needs exactly one valid Host
    if (host === undefined ? minor === 1 : !validHost(host)) { this.refuse(400, HOST_BODY); return; }
    const te = env.HTTP_TRANSFER_ENCODING;
    // §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing (a smuggling vector)
    if (te !== undefined && minor === 0) { this.refuse(400, 'Bad Request: Transfer-Encoding in an HTTP/1.0 request\n'); return; }
    const expect = env.HTTP_EXPECT as string | undefined;
    if (expect !== undefined && minor === 1) {
      if (expect.toLowerCase() !== '100-continue') { this.refuse(417, 'Expectation Failed\n'); return; }
      const cl = env.CONTENT_LENGTH;
      // refuse a body over --limit-post before the client sends it (the core answers 413)
      if (!(srv.limitPost > 0 && cl !== undefined && Number(cl) > srv.limitPost)) this.socket.write('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');
    }
    const hasBody = te !== undefined || (env.CONTENT_LENGTH !== undefined && env.CONTENT_LENGTH !== '0');
    // an upgrade request (no tunnel is offered) is served as a plain request; its body is never read
    const body = new LeanBody(this.socket, !hasBody || upgrade);
    this.body = body;
    this.state = hasBody && !upgrade ? S_BODY : S_DONE;
    this.mark = this.l.now;
    srv.dispatch(env, body, this, this.l.info);
  }

  feedBody(b: Buffer): void {
    if (this.state === S_BODY) this.body?.feed(b);
  }

  messageComplete(): void {
    const t = this.hdrs;
    this.hdrs = EMPTY;
    if (this.state === S_HEAD) return; // a refusal mid-head
    for (let i = 0; i < t.length; i += 2) {
      // a framing or routing field in a trailer: a smuggling attempt, the connection closes
      if (FORBIDDEN_TRAILERS.has(t[i]!.toLowerCase())) { this.state = S_GONE; this.body?.destroy(new Error('forbidden trailer field')); this.socket.destroy(); return; }
    }
    if (this.state === S_BODY) {
      this.state = S_DONE;
      this.body?.push(null);
    }
    // answered before the body was read: the body is read (and dropped) to the end, then the connection closes
    if (this.writableEnded && this.socket.writableLength === 0) this.socket.destroy();
  }

  /** A parse error: the status for it, one line to the client, and the connection closes. */
  parseError(err: Error & { code?: string; rawPacket?: Buffer }, chunk: Buffer): void {
    const st = this.state;
    // bytes after a complete request (a pipelined one, or llhttp's HPE_CLOSED_CONNECTION after an HTTP/1.0
    // request) are not this connection's business: one request per connection
    if (st >= S_DONE) return;
    this.state = S_GONE;
    const srv = this.l.server;
    if (st === S_BODY || this.headersSent || this.body !== null) {
      // the request was dispatched: its body stream fails (wsgi.input answers 400) or the response is on its
      // way; one response only, then the connection closes
      srv.log.debug({ code: err.code }, `malformed request body: ${err.message}`);
      const b = this.body;
      if (b !== null && !b.destroyed && b.listenerCount('error') > 0) b.destroy(Object.assign(new Error(`malformed request body: ${err.message}`), { code: err.code }));
      if (this.writableEnded) this.socket.destroy();
      return;
    }
    err.rawPacket ??= chunk;
    const { status, hint } = classify(err, srv.bufferSize);
    if (hint !== undefined) srv.log.warn({ listener: this.l.info.option, remote: this.socket.remoteAddress }, hint);
    srv.log.debug({ code: err.code, status }, `malformed request refused: ${err.message}`);
    const text = STATUS_TEXT[status] ?? 'Bad Request';
    this.refuse(status, `${text}\n`);
  }

  /** Answer a request the application never sees, and close. */
  refuse(status: number, text: string, extra = ''): void {
    this.state = S_GONE;
    this.headersSent = true;
    this.writableEnded = true;
    this.socket.write(`HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Bad Request'}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(text)}\r\n${extra}Date: ${httpDate()}\r\nConnection: close\r\n\r\n${text}`, 'latin1');
    this.socket.end();
    this.startClosing();
  }

  // ---------------------------------------------------------------------------------------------
  // Wire

  writeHead(status: number, reason: string, headers: HeaderList): void {
    if (this.headersSent) return;
    let kind = headerPartKind(reason);
    if (kind === HEAD_BAD) throw badHeaderError('status reason', reason, 'http');
    let h = `HTTP/1.1 ${status} ${reason}\r\n`;
    let framed = false;
    let date = false;
    let conn = false;
    for (let i = 0; i < headers.length; i++) {
      const e = headers[i]!;
      const k = e[0];
      const v = e[1];
      const kk = headerPartKind(k);
      const kv = headerPartKind(v);
      if (kk === HEAD_BAD || kv === HEAD_BAD || k.length === 0) throw badHeaderError('response header', k, 'http');
      kind |= kk | kv;
      switch (k.length) {
        case 4: if (!date && k.toLowerCase() === 'date') date = true; break;
        case 10: if (!conn && k.toLowerCase() === 'connection') conn = true; break;
        case 14: if (k.toLowerCase() === 'content-length') framed = true; break;
        case 17:
          if (k.toLowerCase() === 'transfer-encoding') {
            framed = true;
            if (/(?:^|,)\s*chunked\s*$/i.test(v)) this.chunked = true;
          }
          break;
      }
      h += `${k}: ${v}\r\n`;
    }
    this.noBody = this.isHead || status < 200 || status === 204 || status === 304;
    if (this.noBody) this.chunked = false;
    // no length: chunked for an HTTP/1.1 client, the connection's close ends it for HTTP/1.0
    else if (!framed && this.httpVersionMinor === 1) { h += 'Transfer-Encoding: chunked\r\n'; this.chunked = true; }
    if (!date) h += `Date: ${httpDate()}\r\n`;
    if (!conn) h += 'Connection: close\r\n';
    this.head = h + '\r\n';
    this.headAscii = kind === HEAD_ASCII;
    this.headersSent = true;
  }

  get writableLength(): number {
    return this.socket.writableLength;
  }

  private send(data: string | Uint8Array, latin1: boolean): boolean {
    return latin1 ? this.socket.write(data, 'latin1') : this.socket.write(data);
  }

  write(chunk: string | Uint8Array): boolean {
    if (this.writableEnded || this.destroyed) return false;
    const h = this.head;
    if (this.noBody) { if (h !== null) { this.head = null; this.send(h, true); } return true; }
    const len = typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.byteLength;
    if (len === 0) return true;
    this.mark = this.l.now;
    // head, chunk size line and data leave in one write
    const pre = this.chunked ? `${h ?? ''}${len.toString(16)}\r\n` : h;
    this.head = null;
    const post = this.chunked ? '\r\n' : '';
    if (typeof chunk === 'string') {
      if (pre === null) return this.send(post ? chunk + post : chunk, false);
      if (this.headAscii) return this.send(pre + chunk + post, false);
      chunk = Buffer.from(chunk);
    }
    if (pre === null && post === '') return this.send(chunk, false);
    const a = pre === null ? 0 : pre.length;
    const b = Buffer.allocUnsafe(a + len + post.length);
    if (pre !== null) b.write(pre, 0, 'latin1');
    b.set(chunk, a);
    if (post) b.write(post, a + len, 'latin1');
    return this.send(b, false);
  }

  end(chunk?: string | Uint8Array): void {
    if (this.writableEnded || this.destroyed) return;
    if (chunk !== undefined) this.write(chunk);
    if (this.head !== null) {
      const h = this.head;
      this.head = null;
      this.send(this.chunked ? `${h}0\r\n\r\n` : h, true);
    } else if (this.chunked) this.send('0\r\n\r\n', true);
    this.writableEnded = true;
    const s = this.socket;
    if (this.state === S_DONE && s.writableLength === 0) {
      // the whole request was read and the whole response is in the kernel: close now (nothing unread can
      // turn the close into a reset)
      s.destroy();
      return;
    }
    if (this.state === S_BODY) {
      // answered before the body arrived: the body stream ends here; the rest of the body is still read (and
      // dropped, by the parser, for its framing) so that closing does not reset the connection under the response
      this.body?.abandon();
      this.body = null;
    }
    s.end();
    this.startClosing();
  }

  startClosing(): void {
    this.closing = true;
    this.mark = this.l.now;
    this.lastW = -1;
  }

  destroy(_err?: Error): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.socket.destroy();
  }
}

// the parser's callbacks (`this` is the parser): shared functions, no closure per connection
function onHeaders(this: Parser, headers: string[], url: string): void {
  const c = this.conn;
  if (c === null) return;
  c.hdrs = c.hdrs === EMPTY ? headers.slice() : c.hdrs.concat(headers);
  if (c.state === S_HEAD) c.partUrl += url;
}
function onHeadersComplete(this: Parser, major: number, minor: number, headers: string[] | undefined, method: number, url: string | undefined, _status: unknown, _msg: unknown, upgrade: boolean): number {
  const c = this.conn;
  if (c !== null && c.state === S_HEAD) c.headersComplete(major, minor, headers, method, url, upgrade);
  return 0;
}
function onBody(this: Parser, b: Buffer): void {
  const c = this.conn;
  if (c !== null) c.feedBody(b);
}
function onMessageComplete(this: Parser): void {
  const c = this.conn;
  if (c !== null) c.messageComplete();
}

/**
 * --http-timeout for every connection of a listener, in one pass (no timer per socket): the head must be
 * complete within the timeout of the accept (408), a body must keep arriving unless the application paused
 * it, a response must keep leaving the socket's buffer, and after the response the flush and the peer's
 * close must come within the timeout.
 */
function sweep(l: ListenerState): void {
  const now = (l.now = Date.now());
  const t = l.timeoutMs;
  for (const c of l.conns) {
    if (c.closing || c.state === S_DONE || c.headersSent) {
      const w = c.socket.writableLength;
      if (w !== c.lastW || (w === 0 && !c.closing)) { c.lastW = w; c.mark = now; continue; }
      if (now - c.mark > t) c.socket.destroy();
      continue;
    }
    if (c.state === S_HEAD) {
      if (now - c.started <= t) continue;
      if (!c.gotBytes) { c.socket.destroy(); continue; }
      l.server.log.debug({ listener: l.info.option }, 'request head not complete within --http-timeout: 408');
      c.refuse(408, 'Request Timeout\n');
    } else if (c.state === S_BODY) {
      if (c.body?.paused === true) { c.mark = now; continue; }
      if (now - c.mark <= t) continue;
      c.state = S_GONE;
      c.body?.destroy(new Error('client too slow sending the request body (--http-timeout)'));
      c.socket.destroy();
    }
  }
}

/** Open one --http-socket listener. */
export function listenHttpSocket(info: ListenerInfo, server: ServerHandle, timeoutS: number): Promise<ListenerHandle> {
  const l: ListenerState = { info, server, conns: new Set(), timeoutMs: Math.round(timeoutS * 1000), now: Date.now() };
  const timer = setInterval(sweep, Math.max(50, Math.min(1000, Math.round(l.timeoutMs / 4))), l);
  timer.unref();
  const srv = net.createServer({ allowHalfOpen: true });
  const a = info.address;
  const backlog = (server.options.listen as number | undefined) ?? 1024;
  return new Promise((resolve, reject) => {
    const onError = (e: Error) => { clearInterval(timer); reject(e); };
    srv.once('error', onError);
    const done = () => {
      srv.removeListener('error', onError);
      srv.on('error', (e) => server.log.error({ err: e }, 'listener error'));
      acceptLean(srv, (socket) => {
        const c = new Conn(socket, l);
        l.conns.add(c);
        return c;
      });
      resolve({
        close: () => new Promise<void>((r) => { clearInterval(timer); srv.close(() => r()); }),
        closeIdle: () => { for (const c of l.conns) if (c.state === S_HEAD && !c.gotBytes) c.socket.destroy(); },
        connections: () => l.conns.size,
        destroyAll: () => { for (const c of l.conns) c.socket.destroy(); },
      });
    };
    if (a.kind === 'tcp') srv.listen({ host: a.host, port: a.port, backlog }, done);
    else srv.listen({ path: a.path, backlog }, done);
  });
}
