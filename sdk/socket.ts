// uwcore/sdk/socket: lean server-side connections for protocol plugins (@since SDK 1.2.0).
//
// A node `net.Socket` is a full Duplex stream: per connection it builds the stream state of both sides, an
// EventEmitter, async-id bookkeeping, and every read and write runs through the stream machinery. For a
// protocol where each connection carries one request (nginx's uwsgi_pass opens a new upstream connection per
// request; HTTP clients that send `Connection: close`) that machinery costs more CPU than the kernel's own
// accept/read/write/close. `acceptLean(server, …)` takes over a listening `net.Server`'s accepted connections
// below that layer: each one is a `LeanSocket` on libuv's stream handle (the one net.Socket wraps), with one
// owner object that receives the reads and events as plain method calls. The server itself (listen, cluster
// sharing of the socket, close) stays node's.
//
// It uses node's stream-handle binding (`process.binding('tcp_wrap' / 'stream_wrap')`, on node's allowlist).
// Where that is not available the same interface runs over a net.Socket: slower, identical behaviour.
import { Buffer } from 'node:buffer';
import net from 'node:net';
import { Readable } from 'node:stream';
import { getSystemErrorName } from 'node:util';
import type { Address } from './index.js';

/** What a LeanSocket tells its owner. Every method is called with the owner as `this`. @since 1.2.0 */
export interface LeanOwner {
  /** bytes arrived (the buffer is the owner's to keep). */
  onData(chunk: Buffer): void;
  /** the peer closed its sending side (FIN). The socket stays open for writing until `end()`/`destroy()`. */
  onEnd(): void;
  /** everything written so far has reached the kernel, after a `write()` that returned false. */
  onDrain(): void;
  /** the connection is closed (after `destroy()`, a reset, or `end()` once the peer had closed too). */
  onClose(): void;
  /** a read or write failed (ECONNRESET, EPIPE …); `onClose` follows. */
  onError(err: NodeJS.ErrnoException): void;
}

/** One accepted connection. @since 1.2.0 */
export interface LeanSocket {
  /** bytes written but not yet taken by the kernel */
  readonly writableLength: number;
  readonly destroyed: boolean;
  /** the peer's address and port (undefined on a UNIX socket); looked up on first use */
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  /** this end's address and port (undefined on a UNIX socket); looked up on first use */
  readonly localAddress: string | undefined;
  readonly localPort: number | undefined;
  /** false when the bytes are queued (wait for `onDrain`). Strings are written as `encoding` (default utf8). */
  write(data: string | Uint8Array, encoding?: 'latin1' | 'utf8'): boolean;
  /** several buffers in one writev(2) */
  writev(chunks: Uint8Array[]): boolean;
  /** collect writes until `uncork()` (or until 16 KiB are collected), then send them in one writev(2) */
  cork(): void;
  uncork(): void;
  readonly corked: boolean;
  /** close the sending side once everything written is out (FIN); the socket closes when the peer has too. */
  end(): void;
  /** close now (queued bytes are dropped). */
  destroy(): void;
  /** stop / restart reading (backpressure on a request body) */
  pause(): void;
  resume(): void;
  setNoDelay(on: boolean): void;
  /** hand the connection over to a plain net.Socket (the owner hears nothing more). */
  detach(): net.Socket;
}

// ---------------------------------------------------------------------------------------------
// the stream-handle binding

interface Req {
  oncomplete: (this: Req, status: number) => void;
  sock: HandleSocket | null;
  buffer: unknown;
}
interface StreamHandle {
  /** an internal field: must always hold a function */
  onread: (this: StreamHandle, ab: ArrayBuffer | undefined) => void;
  sock: HandleSocket | null;
  writeQueueSize: number;
  readStart(): number;
  readStop(): number;
  writeBuffer(req: Req, b: Uint8Array): number;
  writeLatin1String(req: Req, s: string): number;
  writeUtf8String(req: Req, s: string): number;
  writev(req: Req, chunks: Uint8Array[], allBuffers: boolean): number;
  shutdown(req: Req): number;
  close(cb: (this: StreamHandle) => void): void;
  setNoDelay?(on: boolean): number;
  getpeername?(out: SockName): number;
  getsockname?(out: SockName): number;
}
interface SockName { address?: string; port?: number }
interface Binding {
  WriteWrap: new () => Req;
  ShutdownWrap: new () => Req;
  state: Int32Array;
  kRead: number;
  kOffset: number;
  kAsync: number;
  EOF: number;
}

function loadBinding(): Binding | null {
  if (process.env.UWCORE_LEAN_SOCKETS === '0') return null;
  try {
    const pb = (process as unknown as { binding(name: string): Record<string, unknown> }).binding;
    const sw = pb('stream_wrap') as Record<string, unknown>;
    const uv = pb('uv') as Record<string, unknown>;
    const state = sw.streamBaseState;
    if (typeof sw.WriteWrap !== 'function' || typeof sw.ShutdownWrap !== 'function' || !(state instanceof Int32Array)) return null;
    const b: Binding = {
      WriteWrap: sw.WriteWrap as Binding['WriteWrap'],
      ShutdownWrap: sw.ShutdownWrap as Binding['ShutdownWrap'],
      state,
      kRead: sw.kReadBytesOrError as number,
      kOffset: sw.kArrayBufferOffset as number,
      kAsync: sw.kLastWriteWasAsync as number,
      EOF: typeof uv.UV_EOF === 'number' ? uv.UV_EOF : -4095,
    };
    return [b.kRead, b.kOffset, b.kAsync].every((k) => Number.isInteger(k)) ? b : null;
  } catch {
    return null;
  }
}

const B = loadBinding();
/** true when connections run on node's stream handles directly (false: over net.Socket). @since 1.2.0 */
export const leanSockets = B !== null;
const STATE = B?.state ?? new Int32Array(8);
const K_READ = B?.kRead ?? 0;
const K_OFFSET = B?.kOffset ?? 0;
const K_ASYNC = B?.kAsync ?? 0;
const UV_EOF = B?.EOF ?? -4095;
/** how much a corked socket collects before it writes anyway */
const CORK_MAX = 16384;

/** One WriteWrap serves every write that completes at once (node binds it to a request only when a write
 *  is queued); a queued write takes it, and a new spare is made. */
let spare: Req | null = null;
function writeReq(s: HandleSocket): Req {
  const r = spare ?? new B!.WriteWrap();
  spare = null;
  r.oncomplete = afterWrite;
  r.sock = s;
  return r;
}

function uvError(status: number, syscall: string): NodeJS.ErrnoException {
  let name = 'EIO';
  try { name = getSystemErrorName(status); } catch { /* not a known errno */ }
  const e = new Error(`${syscall} ${name}`) as NodeJS.ErrnoException;
  e.errno = status;
  e.code = name;
  e.syscall = syscall;
  return e;
}

function onRead(this: StreamHandle, ab: ArrayBuffer | undefined): void {
  const s = this.sock;
  if (s === null) return;
  const n = STATE[K_READ]!;
  if (n > 0) { s.o.onData(Buffer.from(ab!, STATE[K_OFFSET]!, n)); return; }
  if (n === 0) return;
  if (n === UV_EOF) {
    s.readEnded = true;
    s.reading = false;
    this.readStop();
    s.o.onEnd();
    if (s.shut && !s.closed) s.destroy();
    return;
  }
  s.fail(n, 'read');
}

function afterWrite(this: Req, status: number): void {
  const s = this.sock;
  this.sock = null;
  this.buffer = null;
  if (s === null || s.closed) return;
  s.pending--;
  if (status < 0) { s.fail(status, 'write'); return; }
  if (s.pending !== 0) return;
  if (s.ending && !s.shut) s.shutdown();
  if (s.wantDrain) { s.wantDrain = false; s.o.onDrain(); }
}

function afterShutdown(this: Req, _status: number): void {
  const s = this.sock;
  this.sock = null;
  if (s === null || s.closed) return;
  s.shut = true;
  if (s.readEnded) s.destroy();
}

function afterClose(this: StreamHandle): void {
  const s = this.sock;
  this.sock = null;
  if (s !== null) s.o.onClose();
}

class HandleSocket implements LeanSocket {
  h: StreamHandle;
  o: LeanOwner;
  /** async writes not yet completed */
  pending = 0;
  wantDrain = false;
  reading = true;
  readEnded = false;
  ending = false;
  shut = false;
  closed = false;
  /** writes collected while corked */
  private corkBufs: Uint8Array[] | null = null;
  private corkBytes = 0;
  private peer: SockName | null = null;
  private local: SockName | null = null;

  constructor(h: StreamHandle, o: LeanOwner) {
    this.h = h;
    this.o = o;
  }

  get writableLength(): number { return this.closed ? 0 : this.h.writeQueueSize + this.corkBytes; }
  get corked(): boolean { return this.corkBufs !== null; }
  get destroyed(): boolean { return this.closed; }

  get remoteAddress(): string | undefined { return (this.peer ??= this.name(true)).address; }
  get remotePort(): number | undefined { return (this.peer ??= this.name(true)).port; }
  get localAddress(): string | undefined { return (this.local ??= this.name(false)).address; }
  get localPort(): number | undefined { return (this.local ??= this.name(false)).port; }

  private name(peer: boolean): SockName {
    const out: SockName = {};
    const h = this.h;
    if (this.closed) return out;
    if (peer) h.getpeername?.(out); else h.getsockname?.(out);
    return out;
  }

  write(data: string | Uint8Array, encoding?: 'latin1' | 'utf8'): boolean {
    if (this.closed || this.ending) return false;
    const cb = this.corkBufs;
    if (cb !== null) {
      const b = typeof data === 'string' ? Buffer.from(data, encoding ?? 'utf8') : data;
      cb.push(b);
      this.corkBytes += b.byteLength;
      // a corked write never says "wait for drain" (no drain would come if the flush then completes at
      // once): past 16 KiB it flushes now and answers for that flush
      return this.corkBytes < CORK_MAX || this.flushCork();
    }
    const h = this.h;
    const req = writeReq(this);
    const err = typeof data !== 'string' ? h.writeBuffer(req, data)
      : encoding === 'latin1' ? h.writeLatin1String(req, data) : h.writeUtf8String(req, data);
    return this.dispatched(req, err, data);
  }

  writev(chunks: Uint8Array[]): boolean {
    if (this.closed || this.ending) return false;
    if (this.corkBufs !== null) {
      for (const c of chunks) { this.corkBufs.push(c); this.corkBytes += c.byteLength; }
      return this.corkBytes < CORK_MAX || this.flushCork();
    }
    const req = writeReq(this);
    return this.dispatched(req, this.h.writev(req, chunks, true), chunks);
  }

  private dispatched(req: Req, err: number, data: unknown): boolean {
    if (err !== 0) { req.sock = null; spare = req; this.fail(err, 'write'); return false; }
    if (STATE[K_ASYNC] === 0) { req.sock = null; spare = req; return true; }
    // queued in libuv: the request now belongs to it (and keeps the bytes alive) until it completes
    req.buffer = data;
    this.pending++;
    this.wantDrain = true;
    return false;
  }

  cork(): void {
    if (this.corkBufs === null && !this.closed) this.corkBufs = [];
  }

  uncork(): void {
    if (this.corkBufs !== null) this.flushCork();
  }

  private flushCork(): boolean {
    const b = this.corkBufs!;
    this.corkBufs = null;
    this.corkBytes = 0;
    if (b.length === 0) return true;
    return b.length === 1 ? this.write(b[0]!) : this.writev(b);
  }

  end(): void {
    if (this.closed || this.ending) return;
    if (this.corkBufs !== null) this.flushCork();
    this.ending = true;
    if (this.pending === 0) this.shutdown();
  }

  shutdown(): void {
    const req = new B!.ShutdownWrap();
    req.oncomplete = afterShutdown;
    req.sock = this;
    const err = this.h.shutdown(req);
    if (err !== 0) this.destroy(); // not connected any more
  }

  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    this.corkBufs = null;
    this.h.close(afterClose);
  }

  fail(status: number, syscall: string): void {
    if (this.closed) return;
    this.o.onError(uvError(status, syscall));
    this.destroy();
  }

  pause(): void {
    if (!this.reading || this.closed) return;
    this.reading = false;
    this.h.readStop();
  }

  resume(): void {
    if (this.reading || this.readEnded || this.closed) return;
    this.reading = true;
    this.h.readStart();
  }

  setNoDelay(on: boolean): void {
    if (!this.closed) this.h.setNoDelay?.(on);
  }

  detach(): net.Socket {
    const h = this.h;
    this.closed = true;
    h.readStop();
    h.sock = null; // node's net.Socket sets its own onread
    return new net.Socket({ handle: h, allowHalfOpen: true, readable: true, writable: true } as net.SocketConstructorOpts);
  }
}

// ---------------------------------------------------------------------------------------------
// the same interface over a net.Socket (where the binding is missing)

class NetSocket implements LeanSocket {
  readonly s: net.Socket;
  o: LeanOwner;
  constructor(s: net.Socket, o: LeanOwner) {
    this.s = s;
    this.o = o;
    s.on('data', (d: Buffer) => this.o.onData(d));
    s.on('end', () => this.o.onEnd());
    s.on('drain', () => this.o.onDrain());
    s.on('close', () => this.o.onClose());
    s.on('error', (e: NodeJS.ErrnoException) => this.o.onError(e));
  }
  get writableLength(): number { return this.s.writableLength; }
  get destroyed(): boolean { return this.s.destroyed; }
  get remoteAddress(): string | undefined { return this.s.remoteAddress; }
  get remotePort(): number | undefined { return this.s.remotePort; }
  get localAddress(): string | undefined { return this.s.localAddress; }
  get localPort(): number | undefined { return this.s.localPort; }
  write(data: string | Uint8Array, encoding?: 'latin1' | 'utf8'): boolean {
    return typeof data === 'string' ? this.s.write(data, encoding ?? 'utf8') : this.s.write(data);
  }
  writev(chunks: Uint8Array[]): boolean {
    const s = this.s;
    s.cork();
    let ok = true;
    for (const c of chunks) ok = s.write(c);
    s.uncork();
    return ok;
  }
  cork(): void { this.s.cork(); }
  uncork(): void { while (this.s.writableCorked > 0) this.s.uncork(); }
  get corked(): boolean { return this.s.writableCorked > 0; }
  end(): void { this.s.end(); }
  destroy(): void { this.s.destroy(); }
  pause(): void { this.s.pause(); }
  resume(): void { this.s.resume(); }
  setNoDelay(on: boolean): void { this.s.setNoDelay(on); }
  detach(): net.Socket {
    const s = this.s;
    s.removeAllListeners('data').removeAllListeners('end').removeAllListeners('drain').removeAllListeners('close').removeAllListeners('error');
    return s;
  }
}

/**
 * Take over the connections a listening `net.Server` accepts (call it once 'listening' was emitted; works for a
 * socket shared by node:cluster too). `accept(socket)` returns the connection's owner; it is called once per
 * connection, before any data. The server must not have 'connection' listeners of its own.
 * @since 1.2.0
 */
export function acceptLean(server: net.Server, accept: (socket: LeanSocket) => LeanOwner): void {
  const handle = (server as unknown as { _handle: { onconnection: unknown } | null })._handle;
  if (B === null || handle === null || typeof handle.onconnection !== 'function') {
    server.on('connection', (s: net.Socket) => {
      const ls = new NetSocket(s, NO_OWNER);
      ls.o = accept(ls);
    });
    return;
  }
  handle.onconnection = function onConnection(err: number, h: StreamHandle | undefined): void {
    if (err !== 0 || h === undefined) return; // accept failed (EMFILE …): node's own server ignores it too
    const s = new HandleSocket(h, NO_OWNER);
    h.sock = s;
    s.o = accept(s);
    h.onread = onRead;
    h.readStart();
  };
}

const NO_OWNER: LeanOwner = { onData() {}, onEnd() {}, onDrain() {}, onClose() {}, onError() {} };

// ---------------------------------------------------------------------------------------------
// building blocks for protocols on lean sockets

/**
 * A request body fed from a lean connection: `feed()` pushes a chunk and pauses the socket when the reader's
 * buffer is full; the reader asking for more resumes it. An `empty` body ends at the first read.
 * @since 1.2.0
 */
export class LeanBody extends Readable {
  readonly socket: LeanSocket;
  /** the socket is paused because this stream's buffer is full */
  paused = false;
  private eof: boolean;
  constructor(socket: LeanSocket, empty: boolean) {
    super();
    this.socket = socket;
    this.eof = empty;
  }
  feed(chunk: Buffer): void {
    if (!this.push(chunk) && !this.paused) {
      this.paused = true;
      this.socket.pause();
    }
  }
  /** the request is over before the body was read: end the stream, and read (to drop) what still comes */
  abandon(): void {
    this.push(null);
    this.unpause();
  }
  /** The request failed (client gone, too slow, malformed): a reader gets `err`; with no reader waiting the
   *  stream is only destroyed (an 'error' nobody listens to would end the process). */
  fail(err: Error): void {
    if (this.destroyed) return;
    if (this.listenerCount('error') > 0) this.destroy(err);
    else this.destroy();
  }
  unpause(): void {
    if (this.paused) { this.paused = false; this.socket.resume(); }
  }
  override _read(): void {
    if (this.eof) { this.eof = false; this.push(null); return; }
    this.unpause();
  }
}

/** What `headerPartKind` finds in a status reason, header name or value. @since 1.2.0 */
export const HEAD_ASCII = 0;
/** a character above 0x7f: the head goes out as Latin-1, so it is not glued to a UTF-8 body string */
export const HEAD_WIDE = 1;
/** CR, LF or NUL: refused (response splitting) */
export const HEAD_BAD = 2;

/** Scan one part of a response head. @since 1.2.0 */
export function headerPartKind(s: string): number {
  let kind = HEAD_ASCII;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 13 || c === 10 || c === 0) return HEAD_BAD;
    if (c > 127) kind = HEAD_WIDE;
  }
  return kind;
}

/** Scan one response header: its kind (HEAD_ASCII or HEAD_WIDE), or the error for a CR, LF or NUL in it or
 *  an empty name (thrown: the core answers 500). @since 1.2.0 */
export function headerPairKind(name: string, value: string, plugin: string): number {
  const kind = headerPartKind(name) | headerPartKind(value);
  if (kind >= HEAD_BAD || name.length === 0) throw badHeaderError('response header', name, plugin);
  return kind;
}

/** The error for a response head part that `headerPartKind` refused (the core answers 500). @since 1.2.0 */
export function badHeaderError(what: string, name: string, plugin: string): Error {
  return Object.assign(new Error(`${what} ${JSON.stringify(name).slice(0, 60)} contains CR, LF or NUL`), { code: 'UW_ERR_APP_RESPONSE', plugin });
}

/**
 * Listen on `address` (TCP or UNIX path, with `backlog`) and hand every accepted connection to `accept` as a
 * lean socket. Resolves with node's server once it listens (rejects with the listen error: EADDRINUSE …).
 * @since 1.2.0
 */
export function listenLean(address: Address, backlog: number, accept: (socket: LeanSocket) => LeanOwner, onError: (err: Error) => void): Promise<net.Server> {
  const srv = net.createServer({ allowHalfOpen: true });
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    const done = () => {
      srv.removeListener('error', reject);
      srv.on('error', onError);
      acceptLean(srv, accept);
      resolve(srv);
    };
    if (address.kind === 'tcp') srv.listen({ host: address.host, port: address.port, backlog }, done);
    else srv.listen({ path: address.path, backlog }, done);
  });
}

/** A destroyed socket's `writableLength` as a Wire reports it: full, so that a producer waits for 'close'
 *  instead of writing on into nothing. @since 1.2.0 */
export const DEAD_LENGTH = 2 ** 30;
