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
// With `deferAccept` and uwcore's optional native helper (native/uwcore_native.c, built by `npm install`), the
// helper accepts instead, and a connection answered during its first call never becomes a handle (acceptLean).
import { Buffer } from 'node:buffer';
import { createRequire } from 'node:module';
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
  /** collect writes until `uncork()`, then send them in one writev(2) (every 64 KiB collected go out at once, and
   *  collecting goes on) */
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
  /** wraps for a descriptor accepted by the native helper */
  TCP: (new (type: number) => StreamHandle & { open(fd: number): number }) | null;
  Pipe: (new (type: number) => StreamHandle & { open(fd: number): number }) | null;
  tcpSocket: number;
  pipeSocket: number;
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
    const tw = pb('tcp_wrap') as { TCP?: Binding['TCP']; constants?: { SOCKET?: number } };
    const pw = pb('pipe_wrap') as { Pipe?: Binding['Pipe']; constants?: { SOCKET?: number } };
    const b: Binding = {
      TCP: typeof tw.TCP === 'function' && typeof tw.constants?.SOCKET === 'number' ? tw.TCP : null,
      Pipe: typeof pw.Pipe === 'function' && typeof pw.constants?.SOCKET === 'number' ? pw.Pipe : null,
      tcpSocket: tw.constants?.SOCKET ?? 0,
      pipeSocket: pw.constants?.SOCKET ?? 0,
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
const CORK_MAX = 65536;

// ---------------------------------------------------------------------------------------------
// the optional native helper (native/uwcore_native.c, built by `npm install`; see acceptLean)

interface Native {
  setIntOpt(fd: number, level: number, name: number, value: number): number;
  write(fd: number, data: string | Uint8Array, utf8: boolean): number;
  writev(fd: number, chunks: Uint8Array[]): number;
  close(fd: number): number;
  name(fd: number, peer: boolean, out: SockName): number;
  acceptor(fd: number, slab: Buffer, meta: Int32Array, onBatch: (err: number) => void): object;
  acceptorSlab(acceptor: object, slab: Buffer): void;
  acceptorPoll(acceptor: object, on: boolean): number;
  acceptorClose(acceptor: object): void;
}

function loadNative(): Native | null {
  if (B === null || B.TCP === null || B.Pipe === null || process.platform !== 'linux' || process.env.UWCORE_NATIVE === '0') return null;
  const req = createRequire(import.meta.url);
  // dist/sdk/socket.js → native/build/Release (where `npm install` built it); a `uwcore build` bundle has it beside
  for (const p of ['../../native/build/Release/uwcore_native.node', './uwcore_native.node']) {
    try {
      return req(p) as Native;
    } catch { /* next */ }
  }
  return null;
}

const N = loadNative();
/** true when the native helper is built and loaded (TCP_DEFER_ACCEPT and the native accept path). @since 1.3.0 */
export const nativeSockets = N !== null;
const IPPROTO_TCP = 6;
const TCP_NODELAY = 1;
const TCP_DEFER_ACCEPT = 9;
const UV_EAGAIN = -11;
/** descriptors closed while still bare: their owners hear onClose when the current call returns */
const fdClosed: HandleSocket[] = [];

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
  /** the stream handle; null while the connection is still a bare descriptor from the native acceptor */
  h: StreamHandle | null;
  /** the descriptor while `h` is null (-1 once on a handle or closed) */
  fd = -1;
  /** a UNIX-socket descriptor (wrapped in a Pipe, not a TCP handle, when it moves to libuv) */
  pipe = false;
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
  /** the net.Socket detach() returned (the native acceptor hands it the first bytes) */
  detached: net.Socket | null = null;
  private peer: SockName | null = null;
  private local: SockName | null = null;

  constructor(h: StreamHandle | null, o: LeanOwner) {
    this.h = h;
    this.o = o;
  }

  get writableLength(): number { return this.closed ? 0 : (this.h === null ? 0 : this.h.writeQueueSize) + this.corkBytes; }
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
    if (h === null) N!.name(this.fd, peer, out);
    else if (peer) h.getpeername?.(out); else h.getsockname?.(out);
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
      // once): past 64 KiB it flushes now and answers for that flush
      return this.corkBytes < CORK_MAX || this.overflow();
    }
    const h = this.h;
    if (h === null) return this.fdWrite(data, encoding);
    const req = writeReq(this);
    const err = typeof data !== 'string' ? h.writeBuffer(req, data)
      : encoding === 'latin1' ? h.writeLatin1String(req, data) : h.writeUtf8String(req, data);
    return this.dispatched(req, err, data);
  }

  writev(chunks: Uint8Array[]): boolean {
    if (this.closed || this.ending) return false;
    if (this.corkBufs !== null) {
      for (const c of chunks) { this.corkBufs.push(c); this.corkBytes += c.byteLength; }
      return this.corkBytes < CORK_MAX || this.overflow();
    }
    if (this.h === null) {
      if (chunks.length <= 64) return this.fdWritev(chunks);
      this.toHandle();
      if (this.h === null) return false;
    }
    const req = writeReq(this);
    return this.dispatched(req, this.h!.writev(req, chunks, true), chunks);
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

  /** write(2) straight to the descriptor; what the kernel does not take goes on through libuv */
  private fdWrite(data: string | Uint8Array, encoding?: 'latin1' | 'utf8'): boolean {
    const isString = typeof data === 'string';
    const utf8 = isString && encoding !== 'latin1';
    const len = !isString ? data.byteLength : utf8 ? Buffer.byteLength(data, 'utf8') : data.length;
    const n = N!.write(this.fd, data, utf8);
    if (n === len) return true;
    if (n < 0 && n !== UV_EAGAIN) { this.fail(n, 'write'); return false; }
    const b = isString ? Buffer.from(data, utf8 ? 'utf8' : 'latin1') : data;
    this.toHandle();
    return this.write(b.subarray(n > 0 ? n : 0));
  }

  private fdWritev(chunks: Uint8Array[]): boolean {
    let len = 0;
    for (const c of chunks) len += c.byteLength;
    let n = N!.writev(this.fd, chunks);
    if (n === len) return true;
    if (n < 0 && n !== UV_EAGAIN) { this.fail(n, 'write'); return false; }
    const rest: Uint8Array[] = [];
    for (const c of chunks) {
      if (n >= c.byteLength) { n -= c.byteLength; continue; }
      rest.push(n > 0 ? c.subarray(n) : c);
      n = 0;
    }
    this.toHandle();
    return this.writev(rest);
  }

  /** The descriptor becomes an ordinary libuv stream handle (reading if the owner has not paused). */
  toHandle(): void {
    const fd = this.fd;
    if (this.h !== null || this.closed) return;
    const b = B!;
    const h = this.pipe ? new b.Pipe!(b.pipeSocket) : new b.TCP!(b.tcpSocket);
    this.fd = -1;
    const err = h.open(fd);
    if (err !== 0) {
      N!.close(fd);
      this.closed = true;
      fdClosed.push(this);
      this.o.onError(uvError(err, 'open'));
      return;
    }
    h.sock = this;
    h.onread = onRead;
    this.h = h;
    if (this.reading) h.readStart();
  }

  cork(): void {
    if (this.corkBufs === null && !this.closed) this.corkBufs = [];
  }

  uncork(): void {
    if (this.corkBufs !== null) this.flushCork();
  }

  /** 64 KiB collected: they go out now, and the socket stays corked */
  private overflow(): boolean {
    const ok = this.flushCork();
    if (!this.closed) this.corkBufs = [];
    return ok;
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
    this.toHandle(); // a half-close waits for the peer's FIN: that needs reading
    if (this.closed) return;
    this.ending = true;
    if (this.pending === 0) this.shutdown();
  }

  shutdown(): void {
    const req = new B!.ShutdownWrap();
    req.oncomplete = afterShutdown;
    req.sock = this;
    const err = this.h!.shutdown(req);
    if (err !== 0) this.destroy(); // not connected any more
  }

  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    this.corkBufs = null;
    if (this.h !== null) { this.h.close(afterClose); return; }
    N!.close(this.fd);
    this.fd = -1;
    fdClosed.push(this); // onClose once the owner's current call has returned, as after a handle's close
  }

  fail(status: number, syscall: string): void {
    if (this.closed) return;
    this.o.onError(uvError(status, syscall));
    this.destroy();
  }

  pause(): void {
    if (!this.reading || this.closed) return;
    this.reading = false;
    this.h?.readStop();
  }

  resume(): void {
    if (this.reading || this.readEnded || this.closed) return;
    this.reading = true;
    this.h?.readStart();
  }

  setNoDelay(on: boolean): void {
    if (this.closed) return;
    if (this.h !== null) this.h.setNoDelay?.(on);
    else if (!this.pipe) N!.setIntOpt(this.fd, IPPROTO_TCP, TCP_NODELAY, on ? 1 : 0);
  }

  detach(): net.Socket {
    this.toHandle();
    const h = this.h;
    if (h === null) throw uvError(-9, 'detach'); // EBADF: the connection is gone
    this.closed = true;
    h.readStop();
    h.sock = null; // node's net.Socket sets its own onread
    return (this.detached = new net.Socket({ handle: h, allowHalfOpen: true, readable: true, writable: true } as net.SocketConstructorOpts));
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

/** Options of `acceptLean` / `listenLean`. @since 1.3.0 */
export interface LeanListenOptions {
  /**
   * Set TCP_DEFER_ACCEPT for this many seconds on a TCP socket (0 or absent: not set), as uWSGI does on its
   * sockets: the kernel hands a connection over only once its first bytes have arrived (or the time is up),
   * for protocols where the client speaks first. It needs the native helper (`nativeSockets`); with it,
   * the connections are also accepted by the helper, which reads their first bytes at once (see acceptLean).
   */
  deferAccept?: number;
}

/**
 * Take over the connections a listening `net.Server` accepts (call it once 'listening' was emitted; works for a
 * socket shared by node:cluster too). `accept(socket)` returns the connection's owner; it is called once per
 * connection, before any data. The server must not have 'connection' listeners of its own.
 *
 * With `deferAccept` and the native helper, the helper accepts: per wakeup it takes every waiting connection
 * and its first bytes, and JavaScript runs them in one call; a connection the owner closes during that call
 * (a request answered at once) never becomes a libuv handle: write(2) and close(2) go straight to its
 * descriptor. Any other connection becomes an ordinary stream handle before the call returns. The owner sees
 * the same calls in the same order either way.
 * @since 1.2.0 (options @since 1.3.0)
 */
export function acceptLean(server: net.Server, accept: (socket: LeanSocket) => LeanOwner, opts: LeanListenOptions = {}): void {
  const handle = (server as unknown as { _handle: ListenHandle | null })._handle;
  if (B === null || handle === null || typeof handle.onconnection !== 'function') {
    modes.set(server, 'net');
    server.on('connection', (s: net.Socket) => {
      const ls = new NetSocket(s, NO_OWNER);
      ls.o = accept(ls);
    });
    return;
  }
  const defer = Math.ceil(opts.deferAccept ?? 0);
  if (N !== null && defer > 0 && typeof handle.fd === 'number' && handle.fd >= 0
    && N.setIntOpt(handle.fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, defer) === 0 && nativeAccept(server, handle, accept)) {
    modes.set(server, 'native');
    return;
  }
  modes.set(server, 'handles');
  handle.onconnection = function onConnection(err: number, h: StreamHandle | undefined): void {
    if (err !== 0 || h === undefined) return; // accept failed (EMFILE …): node's own server ignores it too
    const s = new HandleSocket(h, NO_OWNER);
    h.sock = s;
    s.o = accept(s);
    if (s.closed) return; // destroyed, or detached (the net.Socket reads now)
    h.onread = onRead;
    h.readStart();
  };
}

interface ListenHandle { onconnection: unknown; fd?: number; close(): void }

const modes = new WeakMap<net.Server, LeanAcceptMode>();
/** How a server's connections are accepted: 'native' (the native acceptor, TCP_DEFER_ACCEPT set), 'handles'
 *  (libuv accepts, connections on stream handles), 'net' (net.Socket fallback). @since 1.3.0 */
export type LeanAcceptMode = 'native' | 'handles' | 'net';
/** The accept mode acceptLean chose for `server` (undefined: not a lean server). @since 1.3.0 */
export function leanAcceptMode(server: net.Server): LeanAcceptMode | undefined {
  return modes.get(server);
}

/** connections per native batch, and the slab their first bytes are read into (each read takes ≤ 16 KiB) */
const BATCH = 64;
const SLAB = 65536;
const FIRST_READ_MAX = 16384;

/** The native helper accepts on a duplicate of the listening descriptor; node's own handle is closed. */
function nativeAccept(server: net.Server, handle: ListenHandle, accept: (socket: LeanSocket) => LeanOwner): boolean {
  const n = N!;
  const meta = new Int32Array(2 + 3 * BATCH);
  const pipe = typeof server.address() === 'string';
  let slab = Buffer.allocUnsafeSlow(SLAB);
  let acc: object | null = null;
  let stopped = false;
  let failing = false;
  const onBatch = (err: number): void => {
    const count = meta[1]!;
    let thrown: unknown = null;
    for (let i = 0, j = 2; i < count; i++, j += 3) {
      try { acceptFd(meta[j]!, slab, meta[j + 1]!, meta[j + 2]!, pipe, accept); } catch (e) { thrown ??= e; }
    }
    meta[1] = 0;
    // (not once close() ran during this batch: the acceptor is gone)
    if (!stopped && SLAB - meta[0]! < FIRST_READ_MAX) {
      // the chunks handed out keep the old slab alive as long as their owners do
      slab = Buffer.allocUnsafeSlow(SLAB);
      meta[0] = 0;
      n.acceptorSlab(acc!, slab);
    }
    if (err !== 0) {
      // EMFILE and the like: the helper stopped accepting; try again shortly (the connections wait in the
      // backlog, none is dropped). Reported once per episode.
      if (!failing && server.listenerCount('error') > 0) server.emit('error', uvError(err, 'accept'));
      failing = true;
      setTimeout(() => { if (!stopped) n.acceptorPoll(acc!, true); }, 100);
    } else if (count > 0) {
      failing = false;
    }
    if (thrown !== null) throw thrown;
  };
  try {
    acc = n.acceptor(handle.fd!, slab, meta, onBatch);
  } catch {
    return false;
  }
  const addr = server.address();
  // node's descriptor for the socket closes (the prototype's close: in a cluster worker the instance's close
  // would also tell the primary this worker left the socket; it has not, it serves it through the duplicate)
  (Object.getPrototypeOf(handle) as ListenHandle).close.call(handle);
  server.address = () => addr;
  const close = server.close;
  server.close = function closeNative(this: net.Server, cb?: (err?: Error) => void): net.Server {
    if (!stopped) { stopped = true; n.acceptorClose(acc!); }
    return close.call(this, cb);
  };
  return true;
}

/** One connection of a native batch: its owner gets the first bytes; unless it closed the connection during
 *  that call, the descriptor becomes a libuv handle. */
function acceptFd(fd: number, slab: Buffer, off: number, len: number, pipe: boolean, accept: (socket: LeanSocket) => LeanOwner): void {
  const s = new HandleSocket(null, NO_OWNER);
  s.fd = fd;
  s.pipe = pipe;
  try {
    s.o = accept(s);
    // destroyed or detached in accept(): the owner hears no data; a net.Socket gets the first bytes
    if (s.detached !== null) { if (len > 0) s.detached.unshift(slab.subarray(off, off + len)); }
    else if (s.closed) { /* nothing to deliver */ }
    else if (len > 0) s.o.onData(slab.subarray(off, off + len));
    else if (len < 0 && len !== UV_EAGAIN) s.fail(len, 'read');
    // len 0 (the peer closed) or EAGAIN: the handle reads that (again) below
  } finally {
    if (s.o === NO_OWNER) s.destroy(); // accept() threw: nobody would answer this connection
    else if (!s.closed) s.toHandle();
    // bare descriptors are closed only inside this call; their owners hear onClose now
    if (fdClosed.length > 0) for (const c of fdClosed.splice(0)) c.o.onClose();
  }
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
export function listenLean(address: Address, backlog: number, accept: (socket: LeanSocket) => LeanOwner, onError: (err: Error) => void, opts: LeanListenOptions = {}): Promise<net.Server> {
  const srv = net.createServer({ allowHalfOpen: true });
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    const done = () => {
      srv.removeListener('error', reject);
      srv.on('error', onError);
      acceptLean(srv, accept, opts);
      resolve(srv);
    };
    if (address.kind === 'tcp') srv.listen({ host: address.host, port: address.port, backlog }, done);
    else srv.listen({ path: address.path, backlog }, done);
  });
}

/** A destroyed socket's `writableLength` as a Wire reports it: full, so that a producer waits for 'close'
 *  instead of writing on into nothing. @since 1.2.0 */
export const DEAD_LENGTH = 2 ** 30;
