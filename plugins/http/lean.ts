// The http plugin's listener: HTTP/1.0 and 1.1 on lean sockets (uwcore/sdk/socket) with node's own HTTP
// parser — the llhttp binding node:http runs, with the same strict settings, so the request-smuggling defences
// are node's — but without node:http's per-connection and per-request machinery (net.Socket, the
// IncomingMessage/ServerResponse pair, the connections list, socket timers).
//
// --http and --http11-socket keep connections alive (HTTP/1.1 by default, HTTP/1.0 only when asked) and answer
// pipelined requests in order; --http-socket answers one request per connection. What node:http does around
// llhttp is done here too: Host required on HTTP/1.1 and checked, HTTP/1.x only, Transfer-Encoding refused on
// HTTP/1.0, forbidden trailers, Expect (100-continue, 417 for anything else), CONNECT refused, 400/408/414/431
// answers, a Date header, `Connection: keep-alive`/`close`, chunked framing of an HTTP/1.1 response without
// Content-Length (close-delimited on HTTP/1.0, which ends the connection), no body on HEAD/1xx/204/304.
// Timeouts come from one sweep per listener (--http-timeout), never from a timer per connection.
import { Buffer } from 'node:buffer';
import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import { STATUS_TEXT, type Env, type HeaderList, type HttpHead, type ListenerHandle, type ListenerInfo, type ServerHandle, type Wire } from '../../sdk/index.js';
import {
  badHeaderError, DEAD_LENGTH, HEAD_ASCII, HEAD_BAD, headerPairKind, headerPartKind, LeanBody, listenLean, type LeanOwner, type LeanSocket,
} from '../../sdk/socket.js';
import { classify, FORBIDDEN_TRAILERS, HOST_BODY, validHost } from './common.js';

interface Parser {
  conn: Conn | null;
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(b: Buffer): number | ParseError;
  [k: number]: unknown;
}
type ParseError = Error & { code?: string; bytesParsed?: number; rawPacket?: Buffer };
interface ParserModule {
  HTTPParser: (new () => Parser) & Record<string, number>;
  methods: string[];
}

/** node's HTTP parser (node:http's own, from its internal module); null where it is not reachable */
function loadParser(): ParserModule | null {
  if (process.env.UWCORE_LEAN_HTTP === '0') return null;
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
/** true when the lean listener can run (else the plugin serves HTTP with node:http) */
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

const EMPTY: string[] = [];
/** a body chunk up to this size leaves in one buffer with the head or chunk framing (copied); a larger one
 *  in a writev beside them */
const JOIN_MAX = 16384;
const CRLF = Buffer.from('\r\n');

/** The chunk-size line for `len` (responses tend to repeat one chunk size: the last one is kept). */
let lastLen = -1;
let lastLine = CRLF;
function sizeLine(len: number): Buffer {
  if (len !== lastLen) { lastLine = Buffer.from(`${len.toString(16)}\r\n`, 'latin1'); lastLen = len; }
  return lastLine;
}
/** more header fields than this (node:http's maxHeadersCount): 431 */
const MAX_HEADER_FIELDS = 2000;
/** reading stops while this much of the responses waits in the socket (a client that does not read) … */
const HOLD_BYTES = 64 * 1024;
/** … or while this many pipelined requests wait for their turn */
const HOLD_QUEUE = 32;

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
  keepAlive: boolean;
  timeoutMs: number;
  idleMs: number;
  now: number;
  /** close()'s end: called when the listener is closed and its last connection is gone */
  closed: (() => void) | null;
}

/** One request and its response (the Wire the core writes to; the HttpHead httpEnv reads). */
class Req extends EventEmitter implements Wire, HttpHead {
  readonly conn: Conn;
  readonly socket: LeanSocket;
  method: string;
  url: string;
  httpVersion: string;
  httpVersionMajor: number;
  httpVersionMinor: number;
  rawHeaders: string[];
  env: Env | null = null;
  body: LeanBody | null = null;
  /** the whole request (head and body) was read */
  complete = false;
  /** the connection may carry another request after this one */
  keepAlive: boolean;
  expectContinue = false;
  // Wire
  headersSent = false;
  writableEnded = false;
  destroyed = false;
  head: string | null = null;
  headAscii = true;
  noBody: boolean;
  chunked = false;

  constructor(conn: Conn, major: number, minor: number, method: string, url: string, rawHeaders: string[], keepAlive: boolean) {
    super();
    this.conn = conn;
    this.socket = conn.socket;
    this.method = method;
    this.url = url;
    this.httpVersionMajor = major;
    this.httpVersionMinor = minor;
    this.httpVersion = major === 1 && minor === 1 ? '1.1' : `${major}.${minor}`;
    this.rawHeaders = rawHeaders;
    this.keepAlive = keepAlive;
    this.noBody = method === 'HEAD';
  }

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
      kind |= headerPairKind(k, v, 'http');
      switch (k.length) {
        case 4: if (k.toLowerCase() === 'date') date = true; break;
        case 10:
          if (k.toLowerCase() === 'connection') {
            conn = true;
            if (/(?:^|,)\s*close\s*(?:,|$)/i.test(v)) this.keepAlive = false;
          }
          break;
        case 14: if (k.toLowerCase() === 'content-length') framed = true; break;
        case 17:
          if (k.toLowerCase() === 'transfer-encoding') {
            framed = true;
            if (/(?:^|,)\s*chunked\s*$/i.test(v)) this.chunked = true;
            // a coding without chunked last: only the connection's close ends the body
            else this.keepAlive = false;
          }
          break;
      }
      h += `${k}: ${v}\r\n`;
    }
    if (status < 200 || status === 204 || status === 304) {
      this.noBody = true;
      // a 1xx as the final answer (101 without a switch, 100 …): the client waits for another response, which
      // would be the next request's; the connection ends after it
      if (status < 200) this.keepAlive = false;
    }
    if (this.noBody) this.chunked = false;
    else if (!framed) {
      // no length: chunked for an HTTP/1.1 client; for HTTP/1.0 the connection's close ends the body
      if (this.httpVersionMinor === 1) { h += 'Transfer-Encoding: chunked\r\n'; this.chunked = true; }
      else this.keepAlive = false;
    }
    if (!date) h += `Date: ${httpDate()}\r\n`;
    if (!conn) h += this.keepAlive ? 'Connection: keep-alive\r\n' : 'Connection: close\r\n';
    this.head = h + '\r\n';
    this.headAscii = kind === HEAD_ASCII;
    this.headersSent = true;
  }

  get writableLength(): number {
    // a socket already destroyed (a write failed) takes nothing more: report it full, so that a producer
    // waits for 'drain' or 'close' (which comes) instead of looping on writes that go nowhere
    const s = this.socket;
    return s.destroyed ? DEAD_LENGTH : s.writableLength;
  }

  write(chunk: string | Uint8Array): boolean {
    if (this.writableEnded || this.destroyed) return false;
    const s = this.socket;
    const h = this.head;
    if (this.noBody) { if (h !== null) { this.head = null; s.write(h, 'latin1'); } return true; }
    const len = typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.byteLength;
    if (len === 0) return true;
    const c = this.conn;
    c.mark = c.l.now;
    // a response that takes a second write: no Nagle wait on it (one write then close never needs it)
    if (c.nagle && h === null) { c.nagle = false; s.setNoDelay(true); }
    // the writes of one tick leave together (as node:http corks its socket until the next tick); end()
    // sends what is collected at once
    if (!s.corked) { s.cork(); process.nextTick(uncork, s); }
    this.head = null;
    if (this.chunked && typeof chunk !== 'string') {
      // pieces of the tick's one writev: (the head,) the size line (kept per size), the data and its CRLF
      if (h !== null) s.write(h, 'latin1');
      let ok = s.write(sizeLine(len));
      if (len > JOIN_MAX) { ok = s.write(chunk) && ok; return s.write(CRLF) && ok; }
      // a small chunk is copied: the application may reuse its buffer once write() has returned
      const b = Buffer.allocUnsafe(len + 2);
      b.set(chunk, 0);
      b[len] = 13;
      b[len + 1] = 10;
      return s.write(b) && ok;
    }
    // head, chunk size line and data leave in one write
    const pre = this.chunked ? `${h ?? ''}${len.toString(16)}\r\n` : h;
    const post = this.chunked ? '\r\n' : '';
    if (typeof chunk === 'string') {
      if (pre === null) return s.write(post ? chunk + post : chunk);
      if (this.headAscii) return s.write(pre + chunk + post);
      chunk = Buffer.from(chunk);
    }
    if (pre === null && post === '') return s.write(chunk);
    if (len > JOIN_MAX) {
      // a large chunk is not copied behind the head: one writev of the pieces
      const parts: Uint8Array[] = pre === null ? [chunk] : [Buffer.from(pre, 'latin1'), chunk];
      if (post) parts.push(CRLF);
      return s.writev(parts);
    }
    const a = pre === null ? 0 : pre.length;
    const b = Buffer.allocUnsafe(a + len + post.length);
    if (pre !== null) b.write(pre, 0, 'latin1');
    b.set(chunk, a);
    if (post) b.write(post, a + len, 'latin1');
    return s.write(b);
  }

  end(chunk?: string | Uint8Array): void {
    if (this.writableEnded || this.destroyed) return;
    if (chunk !== undefined) this.write(chunk);
    const h = this.head;
    if (h !== null) {
      this.head = null;
      this.socket.write(this.chunked ? `${h}0\r\n\r\n` : h, 'latin1');
    } else if (this.chunked) this.socket.write('0\r\n\r\n', 'latin1');
    this.socket.uncork();
    this.writableEnded = true;
    this.conn.finished(this);
  }

  destroy(_err?: Error): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.conn.socket.destroy();
  }
}

function uncork(s: LeanSocket): void { s.uncork(); }

// connection states (of the parsing side)
const S_HEAD = 0;   // reading a request head (or idle between requests)
const S_BODY = 1;   // a request's body is arriving
const S_GONE = 2;   // refused, upgraded or ending: further bytes are ignored

/** One connection: the parser's owner and the queue of its requests (pipelining answers them in order). */
class Conn implements LeanOwner {
  readonly socket: LeanSocket;
  readonly l: ListenerState;
  parser: Parser | null;
  state = S_HEAD;
  /** header lines / url collected when a head spans several reads (and trailers after a body) */
  hdrs: string[] = EMPTY;
  partUrl = '';
  /** the request whose body is being read */
  reading: Req | null = null;
  /** the request being answered; the ones behind it (pipelined) wait in `queue` */
  active: Req | null = null;
  queue: Req[] | null = null;
  /** a refusal that waits for the responses before it */
  refusal: string | null = null;
  /** inside the loop that dispatches queued requests */
  dispatching = false;
  /** since when the current head is on its way (bytes arrived), or the connection is idle */
  started: number;
  /** the last progress of a response or its flush (the sweep's clock) */
  mark: number;
  /** the last bytes of a request body */
  bodyAt: number;
  headBytes = false;
  closing = false;
  lastW = -1;
  peerEnded = false;
  /** reading stopped: responses wait in the socket or pipelined requests in the queue (see hold) */
  held = false;
  /** TCP_NODELAY not set yet (set at the accept on persistent connections, else at a second write) */
  nagle: boolean;

  constructor(socket: LeanSocket, l: ListenerState) {
    this.socket = socket;
    this.l = l;
    this.started = l.now;
    this.mark = l.now;
    this.bodyAt = l.now;
    // small writes on a kept-alive connection must not stall on Nagle / delayed ACK
    this.nagle = !l.keepAlive;
    if (l.keepAlive) socket.setNoDelay(true);
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

  /** nothing in progress: no request being answered, queued or arriving, no response still flushing */
  get idle(): boolean {
    return this.active === null && this.state === S_HEAD && !this.headBytes && this.socket.writableLength === 0;
  }

  // ---------------------------------------------------------------------------------------------
  // the socket's events

  onData(chunk: Buffer): void {
    if (this.state === S_GONE) return;
    if (this.state === S_HEAD) {
      if (!this.headBytes) { this.headBytes = true; this.started = this.l.now; }
    } else this.bodyAt = this.l.now;
    let r: number | ParseError;
    try {
      r = this.parser!.execute(chunk);
    } catch (e) {
      // a callback threw (a body reader's 'data' listener …): llhttp is left in an error state, the
      // connection cannot go on; the worker does
      this.state = S_GONE;
      this.parser!.conn = null;
      this.parser = null; // not reused
      this.l.server.log.error({ err: e }, 'http: a request callback threw; connection closed');
      this.socket.destroy();
      return;
    }
    if (typeof r !== 'number') this.parseError(r, chunk);
    // a client that sends requests but does not read the responses: stop reading until they drain (node:http
    // does the same), so that pipelined requests cannot pile up answers or queued requests without bound
    else if (this.socket.writableLength >= HOLD_BYTES || (this.queue !== null && this.queue.length >= HOLD_QUEUE)) this.hold();
  }

  hold(): void {
    if (this.state === S_GONE) return;
    this.held = true;
    this.socket.pause();
  }

  /** Read again once the responses drained and the queue shrank (unless a request body's reader is full). */
  release(): void {
    if (this.socket.writableLength >= HOLD_BYTES || (this.queue !== null && this.queue.length >= HOLD_QUEUE)) return;
    this.held = false;
    if (this.reading?.body?.paused !== true) this.socket.resume();
  }

  onEnd(): void {
    this.peerEnded = true;
    const st = this.state;
    this.state = S_GONE;
    if (st === S_BODY) this.reading?.body?.fail(Object.assign(new Error('the client closed the connection before the request body was complete'), { code: 'ECONNRESET' }));
    // requests read completely still get their responses (a half-closed client); then the connection closes,
    // once what was written is out
    if (this.active === null) this.socket.end();
  }

  onDrain(): void {
    if (this.held) this.release();
    if (this.active === null && !this.headBytes && this.state === S_HEAD) {
      // a response flushed to a slow reader: idle from here; or the end, when the server drains
      if (this.l.server.draining) { this.state = S_GONE; this.socket.end(); } else this.started = Date.now();
    }
    this.active?.emit('drain');
  }

  onClose(): void {
    const l = this.l;
    l.conns.delete(this);
    if (l.closed !== null && l.conns.size === 0) { const f = l.closed; l.closed = null; f(); }
    const gone = (r: Req | null) => {
      if (r === null) return;
      r.destroyed = true;
      if (!r.complete) r.body?.fail(Object.assign(new Error('the client went away before the request body was complete'), { code: 'ECONNRESET' }));
      r.emit('close');
    };
    gone(this.active);
    if (this.reading !== this.active) gone(this.reading);
    if (this.queue !== null) for (const r of this.queue) if (r !== this.reading) gone(r);
    this.active = null;
    this.queue = null;
    this.reading = null;
    this.state = S_GONE;
    const p = this.parser;
    if (p !== null) {
      this.parser = null;
      p.conn = null;
      if (PARSERS.length < 256) PARSERS.push(p);
    }
  }

  onError(err: NodeJS.ErrnoException): void {
    this.l.server.log.debug({ code: err.code }, `http connection error: ${err.message}`);
  }

  // ---------------------------------------------------------------------------------------------
  // requests

  headersComplete(major: number, minor: number, headers: string[] | undefined, method: number, url: string | undefined, upgrade: boolean, shouldKeepAlive: boolean): void {
    const raw = headers ?? this.hdrs;
    this.hdrs = EMPTY;
    const target = url ?? this.partUrl;
    this.partUrl = '';
    this.headBytes = false;
    const m = METHODS[method] ?? 'GET';
    const l = this.l;
    const srv = l.server;
    if (raw.length > 2 * MAX_HEADER_FIELDS) { this.refuse(431, `Request Header Fields Too Large: more than ${MAX_HEADER_FIELDS} fields\n`); return; }
    if (major !== 1) { this.refuse(505, 'HTTP Version Not Supported: this socket speaks HTTP/1.0 and HTTP/1.1\n'); return; }
    if (m === 'CONNECT') { this.refuse(405, 'Method Not Allowed: CONNECT tunnels are not offered\n', 'Allow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\n'); return; }
    if (target === '*' && m !== 'OPTIONS') { this.refuse(400, 'Bad Request: the asterisk form is only for OPTIONS\n'); return; }
    // an upgrade request is served as a plain one (no tunnel is offered), and the connection ends after it
    const req = new Req(this, major, minor, m, target, raw, l.keepAlive && shouldKeepAlive && !upgrade);
    let env: Env;
    try {
      env = srv.httpEnv(req, l.info);
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
      // a body over --limit-post is refused before the client sends it (the core answers 413)
      req.expectContinue = !(srv.limitPost > 0 && cl !== undefined && Number(cl) > srv.limitPost);
    }
    req.env = env;
    const hasBody = !upgrade && (te !== undefined || (env.CONTENT_LENGTH !== undefined && env.CONTENT_LENGTH !== '0'));
    req.body = new LeanBody(this.socket, !hasBody);
    if (hasBody) {
      this.state = S_BODY;
      this.reading = req;
      this.bodyAt = l.now;
    } else {
      req.complete = true;
      // nothing more is read after a request that ends the connection (pipelined ones would never be answered)
      if (upgrade || !req.keepAlive) this.state = S_GONE;
    }
    if (this.active === null) this.dispatch(req);
    else (this.queue ??= []).push(req);
  }

  dispatch(req: Req): void {
    this.active = req;
    this.mark = this.l.now;
    if (req.expectContinue) {
      this.socket.write('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');
      this.bodyAt = this.l.now; // the client waited for this to send its body
    }
    this.l.server.dispatch(req.env!, req.body!, req, this.l.info);
  }

  messageComplete(): void {
    const t = this.hdrs;
    this.hdrs = EMPTY;
    const req = this.reading;
    if (this.state !== S_BODY || req === null) return;
    for (let i = 0; i < t.length; i += 2) {
      // a framing or routing field in a trailer: a smuggling attempt, the connection closes
      if (FORBIDDEN_TRAILERS.has(t[i]!.toLowerCase())) {
        this.state = S_GONE;
        req.body?.fail(new Error('forbidden trailer field'));
        this.socket.destroy();
        return;
      }
    }
    this.state = req.keepAlive ? S_HEAD : S_GONE;
    this.reading = null;
    req.complete = true;
    req.body?.push(null);
    // answered before its body was read (and dropped): the connection can go on, or close, now
    if (req.writableEnded && this.active === null) this.next();
  }

  /** The response to `req` is complete: the next request's turn, or the connection's end. */
  finished(req: Req): void {
    if (req !== this.active) return;
    this.active = null;
    if (!req.keepAlive || this.l.server.draining) { this.close(req); return; }
    if (!req.complete) {
      // answered before the body arrived: its stream ends here, the rest of the body is read and dropped (the
      // parser still frames it), then the next request comes
      req.body?.abandon();
      req.body = null;
      return;
    }
    this.next();
  }

  /** Serve what waits: the queued requests in order, or a refusal behind them; or close a half-closed peer. */
  next(): void {
    if (this.dispatching) return; // the loop below goes on
    this.dispatching = true;
    try {
      // (not once a response ended the connection: the requests behind it are not answered)
      while (this.active === null && !this.closing && !this.socket.destroyed && this.queue !== null && this.queue.length !== 0) this.dispatch(this.queue.shift()!);
    } finally {
      this.dispatching = false;
    }
    if (this.held) this.release();
    if (this.active !== null) return;
    if (!this.headBytes) this.started = Date.now(); // idle from here (the keep-alive timeout; not the sweep's coarse clock)
    if (this.refusal !== null) {
      this.socket.write(this.refusal, 'latin1');
      this.refusal = null;
      this.socket.end();
      this.startClosing();
    } else if (this.peerEnded) this.socket.end(); // the peer half-closed: close once the responses are out
  }

  /** The connection ends after `req`'s response. */
  close(req: Req): void {
    this.state = S_GONE;
    const s = this.socket;
    if (req.complete && this.reading === null && s.writableLength === 0) {
      // the whole request was read and the whole response is in the kernel: close now (nothing unread can
      // turn the close into a reset)
      s.destroy();
      return;
    }
    if (!req.complete) { req.body?.abandon(); req.body = null; }
    // the rest of the request is read (and dropped) while the response flushes; the peer's close, or the
    // sweep, ends the connection
    s.end();
    this.startClosing();
  }

  /** A parse error: the status for it, one line to the client, and the connection closes. */
  parseError(err: ParseError, chunk: Buffer): void {
    const st = this.state;
    this.state = S_GONE;
    const srv = this.l.server;
    const req = this.reading;
    if (st === S_BODY && req !== null) {
      // the request was dispatched: its body stream fails (wsgi.input answers 400) or its response is on its
      // way; one response only, then the connection closes
      srv.log.debug({ code: err.code }, `malformed request body: ${err.message}`);
      req.keepAlive = false;
      const b = req.body;
      b?.fail(Object.assign(new Error(`malformed request body: ${err.message}`), { code: err.code }));
      // answered already: close once the response is out
      if (req.writableEnded && !this.closing) { this.socket.end(); this.startClosing(); }
      return;
    }
    // bytes after a request that ends the connection (llhttp's HPE_CLOSED_CONNECTION after an HTTP/1.0 or
    // Connection: close request): not this connection's business any more
    if (err.code === 'HPE_CLOSED_CONNECTION') return;
    err.rawPacket ??= chunk;
    const { status, hint } = classify(err, srv.bufferSize);
    if (hint !== undefined) srv.log.warn({ listener: this.l.info.option, remote: this.socket.remoteAddress }, hint);
    srv.log.debug({ code: err.code, status }, `malformed request refused: ${err.message}`);
    this.refuse(status, `${STATUS_TEXT[status] ?? 'Bad Request'}\n`);
  }

  /** Answer a request the application never sees (after the responses before it), and close. */
  refuse(status: number, text: string, extra = ''): void {
    this.state = S_GONE;
    this.headBytes = false;
    const r = `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Bad Request'}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(text)}\r\n${extra}Date: ${httpDate()}\r\nConnection: close\r\n\r\n${text}`;
    if (this.active !== null) { this.refusal = r; return; }
    this.socket.write(r, 'latin1');
    this.socket.end();
    this.startClosing();
  }

  startClosing(): void {
    this.closing = true;
    this.mark = this.l.now;
    this.lastW = -1;
  }
}

// the parser's callbacks (`this` is the parser): shared functions, no closure per connection
function onHeaders(this: Parser, headers: string[], url: string): void {
  const c = this.conn;
  if (c === null) return;
  // (node hands the fields over 32 at a time: appended in place, not copied again each time; past the limit
  // they are not kept, the head is refused)
  const h = c.hdrs;
  if (h === EMPTY) c.hdrs = headers.slice();
  else if (h.length <= 2 * MAX_HEADER_FIELDS) for (let i = 0; i < headers.length; i++) h.push(headers[i]!);
  if (c.state === S_HEAD) c.partUrl += url;
}
function onHeadersComplete(this: Parser, major: number, minor: number, headers: string[] | undefined, method: number, url: string | undefined, _status: unknown, _msg: unknown, upgrade: boolean, shouldKeepAlive: boolean): number {
  const c = this.conn;
  if (c !== null && c.state === S_HEAD) c.headersComplete(major, minor, headers, method, url, upgrade, shouldKeepAlive);
  return 0;
}
function onBody(this: Parser, b: Buffer): void {
  const c = this.conn;
  if (c !== null && c.state === S_BODY) c.reading?.body?.feed(b);
}
function onMessageComplete(this: Parser): void {
  const c = this.conn;
  if (c !== null) c.messageComplete();
}

/**
 * --http-timeout for every connection of a listener, in one pass (no timer per socket): a head must be
 * complete within the timeout of its first byte (else 408), a body must keep arriving unless the application
 * paused it, a response must keep leaving the socket's buffer, after the last response the flush and the
 * peer's close must come within the timeout, and an idle keep-alive connection closes after min(timeout, 5 s).
 */
function sweep(l: ListenerState): void {
  const now = (l.now = Date.now());
  const t = l.timeoutMs;
  for (const c of l.conns) {
    if (c.state === S_BODY) {
      // a body must keep arriving, unless the application does not read it (a paused socket) or the client
      // waits for its 100 Continue (a request queued behind another)
      const r = c.reading;
      if (r !== null && (r.body?.paused === true || (r !== c.active && r.expectContinue))) c.bodyAt = now;
      else if (now - c.bodyAt > t) {
        c.state = S_GONE;
        c.reading?.body?.fail(new Error('client too slow sending the request body (--http-timeout)'));
        c.socket.destroy();
        continue;
      }
    }
    const w = c.socket.writableLength;
    if (c.closing || c.active !== null || w !== 0) {
      // a response in progress or flushing: only a buffer that stops draining counts (a slow application is
      // not a slow client)
      if (w !== c.lastW || (w === 0 && !c.closing)) { c.lastW = w; c.mark = now; continue; }
      if (now - c.mark > t) c.socket.destroy();
      continue;
    }
    if (c.state !== S_HEAD) continue;
    if (!c.headBytes) {
      // idle: a new connection that sent nothing yet, or a keep-alive one between requests
      if (now - c.started > l.idleMs) c.socket.destroy();
      continue;
    }
    if (now - c.started <= t) continue;
    l.server.log.debug({ listener: l.info.option }, 'request head not complete within --http-timeout: 408');
    c.refuse(408, 'Request Timeout\n');
  }
}

/** Open one HTTP listener (`listener.keepAlive`: persistent connections, else one request per connection). */
export function listenLeanHttp(info: ListenerInfo, server: ServerHandle, timeoutS: number): Promise<ListenerHandle> {
  const timeoutMs = Math.round(timeoutS * 1000);
  const idleMs = info.keepAlive ? Math.min(timeoutMs, 5000) : timeoutMs;
  const l: ListenerState = { info, server, conns: new Set(), keepAlive: info.keepAlive, timeoutMs, idleMs, now: Date.now(), closed: null };
  const timer = setInterval(sweep, Math.max(50, Math.min(1000, Math.round(Math.min(timeoutMs, idleMs) / 4))), l);
  timer.unref();
  const backlog = (server.options.listen as number | undefined) ?? 1024;
  const accept = (socket: LeanSocket): Conn => {
    const c = new Conn(socket, l);
    l.conns.add(c);
    return c;
  };
  return listenLean(info.address, backlog, accept, (e) => server.log.error({ err: e }, 'listener error')).then((srv) => ({
    // resolves once the connections are gone too, as net.Server's close does (the core waits for that,
    // a moment, before it destroys what remains: responses still flushing get their chance)
    close: () => new Promise<void>((r) => {
      const end = () => { clearInterval(timer); r(); };
      srv.close(() => { if (l.conns.size === 0) end(); else l.closed = end; });
    }),
    closeIdle: () => { for (const c of l.conns) if (c.idle) c.socket.destroy(); },
    connections: () => l.conns.size,
    destroyAll: () => { for (const c of l.conns) c.socket.destroy(); },
  }), (e: unknown) => { clearInterval(timer); throw e; });
}
