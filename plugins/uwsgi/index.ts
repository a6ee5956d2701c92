// The `uwsgi` plugin: --uwsgi-socket (alias --socket, -s) speaks uWSGI's binary protocol, the one nginx's
// `uwsgi_pass` sends. A packet is a 4-byte header (modifier1, u16le datasize, modifier2), a vars block of
// `u16le keylen | key | u16le vallen | value` entries, then the body (CONTENT_LENGTH bytes). The response goes
// back as plain HTTP/1.x bytes and the connection closes (the protocol has no upstream keep-alive).
//
// The listener is ours end to end: one object per connection (it is the Wire too), the vars block is parsed in
// place from the first data chunk when it is complete (the common case behind nginx), and copied into one
// exactly-sized buffer only when it arrives in pieces.
//
// Per-connection cost is what matters here (nginx opens one upstream connection per request), so connections
// are lean sockets (sdk/socket.ts: libuv's stream handle with this Conn as its owner, no net.Socket stream
// machinery, ~0.57 × the CPU of a bare net.Socket responder per connection), and a plain request costs these
// syscalls and nothing else: accept4, epoll_ctl, read, one write (head and body
// together), close (with its epoll_ctl). No timer per socket (one sweep over the open connections does
// --socket-timeout), no shutdown and no wait for the peer's FIN once the whole request was read and the whole
// response is in the kernel (uWSGI closes the same way), and TCP_NODELAY only on a response that takes a
// second write (a single write followed by close is never held back by Nagle).
import { Buffer } from 'node:buffer';
import net from 'node:net';
import { Readable } from 'node:stream';
import {
  definePlugin, type Address, type Env, type HeaderList, type ListenerHandle, type ListenerInfo, type Logger,
  type ServerHandle, type Wire,
} from '../../sdk/index.js';
import {
  badHeaderError, DEAD_LENGTH, HEAD_ASCII, HEAD_BAD, headerPairKind, headerPartKind, LeanBody, leanAcceptMode, listenLean, type LeanOwner, type LeanSocket,
} from '../../sdk/socket.js';

/** What a modifier handler receives: the packet as it arrived. */
export interface UwsgiPacket {
  modifier1: number;
  modifier2: number;
  /** the raw vars block (datasize bytes); parse it with `parseVars` when it holds key/value pairs. */
  vars: Buffer;
  /** bytes that arrived after the vars block in the same reads (the start of a body, if any). */
  rest: Buffer;
  /** the connection, now owned by the handler: write the reply and end or destroy it. */
  socket: net.Socket;
  listener: ListenerInfo;
}

/** A handler for a modifier1 other than 0, registered by another plugin. */
export type ModifierHandler = (packet: UwsgiPacket) => void;

/** What `api.use('uwsgi')` returns. */
export interface UwsgiApi {
  /** dispatch packets with this modifier1 (1..255, not 0) to `handler`. */
  registerModifier(modifier1: number, handler: ModifierHandler): void;
  /** decode a vars block into key/value strings; null when malformed. */
  parseVars(block: Buffer, maxVars?: number): Record<string, string> | null;
  /** encode a uwsgi packet (header + vars [+ body]), e.g. for tests and clients. */
  encodePacket(vars: Record<string, string>, opts?: { modifier1?: number; modifier2?: number; body?: Buffer }): Buffer;
}

const MAX_VARS = 1000;
const EMPTY = Buffer.alloc(0);

// parser states
const S_HEAD = 0;   // waiting for the 4-byte header
const S_VARS = 1;   // waiting for the rest of the vars block
const S_BODY = 2;   // feeding the body
const S_DONE = 3;   // request read completely
const S_GONE = 4;   // refused / handed over: ignore further bytes

/** node's Buffer has these undocumented fast coders (no argument checks); typed here. */
type FastBuf = Buffer & {
  latin1Slice(start: number, end: number): string;
  utf8Slice(start: number, end: number): string;
  latin1Write(s: string, offset: number, length: number): number;
};

/** A body chunk up to this size leaves in one buffer with the head (copied); a larger one in a writev. */
const JOIN_MAX = 16384;

const KEY_PATH_INFO = 'PATH_INFO';
const KEY_SCRIPT_NAME = 'SCRIPT_NAME';

interface ListenerState {
  info: ListenerInfo;
  server: ServerHandle;
  log: Logger;
  /** vars block limit: min(--buffer-size, 65535) */
  maxVars: number;
  timeoutMs: number;
  modifiers: Map<number, ModifierHandler>;
  /** the open connections (each knows its index, `slot`: removal swaps the last one into its place) */
  conns: Conn[];
  /** close()'s end: called when the listener is closed and its last connection is gone */
  closed: (() => void) | null;
  where: string;
  /** coarse clock (ms), advanced by the sweep: stamping a connection costs no clock read */
  now: number;
  vars: VarCache;
  /** the last head written: a response with the same status line and headers reuses it as it is */
  head: HeadMemo | null;
}

/** A head and what it was made of (`headers` flattened: name, value, name, value …). */
interface HeadMemo { proto: string; status: number; reason: string; headers: string[]; head: string; ascii: boolean }

function sameHeaders(flat: string[], headers: HeaderList): boolean {
  if (flat.length !== headers.length * 2) return false;
  for (let i = 0; i < headers.length; i++) {
    const e = headers[i]!;
    if (e[0] !== flat[2 * i] || e[1] !== flat[2 * i + 1]) return false;
  }
  return true;
}

function addConn(l: ListenerState, c: Conn): void {
  c.slot = l.conns.length;
  l.conns.push(c);
}

function removeConn(l: ListenerState, c: Conn): void {
  if (c.slot < 0) return;
  const last = l.conns.pop()!;
  if (last !== c) { l.conns[c.slot] = last; last.slot = c.slot; }
  c.slot = -1;
  if (l.closed !== null && l.conns.length === 0) { const f = l.closed; l.closed = null; f(); }
}

const CACHE_POSITIONS = 64;
const CACHE_VALUE_MAX = 64;
/** how many key sequences a listener compiles an env builder for (see VarCache.builder) */
const MAX_BUILDERS = 16;

/**
 * Remembered bytes, as whole little-endian 32-bit words and the 0-3 bytes after them: compared four bytes at
 * a time through a DataView on the packet (a byte at a time, the vars of a request took ~4k instructions).
 */
class Bytes {
  readonly n: number;
  readonly words: Uint32Array;
  readonly tail: number;
  constructor(b: Buffer, dv: DataView, off: number, n: number) {
    this.n = n;
    this.words = new Uint32Array(n >>> 2);
    for (let k = 0; k < this.words.length; k++) this.words[k] = dv.getUint32(off + 4 * k, true);
    this.tail = tailOf(b, off + (n & ~3), n & 3);
  }
}

function tailOf(b: Buffer, off: number, r: number): number {
  let t = 0;
  for (let j = 0; j < r; j++) t |= b[off + j]! << (8 * j);
  return t;
}

function sameBytes(saved: Bytes | null | undefined, b: Buffer, dv: DataView, off: number, n: number): boolean {
  if (saved == null || saved.n !== n) return false;
  const w = saved.words;
  for (let k = 0; k < w.length; k++) if (dv.getUint32(off + 4 * k, true) !== w[k]) return false;
  return tailOf(b, off + (n & ~3), n & 3) === saved.tail;
}

/** Builds the env of one key sequence from its values, in the order sent. */
type EnvBuilder = (values: string[]) => Env;

/**
 * An object literal with the sequence's keys: the env gets one hidden class with its fields in the object.
 * Stored one by one under computed keys, each var went through V8's megamorphic keyed store instead (~245
 * instructions a var, 4.7k of a request's 33k for nginx's 19 vars; measured with cachegrind). The keys must be
 * all different; JSON.stringify makes each one a plain string literal, whatever bytes the client sent.
 */
function envBuilder(keys: string[]): EnvBuilder {
  const fields = keys.map((k, i) => `${JSON.stringify(k)}: v[${i}]`).join(', ');
  return new Function('v', `return { ${fields} };`) as EnvBuilder;
}

/**
 * The strings of the last packets' vars, by position. nginx sends the same keys in the same order on every
 * request, and most values too (REQUEST_METHOD, SERVER_PROTOCOL, HTTP_HOST …): a key or value whose bytes
 * match the ones remembered at its position reuses the remembered string, with no decode and, for a key, no
 * string-table lookup when it becomes a property name (17 nginx vars: 5.5 → 1.9 µs, measured). A value
 * position that changes twice (REMOTE_PORT) is no longer remembered, so it costs no copy per request.
 * A packet that sends exactly the remembered keys gets its env from the sequence's `builder`.
 */
class VarCache {
  keys: string[] = [];
  keyBytes: Bytes[] = [];
  vals: string[] = [];
  /** null: a value that keeps changing, not remembered */
  valBytes: Array<Bytes | null | undefined> = [];
  changes: number[] = [];
  /** the env builder of the remembered keys at positions 0 … length - 1 (null: none, or a key changed) */
  builder: EnvBuilder | null = null;
  length = 0;
  /** the values of the packet being parsed while it follows the remembered sequence */
  current: string[] = [];
  /** builders by key sequence (joined with NUL), compiled at most MAX_BUILDERS times */
  builders = new Map<string, EnvBuilder>();
  compile = true;

  key(b: FastBuf, dv: DataView, off: number, kl: number, i: number): string {
    if (i >= CACHE_POSITIONS) return b.latin1Slice(off, off + kl);
    if (sameBytes(this.keyBytes[i], b, dv, off, kl)) return this.keys[i]!;
    const k = b.latin1Slice(off, off + kl);
    this.keys[i] = k;
    this.keyBytes[i] = new Bytes(b, dv, off, kl);
    this.valBytes[i] = undefined;
    this.changes[i] = 0;
    if (i < this.length) this.builder = null;
    return k;
  }

  value(b: FastBuf, dv: DataView, off: number, vl: number, i: number, utf8: boolean): string {
    const saved = i < CACHE_POSITIONS && vl <= CACHE_VALUE_MAX ? this.valBytes[i] : null;
    if (saved === null) return utf8 ? b.utf8Slice(off, off + vl) : b.latin1Slice(off, off + vl);
    if (sameBytes(saved, b, dv, off, vl)) return this.vals[i]!;
    const v = utf8 ? b.utf8Slice(off, off + vl) : b.latin1Slice(off, off + vl);
    if (saved !== undefined && ++this.changes[i]! >= 2) { this.valBytes[i] = null; return v; }
    this.vals[i] = v;
    this.valBytes[i] = new Bytes(b, dv, off, vl);
    return v;
  }

  /** After a packet of `count` vars whose env was built var by var: remember its sequence's builder. */
  learn(count: number): void {
    this.builder = null;
    this.length = 0;
    if (count > CACHE_POSITIONS) return;
    const keys = this.keys.slice(0, count);
    if (new Set(keys).size !== count) return; // a key sent twice: duplicates are merged var by var
    const id = keys.join('\0');
    let f = this.builders.get(id);
    if (f === undefined) {
      if (this.builders.size >= MAX_BUILDERS || !this.compile) return;
      try { f = envBuilder(keys); } catch {
        this.compile = false; // node runs with --disallow-code-generation-from-strings: envs are built var by var
        return;
      }
      this.builders.set(id, f);
    }
    this.builder = f;
    this.length = count;
  }
}

type Listener = (...args: unknown[]) => void;

/**
 * One connection: the parser, and the Wire the core writes the response to. Not an EventEmitter: the core
 * only waits for 'drain' and 'close' with once()/removeListener(), and most responses never do.
 */
class Conn implements Wire, LeanOwner {
  readonly socket: LeanSocket;
  readonly l: ListenerState;
  state = S_HEAD;
  /** partial header or vars block (exactly 4 + datasize bytes once the header is known) */
  acc: Buffer | null = null;
  accLen = 0;
  datasize = 0;
  modifier1 = 0;
  modifier2 = 0;
  remaining = 0;
  body: LeanBody | null = null;
  // Wire
  headersSent = false;
  writableEnded = false;
  destroyed = false;
  head: string | null = null;
  /** the head holds only ASCII: it can be glued to a string body and written as UTF-8 */
  headAscii = true;
  noBody = false;
  proto = 'HTTP/1.0';
  /** when the connection was accepted (the listener's coarse clock) */
  readonly started: number;
  /** the last activity the sweep measures --socket-timeout from: body bytes in, response bytes out */
  mark: number;
  /** the response is ended (or a refusal is on its way): the sweep waits for the flush and the peer's close */
  closing = false;
  /** socket.writableLength at the last sweep (progress of a flush) */
  lastW = -1;
  /** socket writes so far (TCP_NODELAY from the second on) */
  writes = 0;
  /** index in l.conns, -1 once removed */
  slot = -1;
  /** one-shot listeners of 'drain' and 'close', in the order added */
  waiting: Array<[event: string, fn: Listener]> | null = null;

  constructor(socket: LeanSocket, l: ListenerState) {
    this.socket = socket;
    this.l = l;
    this.started = l.now;
    this.mark = l.now;
  }

  // ---------------------------------------------------------------------------------------------
  // parsing

  onData(chunk: Buffer): void {
    switch (this.state) {
      case S_BODY: this.feedBody(chunk); return;
      case S_DONE: case S_GONE: return; // nothing may follow a request on a uwsgi connection
    }
    let buf = chunk;
    if (this.acc !== null) {
      // continue a fragmented header / vars block
      if (this.state === S_HEAD) {
        const n = Math.min(4 - this.accLen, chunk.length);
        chunk.copy(this.acc, this.accLen, 0, n);
        this.accLen += n;
        if (this.accLen < 4) return;
        buf = this.acc.subarray(0, 4);
        const rest = chunk.subarray(n);
        this.acc = null;
        this.accLen = 0;
        if (!this.header(buf)) return;
        this.state = S_VARS;
        const total = 4 + this.datasize;
        if (total === 4) { this.packet(EMPTY, 0, 0, rest); return; }
        this.acc = Buffer.allocUnsafe(total);
        buf.copy(this.acc, 0);
        this.accLen = 4;
        if (rest.length === 0) return;
        chunk = rest;
      }
      const need = this.acc.length - this.accLen;
      const n = Math.min(need, chunk.length);
      chunk.copy(this.acc, this.accLen, 0, n);
      this.accLen += n;
      if (this.accLen < this.acc.length) return;
      const block = this.acc;
      this.acc = null;
      this.packet(block, 4, block.length, n === chunk.length ? EMPTY : chunk.subarray(n));
      return;
    }
    // fast path: the data starts a packet
    if (buf.length < 4) {
      if (this.looksLikeHttp(buf)) return;
      this.acc = Buffer.allocUnsafe(4);
      buf.copy(this.acc, 0);
      this.accLen = buf.length;
      return;
    }
    if (!this.header(buf)) return;
    const total = 4 + this.datasize;
    if (buf.length >= total) {
      // the vars are parsed in place; nothing follows them unless a body came in the same read
      this.packet(buf, 4, total, buf.length === total ? EMPTY : buf.subarray(total));
      return;
    }
    this.state = S_VARS;
    this.acc = Buffer.allocUnsafe(total);
    buf.copy(this.acc, 0);
    this.accLen = buf.length;
  }

  /** An HTTP request line where a uwsgi header should be: answer 400 with a hint, log one line. */
  looksLikeHttp(buf: Buffer): boolean {
    const n = Math.min(buf.length, 4);
    for (let i = 0; i < n; i++) {
      const c = buf[i]!;
      if (!((c >= 65 && c <= 90) || (c === 32 && i > 0))) return false;
    }
    if (n < 3) return false;
    this.l.log.warn({ listener: this.l.where, remote: this.socket.remoteAddress }, `an HTTP request arrived on the uwsgi socket ${this.l.where} (--${this.l.info.option}); to serve HTTP clients directly use --http-socket (or --http), or put nginx with uwsgi_pass in front`);
    const text = 'This is a uwsgi protocol socket, not HTTP: serve HTTP with --http-socket, or proxy to it with nginx uwsgi_pass.\n';
    this.state = S_GONE;
    this.socket.write(`HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: ${text.length}\r\nConnection: close\r\n\r\n${text}`, 'latin1');
    this.socket.end();
    this.startClosing();
    return true;
  }

  /** Decode the 4-byte header; false when the connection was refused. */
  header(b: Buffer): boolean {
    if (this.looksLikeHttp(b)) return false;
    this.modifier1 = b[0]!;
    this.datasize = b[1]! | (b[2]! << 8);
    this.modifier2 = b[3]!;
    if (this.datasize > this.l.maxVars) {
      this.refuse(`vars block of ${this.datasize} bytes is larger than --buffer-size ${this.l.maxVars}; raise --buffer-size`);
      return false;
    }
    if (this.datasize === 0 && this.modifier1 === 0) {
      this.refuse('empty vars block');
      return false;
    }
    return true;
  }

  /** Close the connection after a malformed or refused packet: one warning, the worker keeps serving. */
  refuse(why: string): void {
    if (this.state === S_GONE) return;
    this.state = S_GONE;
    this.acc = null;
    this.l.log.warn({ listener: this.l.where, remote: this.socket.remoteAddress, modifier1: this.modifier1 }, `malformed uwsgi packet on ${this.l.where}: ${why}; connection closed`);
    this.socket.destroy();
  }

  /** A complete vars block arrived (`src` from `start` to `end`); `rest` is what followed it in the same read. */
  packet(src: Buffer, start: number, end: number, rest: Buffer): void {
    const m1 = this.modifier1;
    if (m1 !== 0) {
      const h = this.l.modifiers.get(m1);
      if (h === undefined) {
        this.refuse(`no plugin handles modifier1 ${m1} (only 0, the application, unless a plugin registers it)`);
        return;
      }
      this.state = S_GONE;
      removeConn(this.l, this);
      // the handler owns the connection now (as a net.Socket), and may write more than once
      const socket = this.socket.detach();
      socket.setNoDelay(true);
      try {
        h({ modifier1: m1, modifier2: this.modifier2, vars: src.subarray(start, end), rest, socket, listener: this.l.info });
      } catch (e) {
        this.l.log.error({ err: e, modifier1: m1 }, `modifier1 ${m1} handler failed`);
        socket.destroy();
      }
      return;
    }
    const env = this.parseEnv(src, start, end);
    if (env === null) return;
    // CONTENT_LENGTH: missing or empty means no body; anything else must be a plain decimal number
    const clRaw = env.CONTENT_LENGTH as string | undefined;
    let cl = 0;
    if (clRaw !== undefined && clRaw.length !== 0) {
      if (clRaw.length > 15 || !/^[0-9]+$/.test(clRaw)) { this.refuse(`CONTENT_LENGTH ${JSON.stringify(clRaw.slice(0, 20))} is not a non-negative integer`); return; }
      cl = Number(clRaw);
    }
    const p = env.SERVER_PROTOCOL;
    this.proto = p.length === 8 && p.startsWith('HTTP/') && p.charCodeAt(6) === 46 ? p : 'HTTP/1.0';
    this.noBody = env.REQUEST_METHOD === 'HEAD';
    const body = new LeanBody(this.socket, cl === 0);
    this.body = body;
    this.remaining = cl;
    if (cl === 0) {
      this.state = S_DONE;
    } else {
      this.state = S_BODY;
    }
    this.l.server.dispatch(env, body, this, this.l.info);
    if (rest.length !== 0 && this.state === S_BODY) this.feedBody(rest);
  }

  /** The CGI env: exactly the vars sent (later duplicates win, HTTP_* duplicates are joined with ", "). */
  parseEnv(src: Buffer, start: number, end: number): Env | null {
    const b = src as FastBuf;
    const dv = new DataView(b.buffer, b.byteOffset, b.length);
    const cache = this.l.vars;
    const current = cache.current;
    // while the packet sends the remembered keys in order, its values wait in `current` for the builder
    let env: Env | null = null;
    let off = start;
    let count = 0;
    while (off < end) {
      if (off + 2 > end) { this.refuse(`truncated key length at offset ${off - start} of the vars block`); return null; }
      const kl = b[off]! | (b[off + 1]! << 8);
      off += 2;
      if (kl === 0) { this.refuse('empty key in the vars block'); return null; }
      if (off + kl + 2 > end) { this.refuse(`key length ${kl} overflows the vars block (${end - start} bytes)`); return null; }
      const key = cache.key(b, dv, off, kl, count);
      off += kl;
      const vl = b[off]! | (b[off + 1]! << 8);
      off += 2;
      if (off + vl > end) { this.refuse(`value length ${vl} of ${key.slice(0, 40)} overflows the vars block (${end - start} bytes)`); return null; }
      const value = cache.value(b, dv, off, vl, count, key === KEY_PATH_INFO || key === KEY_SCRIPT_NAME);
      off += vl;
      if (env === null) {
        if (count < cache.length && cache.builder !== null) { current[count++] = value; continue; }
        env = this.envSoFar(count); // left the remembered sequence: var by var from here
      }
      if (++count > MAX_VARS) { this.refuse(`more than ${MAX_VARS} vars`); return null; }
      const prev = env[key];
      if (prev === undefined) env[key] = value;
      else if (key === 'CONTENT_LENGTH') {
        if (prev !== value) { this.refuse('conflicting CONTENT_LENGTH vars'); return null; }
      } else if (key.startsWith('HTTP_')) env[key] = `${prev as string}, ${value}`;
      else env[key] = value;
    }
    if (env === null && count === cache.length && cache.builder !== null) env = cache.builder(current);
    else {
      env ??= this.envSoFar(count);
      cache.learn(count);
    }
    // the keys the core and the status line need, when a client left them out
    if (env.REQUEST_METHOD === undefined) env.REQUEST_METHOD = 'GET';
    if (env.PATH_INFO === undefined) env.PATH_INFO = '/';
    if (env.QUERY_STRING === undefined) env.QUERY_STRING = '';
    if (env.REQUEST_URI === undefined) env.REQUEST_URI = env.QUERY_STRING.length ? `${env.PATH_INFO}?${env.QUERY_STRING}` : env.PATH_INFO;
    if (env.SERVER_PROTOCOL === undefined) env.SERVER_PROTOCOL = 'HTTP/1.0';
    env['wsgi.url_scheme'] = env.REQUEST_SCHEME === 'https' || env.HTTPS === 'on' || env.HTTPS === '1' ? 'https' : 'http';
    return env;
  }

  /** The env of the first `n` vars of a packet that followed the remembered (all different) keys so far. */
  envSoFar(n: number): Env {
    const env = {} as Env;
    const { keys, current } = this.l.vars;
    for (let i = 0; i < n; i++) env[keys[i]!] = current[i];
    return env;
  }

  feedBody(chunk: Buffer): void {
    const body = this.body!;
    let c = chunk;
    this.mark = this.l.now;
    if (c.length >= this.remaining) {
      // anything past CONTENT_LENGTH is not part of this request: dropped
      c = c.length === this.remaining ? c : c.subarray(0, this.remaining);
      this.remaining = 0;
      this.state = S_DONE;
      if (c.length) body.push(c);
      body.push(null);
      return;
    }
    this.remaining -= c.length;
    body.feed(c);
  }

  /**
   * The peer closed its side (`reset` false: a FIN, the packet was cut short: one warning) or the connection
   * was reset (`reset` true: the client went away, logged at debug) before the request was complete.
   */
  truncated(reset: boolean): void {
    if (this.state === S_HEAD && this.acc === null) return; // closed between requests: normal
    if (this.state !== S_HEAD && this.state !== S_VARS && this.state !== S_BODY) return;
    const what = this.state === S_HEAD ? 'truncated header'
      : this.state === S_VARS ? `vars block shorter than its datasize ${this.datasize}`
      : `the request body ended ${this.remaining} bytes short of its CONTENT_LENGTH`;
    const body = this.state === S_BODY ? this.body : null;
    if (reset) {
      this.state = S_GONE;
      this.l.log.debug({ listener: this.l.where }, `uwsgi client went away: ${what}`);
    } else this.refuse(what);
    body?.fail(new Error(what));
  }

  // ---------------------------------------------------------------------------------------------
  // the socket's events (LeanOwner)

  onEnd(): void {
    this.truncated(false);
    // a peer that half-closed after a complete request still gets its response
    if (this.state === S_HEAD || this.state === S_GONE) this.socket.end();
  }

  onDrain(): void { this.fire('drain'); }

  onClose(): void {
    this.destroyed = true;
    this.truncated(true);
    removeConn(this.l, this);
    this.fire('close');
  }

  onError(err: NodeJS.ErrnoException): void {
    this.l.log.debug({ code: err.code }, `uwsgi connection error: ${err.message}`);
  }

  // ---------------------------------------------------------------------------------------------
  // Wire

  once(event: string, fn: Listener): this {
    (this.waiting ??= []).push([event, fn]);
    return this;
  }

  removeListener(event: string, fn: Listener): this {
    const w = this.waiting;
    if (w === null) return this;
    for (let i = w.length - 1; i >= 0; i--) if (w[i]![0] === event && w[i]![1] === fn) { w.splice(i, 1); break; }
    return this;
  }

  /** Call the listeners of `event`, each once, with the connection as `this` (as an EventEmitter would). */
  private fire(event: string): void {
    const w = this.waiting;
    if (w === null || !w.some((e) => e[0] === event)) return;
    this.waiting = w.filter((e) => e[0] !== event);
    for (const e of w) if (e[0] === event) e[1].call(this);
  }

  writeHead(status: number, reason: string, headers: HeaderList): void {
    if (this.headersSent) return;
    const m = this.l.head;
    if (m !== null && m.status === status && m.reason === reason && m.proto === this.proto && sameHeaders(m.headers, headers)) {
      this.head = m.head;
      this.headAscii = m.ascii;
    } else this.buildHead(status, reason, headers);
    this.headersSent = true;
    if (status < 200 || status === 204 || status === 304) this.noBody = true;
  }

  private buildHead(status: number, reason: string, headers: HeaderList): void {
    const flat: string[] = [];
    let kind = headerPartKind(reason);
    if (kind === HEAD_BAD) throw badHeaderError('status reason', reason, 'uwsgi');
    let h = `${this.proto} ${status} ${reason}\r\n`;
    for (let i = 0; i < headers.length; i++) {
      const e = headers[i]!;
      const k = e[0];
      const v = e[1];
      kind |= headerPairKind(k, v, 'uwsgi');
      flat.push(k, v);
      // Transfer-Encoding is hop-by-hop and framing is the front end's job: nginx's uwsgi module does not
      // decode a chunked upstream body (it would reach the client still chunk-framed, inside nginx's own
      // chunking), so the body goes out close-delimited and nginx frames it for its client
      if (k.length === 17 && k.toLowerCase() === 'transfer-encoding') continue;
      h += `${k}: ${v}\r\n`;
    }
    this.head = h + '\r\n';
    this.headAscii = kind === HEAD_ASCII;
    this.l.head = { proto: this.proto, status, reason, headers: flat, head: this.head, ascii: this.headAscii };
  }

  /** Streamed bodies keep producing while little is buffered (core/wsgi.ts DRAIN_SLACK). */
  get writableLength(): number {
    // a destroyed socket takes nothing more: full, so that a producer waits for 'close' instead of spinning
    const s = this.socket;
    return s.destroyed ? DEAD_LENGTH : s.writableLength;
  }

  /** One socket write; a response that takes a second one gets TCP_NODELAY first (no Nagle wait on it). */
  private send(data: string | Uint8Array, latin1: boolean): boolean {
    const s = this.socket;
    if (++this.writes === 2) s.setNoDelay(true);
    return latin1 ? s.write(data, 'latin1') : s.write(data);
  }

  private flushHead(): void {
    const h = this.head;
    if (h !== null) { this.head = null; this.send(h, true); }
  }

  write(chunk: string | Uint8Array): boolean {
    if (this.writableEnded || this.destroyed) return false;
    if (this.noBody) { if (this.head !== null) { this.flushHead(); } return true; }
    const h = this.head;
    if (typeof chunk === 'string') {
      if (chunk.length === 0) return true;
      if (h === null) return this.send(chunk, false);
      // the head and the first body bytes leave in one write: glued as one string when both encode alike
      if (this.headAscii) { this.head = null; return this.send(h + chunk, false); }
      chunk = Buffer.from(chunk);
    }
    const len = chunk.byteLength;
    if (len === 0) return true;
    if (h === null) return this.send(chunk, false);
    this.head = null;
    if (len <= JOIN_MAX) {
      // one buffer for both: one write(2) instead of a corked writev of two
      const b = Buffer.allocUnsafe(h.length + len) as FastBuf;
      b.latin1Write(h, 0, h.length);
      b.set(chunk, h.length);
      return this.send(b, false);
    }
    if (++this.writes === 2) this.socket.setNoDelay(true);
    return this.socket.writev([Buffer.from(h, 'latin1'), chunk]); // one writev with the head
  }

  end(chunk?: string | Uint8Array): void {
    if (this.writableEnded || this.destroyed) return;
    const s = this.socket;
    if (chunk !== undefined) this.write(chunk);
    if (this.head !== null) this.flushHead();
    this.writableEnded = true;
    if (this.state === S_DONE && s.writableLength === 0) {
      // the whole request was read and the whole response is in the kernel: close now, as uWSGI does
      // (no shutdown, no wait for the peer's FIN; nothing unread can turn the close into a reset)
      s.destroy();
      return;
    }
    s.end();
    this.startClosing();
    if (this.state === S_BODY) {
      // the response is out before the body was read: stop reading, nothing more is needed
      this.state = S_GONE;
      this.body?.abandon();
    }
  }

  /** After the last byte was queued: the sweep closes the connection if the flush or the peer stalls. */
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


/**
 * --socket-timeout, for every open connection of a listener at once (no timer per socket):
 * - the packet (header and vars) must arrive within the timeout of the accept, so a client that sends one
 *   byte every few seconds cannot hold its connection; a connection that sends nothing is closed silently;
 * - a body must keep arriving (unless the application paused it: a slow application is not a slow client);
 * - a response must keep leaving the socket's buffer (a client that stopped reading is closed);
 * - after the response: the flush must progress, and the peer must close within the timeout.
 * The application's own time to produce its response has no limit here.
 */
function sweepConns(l: ListenerState): void {
  const now = (l.now = Date.now());
  const timeoutMs = l.timeoutMs;
  for (const c of l.conns) {
    if (c.closing || c.state === S_DONE) {
      // while the application answers, only a response stuck in the socket's buffer counts (a client that
      // stopped reading); once it has ended, the peer must also close within the timeout
      const w = c.socket.writableLength;
      if (w !== c.lastW || (w === 0 && !c.closing)) { c.lastW = w; c.mark = now; continue; }
      if (now - c.mark <= timeoutMs) continue;
      if (!c.closing) l.log.debug({ listener: l.where }, 'uwsgi client stopped reading the response (--socket-timeout); connection closed');
      c.socket.destroy();
      continue;
    }
    switch (c.state) {
      case S_HEAD: case S_VARS:
        if (now - c.started <= timeoutMs) break;
        if (c.state === S_HEAD && c.acc === null) { c.socket.destroy(); break; } // connected, sent nothing
        c.state = S_GONE;
        l.log.debug({ listener: l.where }, 'uwsgi packet not complete within --socket-timeout; connection closed');
        c.socket.destroy();
        break;
      case S_BODY:
        if (c.body?.paused === true) { c.mark = now; break; } // the application is not reading: not the client's fault
        if (now - c.mark <= timeoutMs) break;
        l.log.debug({ listener: l.where }, 'uwsgi client too slow (--socket-timeout); connection closed');
        c.state = S_GONE;
        c.body?.fail(new Error('client too slow sending the request body (--socket-timeout)'));
        c.socket.destroy();
        break;
    }
  }
}

/** Encode a uwsgi packet. */
export function encodePacket(vars: Record<string, string>, opts: { modifier1?: number; modifier2?: number; body?: Buffer } = {}): Buffer {
  const parts: Buffer[] = [];
  let size = 0;
  for (const [k, v] of Object.entries(vars)) {
    const kb = Buffer.from(k, 'latin1');
    const vb = Buffer.from(v, 'utf8');
    const e = Buffer.allocUnsafe(4 + kb.length + vb.length);
    e.writeUInt16LE(kb.length, 0);
    kb.copy(e, 2);
    e.writeUInt16LE(vb.length, 2 + kb.length);
    vb.copy(e, 4 + kb.length);
    parts.push(e);
    size += e.length;
  }
  if (size > 65535) throw new RangeError(`uwsgi vars block of ${size} bytes does not fit in 16 bits`);
  const h = Buffer.from([opts.modifier1 ?? 0, size & 0xff, size >> 8, opts.modifier2 ?? 0]);
  return Buffer.concat([h, ...parts, opts.body ?? EMPTY]);
}

/** Decode a vars block; null when malformed. */
export function parseVars(block: Buffer, maxVars = MAX_VARS): Record<string, string> | null {
  const b = block as FastBuf;
  const out: Record<string, string> = {};
  let off = 0;
  let n = 0;
  while (off < b.length) {
    if (off + 2 > b.length) return null;
    const kl = b.readUInt16LE(off); off += 2;
    if (kl === 0 || off + kl + 2 > b.length) return null;
    const k = b.latin1Slice(off, off + kl); off += kl;
    const vl = b.readUInt16LE(off); off += 2;
    if (off + vl > b.length) return null;
    out[k] = b.utf8Slice(off, off + vl); off += vl;
    if (++n > maxVars) return null;
  }
  return out;
}

function describe(a: Address): string {
  return a.kind === 'unix' ? a.path : `${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`;
}

function listenUwsgi(info: ListenerInfo, server: ServerHandle, timeoutMs: number, modifiers: Map<number, ModifierHandler>, log: Logger): Promise<ListenerHandle> {
  const l: ListenerState = {
    info, server, log, timeoutMs, modifiers,
    maxVars: Math.min(server.bufferSize, 65535),
    conns: [],
    where: describe(info.address),
    now: Date.now(),
    vars: new VarCache(),
    head: null,
    closed: null,
  };
  const sweep = setInterval(sweepConns, Math.max(50, Math.min(1000, Math.round(timeoutMs / 4))), l);
  sweep.unref();
  // No noDelay here: a response is one write then close (Nagle never holds a first segment back), and a
  // response that writes again sets TCP_NODELAY then (Conn.send): one setsockopt saved per connection.
  // Connections run on lean sockets (sdk/socket.ts): no net.Socket stream machinery per connection.
  const backlog = (server.options.listen as number | undefined) ?? 1024;
  const accept = (socket: LeanSocket): Conn => {
    const c = new Conn(socket, l);
    addConn(l, c);
    return c;
  };
  // TCP_DEFER_ACCEPT (uWSGI's default, --no-defer-accept turns it off): the kernel holds a connection until its
  // packet arrives, for up to --socket-timeout; with the native helper the first bytes come with the accept
  const deferAccept = info.address.kind === 'tcp' && server.options['no-defer-accept'] !== true ? timeoutMs / 1000 : 0;
  return listenLean(info.address, backlog, accept, (e) => log.error({ err: e }, 'uwsgi listener error'), { deferAccept }).then((srv) => {
    if (info.address.kind === 'tcp') {
      const native = leanAcceptMode(srv) === 'native';
      log.info({ listener: l.where, deferAccept: native ? Math.ceil(deferAccept) : 0, nativeAccept: native },
        native ? `uwsgi socket ${l.where}: deferred accept (TCP_DEFER_ACCEPT ${Math.ceil(deferAccept)} s), native accept`
          : `uwsgi socket ${l.where}: accept through libuv (${deferAccept === 0 ? '--no-defer-accept' : 'the native helper is not built or UWCORE_NATIVE=0'})`);
    }
    return {
      // resolves once the connections are gone too (responses still flushing get their chance; the core bounds
      // the wait before it destroys what remains)
      close: () => new Promise<void>((r) => {
        const end = () => { clearInterval(sweep); r(); };
        srv.close(() => { if (l.conns.length === 0) end(); else l.closed = end; });
      }),
      closeIdle: () => { for (const c of [...l.conns]) if (c.state === S_HEAD && c.acc === null) c.socket.destroy(); },
      connections: () => l.conns.length,
      destroyAll: () => { for (const c of [...l.conns]) c.socket.destroy(); },
    };
  }, (e: unknown) => { clearInterval(sweep); throw e; });
}

export default definePlugin<UwsgiApi>({
  name: 'uwsgi',
  version: '1.0.0',
  sdk: '^1.3.0',
  description: 'the uwsgi binary protocol, as nginx\'s uwsgi_pass speaks it (--uwsgi-socket, --socket)',
  options: [
    { name: 'uwsgi-socket', type: 'addr', multiple: true, alias: ['socket'], short: 's', arg: 'ADDR', help: 'serve the uwsgi protocol (nginx uwsgi_pass) on ADDR: host:port, :port or a UNIX socket path' },
    { name: 'socket-timeout', type: 'seconds', default: 4, min: 0.1, short: 'z', arg: 'S', help: 'close a uwsgi connection whose packet (header and vars) is not complete S seconds after the accept, or that sends nothing for S seconds while its body is incomplete' },
  ],
  setup(api) {
    const timeoutMs = Math.round((api.options['socket-timeout'] as number) * 1000);
    const modifiers = new Map<number, ModifierHandler>();
    api.protocols.register('uwsgi', { listen: (l, s) => listenUwsgi(l, s, timeoutMs, modifiers, api.log) });
    for (const a of (api.options['uwsgi-socket'] as Address[])) api.listen('uwsgi-socket', 'uwsgi', a, { keepAlive: false });
    return {
      registerModifier(m1: number, handler: ModifierHandler) {
        if (!Number.isInteger(m1) || m1 < 1 || m1 > 255) throw api.error('UW_ERR_PLUGIN', `uwsgi modifier1 must be an integer 1..255 (0 is the application), got ${m1}`);
        if (modifiers.has(m1)) throw api.error('UW_ERR_REGISTRY_DUPLICATE', `uwsgi modifier1 ${m1} is already registered`);
        if (typeof handler !== 'function') throw api.error('UW_ERR_PLUGIN', `the handler for uwsgi modifier1 ${m1} must be a function`);
        modifiers.set(m1, handler);
      },
      parseVars,
      encodePacket,
    };
  },
});
