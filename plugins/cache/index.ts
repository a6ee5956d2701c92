// The `cache` plugin: named caches shared by every worker (uWSGI's cache2), held by the master and reached
// over IPC, so a worker that dies in the middle of a call can never leave a cache locked or corrupted.
//
// - master / single process: the stores (store.ts), an rpc handler that applies a batch of operations
//   synchronously, the expiry sweeper, persistence, the stats section;
// - workers (and service processes): a client that queues calls and sends them in batches (one IPC message
//   per event-loop turn, at most MAX_INFLIGHT batches in flight), so a request that does a get and a set costs
//   a fraction of an IPC round trip under load; calls from one process are applied in the order they are made.
// - single process: calls go straight to the store (no IPC, no serialization).
import { Buffer } from 'node:buffer';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { HeaderList, PluginApi, RequestContext, RouteResult, Transform } from '../../sdk/index.js';
import { definePlugin } from '../../sdk/index.js';
import {
  CacheConfigError, CacheStore, NotANumberError, StoreFileError, TTL_DEFAULT, parseCache2, readStore, splitKeyval,
  writeStore, writeStoreSync, type CacheConfig, type CacheStats,
} from './store.js';
import { FrameReader, Out, R_BUF, R_ERR, R_FALSE, R_JSON, R_KEYS, R_META, R_NULL, R_NUM, R_TRUE } from './channel.js';

export type { CacheConfig, CacheStats } from './store.js';

/** What a cache stores: bytes. Strings are UTF-8 encoded on the way in; `get` always gives a Buffer. */
export type CacheValue = Buffer | Uint8Array | string;

export interface SetOptions {
  /** seconds to live (fractions allowed); 0 = never expires; omitted = the cache's `expires` (default 0) */
  expires?: number;
}

/** One named cache. Every call is async; calls made by one process are applied in the order they are made. */
export interface Cache {
  readonly name: string;
  /** the value, or `null` when the key is missing or expired (never `undefined`) */
  get(key: string): Promise<Buffer | null>;
  /** create or overwrite; false when the key is new and the cache is full (no purge_lru) */
  set(key: string, value: CacheValue, opts?: SetOptions): Promise<boolean>;
  /** create only (uWSGI's cache_set): false when the key exists, or when the cache is full */
  add(key: string, value: CacheValue, opts?: SetOptions): Promise<boolean>;
  /** the same as set (uWSGI's cache_update) */
  update(key: string, value: CacheValue, opts?: SetOptions): Promise<boolean>;
  /** true when the key existed */
  del(key: string): Promise<boolean>;
  exists(key: string): Promise<boolean>;
  /** remove every item; resolves true */
  clear(): Promise<boolean>;
  /** the live keys, least recently used first when purge_lru is on, else in insertion order */
  keys(): Promise<string[]>;
  /**
   * Add `by` (default 1, a safe integer) to the 64-bit counter at key; a missing key starts at math_initial.
   * Resolves the new value, or null when the key is new and the cache is full. Rejects with
   * UW_ERR_CACHE_NOT_A_NUMBER when the value is not an 8-byte counter.
   */
  inc(key: string, by?: number): Promise<number | null>;
  dec(key: string, by?: number): Promise<number | null>;
  /** the counter at key (0 when missing); rejects with UW_ERR_CACHE_NOT_A_NUMBER when the value is not one */
  num(key: string): Promise<number>;
  /** counters and sizes (the same object as the stats server's caches[] entry) */
  stats(): Promise<CacheStats>;
}

/** What `api.use('cache')` and `import { cache } from 'uwcore'` reach. */
export interface CacheApi {
  /** the named cache (the first configured one when the name is omitted); throws UW_ERR_CACHE_UNKNOWN */
  cache(name?: string): Cache;
  /** the configured cache names, the default one first */
  names(): string[];
}

// ---------------------------------------------------------------------------------------------
// operations (the wire format of a batch: a flat array of header, then the op's fields)

const OP_GET = 0, OP_SET = 1, OP_ADD = 2, OP_DEL = 3, OP_EXISTS = 4, OP_CLEAR = 5, OP_KEYS = 6, OP_INC = 7,
  OP_NUM = 8, OP_STATS = 9, OP_GETM = 10, OP_SETM = 11;

/** batch limits: operations and value bytes per IPC message, batches in flight per process */
const MAX_OPS = 512;
const MAX_BYTES = 1 << 20;
const MAX_INFLIGHT = 4;

const E_UNKNOWN = 'UW_ERR_CACHE_UNKNOWN';
const E_NONE = 'UW_ERR_CACHE_NONE';
const E_KEY = 'UW_ERR_CACHE_KEY';
const E_VALUE = 'UW_ERR_CACHE_VALUE_TOO_LARGE';
const E_ARG = 'UW_ERR_CACHE_BAD_ARGUMENT';
const E_NAN = 'UW_ERR_CACHE_NOT_A_NUMBER';
const E_STORE = 'UW_ERR_CACHE_STORE';
/** the option key the master sets (configure hook) so that workers find its socket */
const SOCKET_KEY = '__cache-socket';

type BatchResult = [unknown[], Array<[number, string, string]> | null];

/** Apply one operation to a store. `val` is owned by the store (already copied). */
function run(s: CacheStore, op: number, key: string, val: Buffer | undefined, num: number, meta: string | null, now: number): unknown {
  switch (op) {
    case OP_GET: return s.get(key, now);
    case OP_SET: case OP_ADD: case OP_SETM: return s.put(key, Buffer.byteLength(key), val!, s.ttlMs(num), meta, op === OP_ADD, now);
    case OP_DEL: return s.del(key, now);
    case OP_EXISTS: return s.exists(key, now);
    case OP_CLEAR: s.clear(now); return true;
    case OP_KEYS: return s.keys(now);
    case OP_INC: return s.inc(key, Buffer.byteLength(key), BigInt(num), now);
    case OP_NUM: return s.num(key, now);
    case OP_STATS: return s.stats();
    case OP_GETM: return s.getMeta(key, now);
    default: throw Object.assign(new Error(`unknown cache operation ${op}`), { code: E_ARG });
  }
}

/** a private copy of bytes that arrived from elsewhere (an IPC message buffer, the application's Buffer) */
function owned(b: Uint8Array): Buffer {
  const v = Buffer.allocUnsafeSlow(b.byteLength);
  v.set(b);
  return v;
}

function keyBytes(key: string, keysize: number): number {
  // a UTF-16 unit is 1..3 UTF-8 bytes: measure only when it matters
  return key.length * 3 <= keysize ? key.length : Buffer.byteLength(key);
}

/** Where a cache's calls go: straight to the store (master / single) or over IPC (workers). */
interface Client {
  op(h: number, key: string): Promise<unknown>;
  set(h: number, key: string, val: Buffer, fresh: boolean, expires: number, meta: string | null): Promise<unknown>;
  inc(h: number, key: string, by: number): Promise<unknown>;
}

class LocalClient implements Client {
  constructor(private readonly stores: CacheStore[], private readonly wrap: (e: unknown) => unknown) {}
  op(h: number, key: string): Promise<unknown> {
    const op = h & 15;
    try {
      const r = run(this.stores[h >>> 4]!, op, key, undefined, 0, null, Date.now());
      // the application must not be able to change a stored value through the Buffer it got
      return Promise.resolve(op === OP_GET && r !== null ? Buffer.from(r as Buffer) : r);
    } catch (e) {
      return Promise.reject(this.wrap(e));
    }
  }
  set(h: number, key: string, val: Buffer, fresh: boolean, expires: number, meta: string | null): Promise<unknown> {
    try {
      return Promise.resolve(run(this.stores[h >>> 4]!, h & 15, key, fresh ? val : owned(val), expires, meta, Date.now()));
    } catch (e) {
      return Promise.reject(this.wrap(e));
    }
  }
  inc(h: number, key: string, by: number): Promise<unknown> {
    try {
      return Promise.resolve(run(this.stores[h >>> 4]!, OP_INC, key, undefined, by, null, Date.now()));
    } catch (e) {
      return Promise.reject(this.wrap(e));
    }
  }
}

class Batch {
  readonly p: unknown[] = [];
  readonly res: Array<(v: unknown) => void> = [];
  readonly rej: Array<(e: unknown) => void> = [];
  bytes = 0;
}

/** Queues calls and sends them to the master in batches; answers come back in the same order. */
class RemoteClient implements Client {
  private cur: Batch | null = null;
  private readonly ready: Batch[] = [];
  private inflight = 0;
  private scheduled = false;
  private readonly flushFn = (): void => this.flush();

  constructor(private readonly api: PluginApi) {}

  private batch(bytes: number): Batch {
    let b = this.cur;
    if (b !== null && (b.res.length >= MAX_OPS || b.bytes + bytes > MAX_BYTES)) {
      this.ready.push(b);
      b = null;
    }
    if (b === null) {
      b = this.cur = new Batch();
      if (!this.scheduled) { this.scheduled = true; setImmediate(this.flushFn); }
    }
    b.bytes += bytes;
    return b;
  }

  private wait(b: Batch): Promise<unknown> {
    return new Promise((resolve, reject) => { b.res.push(resolve); b.rej.push(reject); });
  }

  op(h: number, key: string): Promise<unknown> {
    const b = this.batch(0);
    b.p.push(h, key);
    return this.wait(b);
  }

  set(h: number, key: string, val: Buffer, _fresh: boolean, expires: number, meta: string | null): Promise<unknown> {
    const b = this.batch(val.length);
    if ((h & 15) === OP_SETM) b.p.push(h, key, val, expires, meta);
    else b.p.push(h, key, val, expires);
    return this.wait(b);
  }

  inc(h: number, key: string, by: number): Promise<unknown> {
    const b = this.batch(0);
    b.p.push(h, key, by);
    return this.wait(b);
  }

  private flush(): void {
    this.scheduled = false;
    while (this.inflight < MAX_INFLIGHT) {
      let b = this.ready.shift();
      if (b === undefined) {
        if (this.cur === null) break;
        b = this.cur;
        this.cur = null;
      }
      this.send(b);
    }
  }

  private send(b: Batch): void {
    this.inflight++;
    this.api.rpc.call<BatchResult>('b', b.p).then((r) => this.settle(b, r), (e: unknown) => this.fail(b, e));
  }

  private settle(b: Batch, r: BatchResult): void {
    this.inflight--;
    const out = r[0];
    const errs = r[1];
    let ei = 0;
    for (let i = 0; i < b.res.length; i++) {
      if (errs !== null && ei < errs.length && errs[ei]![0] === i) {
        const e = errs[ei++]!;
        b.rej[i]!(this.api.error(e[1], e[2]));
      } else b.res[i]!(out[i]);
    }
    this.next();
  }

  private fail(b: Batch, e: unknown): void {
    this.inflight--;
    for (const rej of b.rej) rej(e);
    this.next();
  }

  private next(): void {
    if ((this.ready.length > 0 || this.cur !== null) && !this.scheduled) { this.scheduled = true; setImmediate(this.flushFn); }
  }
}

// ---------------------------------------------------------------------------------------------
// the socket channel (channel.ts): the master's side and the workers' client

/** Apply one request frame; returns the reply frame. */
function handleFrame(stores: CacheStore[], f: Buffer, p: number, end: number): Buffer {
  const now = Date.now();
  const out = new Out(256);
  while (p < end) {
    const op = f[p]!;
    const ci = f.readUInt16LE(p + 1);
    const kl = f.readUInt16LE(p + 3);
    p += 5;
    const key = kl === 0 ? '' : f.toString('utf8', p, p + kl);
    p += kl;
    let val: Buffer | undefined;
    let num = 0;
    let meta: string | null = null;
    if (op === OP_SET || op === OP_ADD || op === OP_SETM) {
      const vl = f.readUInt32LE(p);
      p += 4;
      val = f.subarray(p, p + vl);
      p += vl;
      num = f.readDoubleLE(p);
      p += 8;
      if (op === OP_SETM) {
        const has = f[p++]!;
        const ml = f.readUInt16LE(p);
        p += 2;
        if (has === 1) meta = f.toString('latin1', p, p + ml);
        p += ml;
      }
    } else if (op === OP_INC) {
      num = f.readDoubleLE(p);
      p += 8;
    }
    const s = stores[ci];
    try {
      if (s === undefined) throw Object.assign(new Error(`no cache #${ci}`), { code: E_UNKNOWN });
      if (kl > s.cfg.keysize) throw Object.assign(new Error(`cache "${s.cfg.name}": key longer than keysize`), { code: E_KEY });
      if (val !== undefined && val.length > s.cfg.blocksize) throw Object.assign(new Error(`cache "${s.cfg.name}": value larger than blocksize`), { code: E_VALUE });
      const r = run(s, op, key, val === undefined ? undefined : owned(val), num, meta, now);
      switch (op) {
        case OP_GET:
          if (r === null) out.u8(R_NULL);
          else { const b = r as Buffer; out.u8(R_BUF); out.u32(b.length); out.bytes(b); }
          break;
        case OP_GETM:
          if (r === null) out.u8(R_NULL);
          else {
            const [b, m, x] = r as [Buffer, string | null, number];
            out.u8(R_META); out.u32(b.length); out.bytes(b); out.f64(x);
            out.u8(m === null ? 0 : 1); out.str(m ?? '', 'latin1');
          }
          break;
        case OP_INC: case OP_NUM:
          if (r === null) out.u8(R_NULL); else { out.u8(R_NUM); out.f64(r as number); }
          break;
        case OP_KEYS: {
          const ks = r as string[];
          out.u8(R_KEYS); out.u32(ks.length);
          for (const k of ks) out.str(k, 'utf8');
          break;
        }
        case OP_STATS: out.u8(R_JSON); out.str(JSON.stringify(r), 'utf8', true); break;
        default: out.u8(r === true ? R_TRUE : R_FALSE);
      }
    } catch (e) {
      const err = e as Error & { code?: string };
      out.u8(R_ERR);
      out.str(err instanceof NotANumberError ? E_NAN : err.code ?? E_ARG, 'latin1');
      out.str(err.message, 'utf8', true);
    }
  }
  return out.frame();
}

/** Remove socket directories left by masters that were killed (kill -9 runs no cleanup). */
function removeStaleSocketDirs(): void {
  let names: string[];
  try { names = fs.readdirSync(os.tmpdir()); } catch { return; }
  for (const n of names) {
    const m = /^uwcore-cachesock-(\d+)-/.exec(n);
    if (m === null) continue;
    try {
      process.kill(Number(m[1]), 0);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ESRCH') {
        try { fs.rmSync(path.join(os.tmpdir(), n), { recursive: true, force: true }); } catch { /* not ours */ }
      }
    }
  }
}

/** Master: listen on a UNIX socket in a private (0700) directory; resolves its path, or null if it cannot. */
async function serveSocket(api: PluginApi, stores: CacheStore[]): Promise<string | null> {
  let dir: string;
  removeStaleSocketDirs();
  try {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), `uwcore-cachesock-${process.pid}-`));
  } catch (e) {
    api.log.warn(`cache: cannot create a private socket directory in ${os.tmpdir()} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): workers reach the caches through the slower core rpc; set TMPDIR to a writable directory`);
    return null;
  }
  const file = path.join(dir, 's');
  const conns = new Set<net.Socket>();
  const srv = net.createServer((sock) => {
    conns.add(sock);
    const reader = new FrameReader((f, start, end) => { if (!sock.destroyed) sock.write(handleFrame(stores, f, start, end)); });
    sock.on('data', (c: Buffer) => {
      try { reader.push(c); } catch (e) { api.log.error({ err: e }, 'cache channel: malformed frame; connection closed'); sock.destroy(); }
    });
    sock.on('error', () => undefined); // a worker that dies mid-call: its socket just goes away
    sock.on('close', () => conns.delete(sock));
  });
  try {
    await new Promise<void>((resolve, reject) => { srv.once('error', reject); srv.listen(file, () => { srv.removeListener('error', reject); resolve(); }); });
  } catch (e) {
    api.log.warn(`cache: cannot listen on a UNIX socket in ${dir} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): workers reach the caches through the slower core rpc`);
    fs.rmSync(dir, { recursive: true, force: true });
    return null;
  }
  srv.unref();
  api.onClose(() => {
    srv.close();
    for (const c of conns) c.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return file;
}

class SBatch {
  readonly out = new Out(1024);
  readonly res: Array<(v: unknown) => void> = [];
  readonly rej: Array<(e: unknown) => void> = [];
}

/** Worker: queues calls, sends a frame per batch (at most MAX_INFLIGHT unanswered), matches replies in order. */
class SocketClient implements Client {
  private cur: SBatch | null = null;
  private readonly ready: SBatch[] = [];
  private readonly sent: SBatch[] = [];
  private scheduled = false;
  private dead: Error | null = null;
  private readonly flushFn = (): void => this.flush();

  constructor(private readonly sock: net.Socket, private readonly api: PluginApi) {
    const reader = new FrameReader((f, start, end) => this.onReply(f, start, end));
    sock.on('data', (c: Buffer) => reader.push(c));
    sock.on('error', () => undefined);
    sock.on('close', () => this.die(api.error('UW_ERR_RPC', 'the cache is unreachable: the master went away')));
    sock.unref();
  }

  private batch(): SBatch {
    let b = this.cur;
    if (b !== null && (b.res.length >= MAX_OPS || b.out.off >= MAX_BYTES)) { this.ready.push(b); b = null; }
    if (b === null) {
      b = this.cur = new SBatch();
      if (!this.scheduled) { this.scheduled = true; setImmediate(this.flushFn); }
    }
    return b;
  }

  private wait(b: SBatch): Promise<unknown> {
    return new Promise((resolve, reject) => { b.res.push(resolve); b.rej.push(reject); });
  }

  private head(b: SBatch, h: number, key: string): void {
    const o = b.out;
    o.u8(h & 15);
    o.u16(h >>> 4);
    o.str(key, 'utf8');
  }

  op(h: number, key: string): Promise<unknown> {
    if (this.dead !== null) return Promise.reject(this.dead);
    const b = this.batch();
    this.head(b, h, key);
    return this.wait(b);
  }

  set(h: number, key: string, val: Buffer, _fresh: boolean, expires: number, meta: string | null): Promise<unknown> {
    if (this.dead !== null) return Promise.reject(this.dead);
    const b = this.batch();
    this.head(b, h, key);
    const o = b.out;
    o.u32(val.length);
    o.bytes(val);
    o.f64(expires);
    if ((h & 15) === OP_SETM) { o.u8(meta === null ? 0 : 1); o.str(meta ?? '', 'latin1'); }
    return this.wait(b);
  }

  inc(h: number, key: string, by: number): Promise<unknown> {
    if (this.dead !== null) return Promise.reject(this.dead);
    const b = this.batch();
    this.head(b, h, key);
    b.out.f64(by);
    return this.wait(b);
  }

  private flush(): void {
    this.scheduled = false;
    while (this.sent.length < MAX_INFLIGHT && this.dead === null) {
      let b = this.ready.shift();
      if (b === undefined) {
        if (this.cur === null) break;
        b = this.cur;
        this.cur = null;
      }
      this.sent.push(b);
      this.sock.write(b.out.frame());
    }
  }

  private onReply(f: Buffer, p: number, end: number): void {
    const b = this.sent.shift();
    if (b === undefined) return;
    const frameLen = end - p;
    for (let i = 0; i < b.res.length; i++) {
      const tag = f[p++]!;
      let v: unknown;
      switch (tag) {
        case R_NULL: v = null; break;
        case R_TRUE: v = true; break;
        case R_FALSE: v = false; break;
        case R_NUM: v = f.readDoubleLE(p); p += 8; break;
        case R_BUF: case R_META: {
          const n = f.readUInt32LE(p);
          p += 4;
          const view = f.subarray(p, p + n);
          // a small value is copied so that it does not keep the whole frame alive
          const buf = n >= 4096 && n * 2 >= frameLen ? view : Buffer.from(view);
          p += n;
          if (tag === R_BUF) { v = buf; break; }
          const x = f.readDoubleLE(p);
          const has = f[p + 8]!;
          const ml = f.readUInt16LE(p + 9);
          p += 11;
          v = [buf, has === 1 ? f.toString('latin1', p, p + ml) : null, x];
          p += ml;
          break;
        }
        case R_KEYS: {
          const n = f.readUInt32LE(p);
          p += 4;
          const ks: string[] = new Array(n);
          for (let k = 0; k < n; k++) {
            const l = f.readUInt16LE(p);
            ks[k] = f.toString('utf8', p + 2, p + 2 + l);
            p += 2 + l;
          }
          v = ks;
          break;
        }
        case R_JSON: {
          const l = f.readUInt32LE(p);
          v = JSON.parse(f.toString('utf8', p + 4, p + 4 + l));
          p += 4 + l;
          break;
        }
        case R_ERR: {
          const cl = f.readUInt16LE(p);
          const code = f.toString('latin1', p + 2, p + 2 + cl);
          p += 2 + cl;
          const ml = f.readUInt32LE(p);
          const msg = f.toString('utf8', p + 4, p + 4 + ml);
          p += 4 + ml;
          b.rej[i]!(this.api.error(code, msg));
          continue;
        }
        default:
          this.die(this.api.error('UW_ERR_INTERNAL', `cache channel: bad reply tag ${tag}`));
          this.sock.destroy();
          return;
      }
      b.res[i]!(v);
    }
    if ((this.ready.length > 0 || this.cur !== null) && !this.scheduled) { this.scheduled = true; setImmediate(this.flushFn); }
  }

  private die(err: Error): void {
    if (this.dead !== null) return;
    this.dead = err;
    const all = [...this.sent, ...this.ready, ...(this.cur !== null ? [this.cur] : [])];
    this.sent.length = 0;
    this.ready.length = 0;
    this.cur = null;
    for (const b of all) for (const rej of b.rej) rej(err);
  }
}

/** Worker: connect to the master's socket (null when it cannot: the caller falls back to rpc). */
function connectSocket(file: string): Promise<net.Socket | null> {
  return new Promise((resolve) => {
    const sock = net.connect(file);
    const t = setTimeout(() => { sock.destroy(); resolve(null); }, 3000);
    sock.once('connect', () => { clearTimeout(t); resolve(sock); });
    sock.once('error', () => { clearTimeout(t); resolve(null); });
  });
}

// ---------------------------------------------------------------------------------------------
// warnings at most once per interval per kind (never one line per call)

class Warner {
  private readonly last = new Map<string, { t: number; n: number }>();
  constructor(private readonly api: PluginApi, private readonly ms = 10_000) {}
  warn(kind: string, msg: string): void {
    const now = Date.now();
    const s = this.last.get(kind);
    if (s !== undefined && now - s.t < this.ms) { s.n++; return; }
    const more = s !== undefined && s.n > 0 ? ` (${s.n} more since the last warning)` : '';
    this.api.log.warn({ code: kind.split('|')[0] }, msg + more);
    this.last.set(kind, { t: now, n: 0 });
  }
}

// ---------------------------------------------------------------------------------------------
// the handle applications and plugins use

class CacheHandle implements Cache {
  private readonly h: number;
  private readonly keysize: number;
  private readonly blocksize: number;

  constructor(readonly name: string, index: number, cfg: CacheConfig, private readonly c: Client,
    private readonly fail: (code: string, msg: string, warn: boolean) => Error) {
    this.h = index << 4;
    this.keysize = cfg.keysize;
    this.blocksize = cfg.blocksize;
  }

  /** null when the key is fine, else the error */
  checkKey(key: unknown): Error | null {
    if (typeof key !== 'string' || key.length === 0) {
      return this.fail(E_KEY, `cache "${this.name}": a key must be a non-empty string, got ${typeof key === 'string' ? 'an empty string' : typeof key}`, false);
    }
    if (key.length > this.keysize || keyBytes(key, this.keysize) > this.keysize) {
      return this.fail(E_KEY, `cache "${this.name}": key of ${Buffer.byteLength(key)} bytes is longer than keysize (${this.keysize} bytes); raise keysize in --cache2`, true);
    }
    return null;
  }

  private write(op: number, key: string, value: CacheValue, opts: SetOptions | undefined, meta: string | null): Promise<boolean> {
    const ke = this.checkKey(key);
    if (ke !== null) return Promise.reject(ke);
    let v: Buffer;
    let fresh = false;
    if (typeof value === 'string') { v = Buffer.from(value); fresh = true; }
    else if (Buffer.isBuffer(value)) v = value;
    else if (value instanceof Uint8Array) v = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    else return Promise.reject(this.fail(E_ARG, `cache "${this.name}": a value must be a Buffer, a Uint8Array or a string, got ${value === null ? 'null' : typeof value}`, false));
    if (v.length > this.blocksize) {
      return Promise.reject(this.fail(E_VALUE, `cache "${this.name}": value of ${v.length} bytes is larger than blocksize (${this.blocksize} bytes); raise blocksize in --cache2`, true));
    }
    let expires = TTL_DEFAULT;
    if (opts !== undefined && opts !== null && opts.expires !== undefined) {
      expires = opts.expires;
      if (typeof expires !== 'number' || !(expires >= 0) || !Number.isFinite(expires)) {
        return Promise.reject(this.fail(E_ARG, `cache "${this.name}": expires must be a number of seconds >= 0 (0 = never), got ${String(opts.expires)}`, false));
      }
    }
    return this.c.set(this.h | op, key, v, fresh, expires, meta) as Promise<boolean>;
  }

  private read<T>(op: number, key: string): Promise<T> {
    const ke = this.checkKey(key);
    if (ke !== null) return Promise.reject(ke);
    return this.c.op(this.h | op, key) as Promise<T>;
  }

  get(key: string): Promise<Buffer | null> { return this.read(OP_GET, key); }
  set(key: string, value: CacheValue, opts?: SetOptions): Promise<boolean> { return this.write(OP_SET, key, value, opts, null); }
  add(key: string, value: CacheValue, opts?: SetOptions): Promise<boolean> { return this.write(OP_ADD, key, value, opts, null); }
  update(key: string, value: CacheValue, opts?: SetOptions): Promise<boolean> { return this.write(OP_SET, key, value, opts, null); }
  del(key: string): Promise<boolean> { return this.read(OP_DEL, key); }
  exists(key: string): Promise<boolean> { return this.read(OP_EXISTS, key); }
  clear(): Promise<boolean> { return this.c.op(this.h | OP_CLEAR, '') as Promise<boolean>; }
  keys(): Promise<string[]> { return this.c.op(this.h | OP_KEYS, '') as Promise<string[]>; }
  num(key: string): Promise<number> { return this.read(OP_NUM, key); }
  stats(): Promise<CacheStats> { return this.c.op(this.h | OP_STATS, '') as Promise<CacheStats>; }
  inc(key: string, by = 1): Promise<number | null> { return this.count(key, by, 1); }
  dec(key: string, by = 1): Promise<number | null> { return this.count(key, by, -1); }

  private count(key: string, by: number, sign: number): Promise<number | null> {
    const ke = this.checkKey(key);
    if (ke !== null) return Promise.reject(ke);
    if (!Number.isSafeInteger(by)) return Promise.reject(this.fail(E_ARG, `cache "${this.name}": inc/dec take a safe integer, got ${String(by)}`, false));
    return this.c.inc(this.h | OP_INC, key, sign * by) as Promise<number | null>;
  }

  /** value, stored Content-Type and expiry (router action `cache`) */
  getMeta(key: string): Promise<[Buffer, string | null, number] | null> { return this.read(OP_GETM, key); }
  /** store a response body with its Content-Type (router action `cachestore`) */
  setMeta(key: string, value: Buffer, expires: number | undefined, meta: string | null): Promise<boolean> {
    return this.write(OP_SETM, key, value, expires === undefined ? undefined : { expires }, meta);
  }
}

// ---------------------------------------------------------------------------------------------
// configuration

interface Parsed { caches: CacheConfig[]; warnings: string[] }

function parseOptions(o: Record<string, unknown>): Parsed {
  const warnings: string[] = [];
  const caches: CacheConfig[] = [];
  const storeSync = (o['cache-store-sync'] as number | undefined) ?? 1;
  const legacy = o.cache as number | undefined;
  if (legacy !== undefined) {
    caches.push({
      name: 'default', items: legacy, blocksize: (o['cache-blocksize'] as number | undefined) ?? 65536, keysize: 2048, expires: 0,
      purgeLru: false, lazyExpire: false, noExpire: false, clearOnFull: false, ignoreFull: false, mathInitial: 0,
      store: (o['cache-store'] as string | undefined) ?? null, storeSync, storeDelete: false,
    });
  }
  for (const raw of (o.cache2 as string[] | undefined) ?? []) {
    const c = parseCache2(raw, { storeSync, baseDir: process.cwd() }, (m) => warnings.push(m));
    if (caches.some((x) => x.name === c.name)) throw new CacheConfigError(`invalid value for option --cache2 ${JSON.stringify(raw)}: a cache named "${c.name}" is already defined${c.name === 'default' && legacy !== undefined ? ' (by --cache)' : ''}; give each cache its own name`);
    if (c.store !== null && caches.some((x) => x.store === c.store)) throw new CacheConfigError(`invalid value for option --cache2 ${JSON.stringify(raw)}: store file ${c.store} is already used by another cache`);
    caches.push(c);
  }
  if (legacy === undefined && o['cache-store'] !== undefined) throw new CacheConfigError('option --cache-store persists the cache created by --cache N; give --cache N, or use --cache2 name=NAME,items=N,store=FILE');
  if (legacy === undefined && o['cache-blocksize'] !== undefined) throw new CacheConfigError('option --cache-blocksize sizes the cache created by --cache N; give --cache N, or use --cache2 name=NAME,items=N,blocksize=BYTES');
  return { caches, warnings };
}

function human(n: number): string {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(1)} GiB`;
  if (n >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(n % 1024 === 0 ? 0 : 1)} KiB`;
  return `${n} bytes`;
}

// ---------------------------------------------------------------------------------------------
// persistence timer (master / single)

class Persister {
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> | null = null;
  private saved: number;
  private failedAt = 0;

  constructor(private readonly store: CacheStore, private readonly file: string, private readonly api: PluginApi) {
    this.saved = store.version;
  }

  start(): void {
    const s = this.store.cfg.storeSync;
    this.timer = setInterval(() => this.tick(), s > 0 ? s * 1000 : 20);
    this.timer.unref();
  }

  private tick(): void {
    if (this.writing !== null || this.store.version === this.saved) return;
    const v = this.store.version;
    this.writing = writeStore(this.store, this.file).then(() => {
      this.saved = v;
      if (this.failedAt !== 0) { this.failedAt = 0; this.api.log.info(`cache "${this.store.cfg.name}": writing the store file ${this.file} works again`); }
    }, (e: NodeJS.ErrnoException) => {
      const now = Date.now();
      if (now - this.failedAt > 60_000) this.api.log.error({ code: E_STORE }, `cache "${this.store.cfg.name}": cannot write the store file ${this.file}: ${e.code ?? e.message}; retrying`);
      if (this.failedAt === 0 || now - this.failedAt > 60_000) this.failedAt = now;
    }).finally(() => { this.writing = null; });
  }

  async close(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    if (this.writing !== null) await this.writing;
    try {
      if (this.store.version !== this.saved) writeStoreSync(this.store, this.file);
      this.saved = this.store.version;
      this.api.log.info(`cache "${this.store.cfg.name}": ${this.store.map.size} items saved to ${this.file}`);
    } catch (e) {
      this.api.log.error({ code: E_STORE }, `cache "${this.store.cfg.name}": cannot write the store file ${this.file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// router actions: cache (serve a hit) and cachestore (store 200 responses)

const HTTP_DATE = (ms: number) => new Date(ms).toUTCString();

function actionArgs(api: PluginApi, action: string, args: string, allowed: string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (const [k, v] of splitKeyval(args)) {
    if (!allowed.includes(k)) throw api.error('UW_ERR_ROUTE', `router action ${action}: unknown key "${k}"; the keys are ${allowed.join(', ')}`);
    m.set(k, v === true ? '1' : v);
  }
  return m;
}

class StoreTransform implements Transform {
  readonly name = 'cachestore';
  private type: string | null = null;
  private parts: Buffer[] = [];
  private bytes = 0;
  private over = false;

  constructor(private readonly cache: CacheHandle, private readonly key: string, private readonly expires: number | undefined,
    private readonly status: number, private readonly limit: number, private readonly api: PluginApi) {}

  headers(_ctx: RequestContext, h: HeaderList): void {
    for (const e of h) if (e[0].length === 12 && e[0].toLowerCase() === 'content-type') this.type = e[1];
  }

  chunk(_ctx: RequestContext, c: Buffer): Buffer {
    if (!this.over) {
      this.bytes += c.length;
      if (this.bytes > this.limit) { this.over = true; this.parts = []; } else this.parts.push(c);
    }
    return c;
  }

  final(ctx: RequestContext): null {
    if (this.over || ctx.aborted || ctx.status !== this.status || this.bytes === 0) return null;
    const body = Buffer.concat(this.parts, this.bytes);
    this.parts = [];
    this.cache.setMeta(this.key, body, this.expires, this.type).catch((e: Error) => this.api.log.debug({ err: e }, `cachestore ${this.key} failed: ${e.message}`));
    return null;
  }
}

function registerActions(api: PluginApi, handleFor: (name: string | undefined) => CacheHandle, configs: CacheConfig[]): void {
  const pick = (kv: Map<string, string>): [CacheHandle, CacheConfig] => {
    const h = handleFor(kv.get('name'));
    return [h, configs.find((c) => c.name === h.name)!];
  };
  api.routerActions.register('cache', (args, rule) => {
    const kv = actionArgs(api, 'cache', args, ['key', 'name', 'content_type', 'content_encoding', 'no_cl', 'no_offload']);
    const keyT = kv.get('key');
    if (!keyT) throw api.error('UW_ERR_ROUTE', 'router action cache needs key=... (e.g. cache:key=${REQUEST_URI},name=mycache)');
    const [cache] = pick(kv);
    const forcedType = kv.get('content_type');
    const encoding = kv.get('content_encoding');
    const noCl = kv.get('no_cl') === '1' || kv.get('no_cl') === 'true';
    return async (ctx: RequestContext, match: RegExpExecArray | null): Promise<RouteResult> => {
      const method = ctx.env.REQUEST_METHOD;
      if (method !== 'GET' && method !== 'HEAD') return 'next';
      const key = rule.expand(keyT, ctx, match);
      if (cache.checkKey(key) !== null) return 'next';
      const hit = await cache.getMeta(key);
      if (hit === null || ctx.headersSent) return 'next';
      const headers: HeaderList = [['Content-Type', forcedType ?? hit[1] ?? 'application/octet-stream']];
      if (encoding !== undefined) headers.push(['Content-Encoding', encoding]);
      if (hit[2] !== 0) headers.push(['Expires', HTTP_DATE(hit[2])]);
      if (noCl) { ctx.start(200, '', headers); ctx.end(hit[0]); } else ctx.respond(200, headers, hit[0]);
      return 'break';
    };
  });
  const store = (action: string) => (args: string, rule: { expand(t: string, ctx: RequestContext, m: RegExpExecArray | null): string }) => {
    const kv = actionArgs(api, action, args, ['key', 'name', 'expires', 'status', 'code']);
    const keyT = kv.get('key');
    if (!keyT) throw api.error('UW_ERR_ROUTE', `router action ${action} needs key=... (e.g. ${action}:key=\${REQUEST_URI},expires=60)`);
    const [cache, cfg] = pick(kv);
    const ex = kv.get('expires');
    const expires = ex === undefined ? undefined : Number(ex);
    if (expires !== undefined && !(expires >= 0)) throw api.error('UW_ERR_ROUTE', `router action ${action}: expires=${ex} is not a number of seconds`);
    const st = kv.get('status') ?? kv.get('code') ?? '200';
    const status = Number(st);
    if (!Number.isInteger(status) || status < 100 || status > 599) throw api.error('UW_ERR_ROUTE', `router action ${action}: status=${st} is not an HTTP status`);
    return (ctx: RequestContext, match: RegExpExecArray | null): RouteResult => {
      if (ctx.env.REQUEST_METHOD !== 'GET') return 'next';
      const key = rule.expand(keyT, ctx, match);
      if (cache.checkKey(key) !== null) return 'next';
      ctx.addTransform(new StoreTransform(cache, key, expires, status, cfg.blocksize, api));
      return 'next';
    };
  };
  api.routerActions.register('cachestore', store('cachestore'));
  api.routerActions.register('cache-store', store('cache-store'));
}

// ---------------------------------------------------------------------------------------------

const plugin = definePlugin<CacheApi>({
  name: 'cache',
  provides: { routerActions: ['cache', 'cachestore', 'cache-store'] },
  version: '1.0.0',
  sdk: '^1.0.0',
  description: 'named caches shared by every worker, held by the master (--cache2)',
  options: [
    {
      name: 'cache2', type: 'string', multiple: true, arg: 'KEYVAL',
      help: 'create a cache shared by every worker: name=NAME,items=N (both required) [,blocksize=64k,keysize=2048,expires=S,purge_lru=1,lazy_expire=1,store=FILE,store_sync=S,store_delete=1,math_initial=N,ignore_full=1,clear_on_full=1]; the first one is the default cache',
    },
    { name: 'cache', type: 'int', min: 1, max: 100_000_000, arg: 'N', help: 'create a cache named "default" holding N items (uWSGI\'s old form of --cache2)' },
    { name: 'cache-blocksize', type: 'size', min: 1, max: 1024 ** 3, arg: 'BYTES', help: 'largest value in the --cache N cache (default 64k)' },
    { name: 'cache-store', type: 'path', arg: 'FILE', help: 'persist the --cache N cache to FILE' },
    { name: 'cache-store-sync', type: 'seconds', min: 0, arg: 'S', help: 'write a changed cache to its store file every S seconds (default 1; 0 = as soon as the previous write is done); store_sync= sets it per cache' },
    { name: 'cache-expire-freq', type: 'seconds', min: 0.01, max: 3600, arg: 'S', help: 'free the memory of expired items every S seconds (default 3); an expired item is never returned, whatever this says' },
  ],
  async setup(api) {
    let parsed: Parsed;
    try {
      parsed = parseOptions(api.options as Record<string, unknown>);
    } catch (e) {
      if (e instanceof CacheConfigError) throw Object.assign(api.error('UW_ERR_CONFIG_BAD_VALUE', e.message), { exitCode: 2 });
      throw e;
    }
    const { caches } = parsed;
    const local = api.process === 'master' || api.process === 'single';
    const warner = new Warner(api);
    const fail = (code: string, msg: string, warn: boolean): Error => {
      if (warn) warner.warn(`${code}|${msg.slice(0, msg.indexOf(':'))}`, msg);
      return api.error(code, msg);
    };

    let client: Client;
    if (local) {
      for (const w of parsed.warnings) api.log.warn(w);
      const stores = caches.map((c) => new CacheStore(c));
      const persisters: Persister[] = [];
      for (const s of stores) {
        const c = s.cfg;
        s.onFull = (st) => {
          if (!st.cfg.ignoreFull) warner.warn(`UW_ERR_CACHE_FULL|${st.cfg.name}`, `cache "${st.cfg.name}" is full (${st.cfg.items} items): a write of a new key was refused; raise items, add purge_lru=1, or give items an expiry`);
        };
        s.onEvict = (st, key) => api.log.debug(`cache "${st.cfg.name}" is full: least recently used item "${key}" purged`);
        if (c.store !== null) {
          try {
            const r = readStore(s, c.store);
            if (r === null) api.log.info(`cache "${c.name}": creating a new cache store file ${c.store}`);
            else api.log.info(`cache "${c.name}": restored ${r.restored} items from ${c.store}${r.expired ? ` (${r.expired} expired while the server was stopped)` : ''}`);
          } catch (e) {
            if (!(e instanceof StoreFileError)) throw e;
            if (e.kind === 'io' || !c.storeDelete) throw api.error(E_STORE, e.message);
            api.log.warn({ code: E_STORE }, `${e.message.replace(/; start with.*|; move it away.*/, '')}; store_delete is set: starting with an empty cache and replacing the file`);
          }
          try {
            fs.mkdirSync(path.dirname(c.store), { recursive: true });
            writeStoreSync(s, c.store);
          } catch (e) {
            const err = e as NodeJS.ErrnoException;
            throw api.error(E_STORE, `cache "${c.name}": cannot write the store file ${c.store}: ${err.code ?? err.message}; check that its directory exists and is writable`);
          }
          const p = new Persister(s, c.store, api);
          p.start();
          persisters.push(p);
        }
        api.log.info(`cache "${c.name}" ready: up to ${c.items} items of at most ${human(c.blocksize)} (keys up to ${c.keysize} bytes), ${human(c.items * (c.keysize + c.blocksize))} at most${c.purgeLru ? ', least recently used purged when full' : ''}${c.expires ? `, items expire after ${c.expires} s by default` : ''}${c.store ? `, persisted to ${c.store}` : ''}`);
      }
      if (stores.length > 0) {
        const freq = (api.options['cache-expire-freq'] as number | undefined) ?? 3;
        const sweeper = setInterval(() => {
          const now = Date.now();
          for (const s of stores) {
            if (s.cfg.noExpire) continue;
            const n = s.sweep(now);
            if (n > 0) api.log.debug(`cache "${s.cfg.name}": ${n} expired items freed`);
          }
        }, freq * 1000);
        sweeper.unref();
        api.onClose(async () => {
          clearInterval(sweeper);
          for (const p of persisters) await p.close();
        });
        api.hooks.stats.tap('cache', (doc) => {
          const list = Array.isArray(doc.caches) ? (doc.caches as unknown[]) : [];
          doc.caches = list.concat(stores.map((s) => s.stats()));
          return doc;
        });
      }

      // the batch handler: operations from one worker, applied in order, synchronously (nothing to lock)
      api.rpc.handle('b', (p: unknown[]): BatchResult => {
        const now = Date.now();
        const out: unknown[] = [];
        let errs: Array<[number, string, string]> | null = null;
        const n = p.length;
        for (let i = 0; i < n;) {
          const h = p[i++] as number;
          const op = h & 15;
          let key = '';
          let val: Buffer | undefined;
          let num = 0;
          let meta: string | null = null;
          if (op !== OP_CLEAR && op !== OP_KEYS && op !== OP_STATS) key = p[i++] as string;
          if (op === OP_SET || op === OP_ADD || op === OP_SETM) { val = p[i++] as Buffer; num = p[i++] as number; }
          if (op === OP_SETM) meta = p[i++] as string | null;
          if (op === OP_INC) num = p[i++] as number;
          const s = stores[h >>> 4];
          try {
            if (s === undefined) throw Object.assign(new Error(`no cache #${h >>> 4}`), { code: E_UNKNOWN });
            if (typeof key !== 'string' || Buffer.byteLength(key) > s.cfg.keysize) throw Object.assign(new Error(`cache "${s.cfg.name}": bad key`), { code: E_KEY });
            if (val !== undefined) {
              if (!(val instanceof Uint8Array) || val.byteLength > s.cfg.blocksize) throw Object.assign(new Error(`cache "${s.cfg.name}": bad value`), { code: E_VALUE });
              val = owned(val);
            }
            out.push(run(s, op, key, val, num, meta, now));
          } catch (e) {
            const err = e as Error & { code?: string };
            (errs ??= []).push([out.length, err instanceof NotANumberError ? E_NAN : err.code ?? E_ARG, err.message]);
            out.push(null);
          }
        }
        return [out, errs];
      });
      client = new LocalClient(stores, (e) => (e instanceof NotANumberError ? api.error(E_NAN, e.message) : e));
      if (api.process === 'master' && stores.length > 0) {
        const file = await serveSocket(api, stores);
        // workers receive the master's options: tell them where the socket is
        if (file !== null) api.hooks.configure.tap('cache', (o) => { o[SOCKET_KEY] = file; return o; });
      }
    } else {
      const file = api.config[SOCKET_KEY];
      const sock = typeof file === 'string' && caches.length > 0 ? await connectSocket(file) : null;
      if (sock === null && caches.length > 0) api.log.debug('cache: the master\'s socket is unreachable; using the core rpc');
      client = sock !== null ? new SocketClient(sock, api) : new RemoteClient(api);
    }

    const handles = caches.map((c, i) => new CacheHandle(c.name, i, c, client, fail));
    const byName = new Map(handles.map((h) => [h.name, h]));
    const handleFor = (name: string | undefined): CacheHandle => {
      if (name === undefined) {
        const d = handles[0];
        if (d === undefined) throw api.error(E_NONE, 'no cache is configured: start uwcore with --cache2 name=NAME,items=N');
        return d;
      }
      const h = byName.get(name);
      if (h === undefined) {
        throw fail(E_UNKNOWN, `unknown cache "${name}": ${handles.length ? `the caches are ${handles.map((x) => `"${x.name}"`).join(', ')}` : 'no cache is configured'}; add --cache2 name=${name},items=N`, true);
      }
      return h;
    };
    registerActions(api, handleFor, caches);
    return {
      cache: (name?: string): Cache => handleFor(name),
      names: () => handles.map((h) => h.name),
    };
  },
});

export default plugin;
