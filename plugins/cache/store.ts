// The cache store itself: configuration parsing (--cache2 KEYVAL), the in-memory store with exact expiry,
// LRU eviction and counters, and persistence to a file (snapshot written to a temporary file, fsynced and
// renamed over the old one, so a kill -9 at any moment leaves either the previous or the new snapshot).
// Only the master (or the single process) holds stores; workers reach them over IPC (index.ts).
import { Buffer } from 'node:buffer';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

// ---------------------------------------------------------------------------------------------
// configuration

export interface CacheConfig {
  name: string;
  /** the cache holds at most this many keys (exactly; uWSGI holds items - 1) */
  items: number;
  /** largest value in bytes */
  blocksize: number;
  /** largest key in bytes (UTF-8) */
  keysize: number;
  /** default time to live in seconds for set/add/inc without one (0 = never) */
  expires: number;
  purgeLru: boolean;
  lazyExpire: boolean;
  noExpire: boolean;
  clearOnFull: boolean;
  ignoreFull: boolean;
  mathInitial: number;
  /** absolute path of the store file, or null */
  store: string | null;
  /** seconds between snapshots of a changed cache; 0 = continuously (as soon as the previous one is written) */
  storeSync: number;
  storeDelete: boolean;
}

/** A bad --cache2 / --cache value: startup stops with this one line (exit 2). */
export class CacheConfigError extends Error {}

const CANONICAL = ['name', 'items', 'blocksize', 'keysize', 'expires', 'purge_lru', 'lazy_expire', 'store', 'store_sync', 'store_delete', 'math_initial', 'ignore_full', 'clear_on_full', 'no_expire'] as const;
type Key = (typeof CANONICAL)[number];

/** uWSGI's spellings (hyphens are accepted everywhere and read as underscores). */
const ALIASES: Record<string, Key> = {
  max_items: 'items', maxitems: 'items', key_size: 'keysize', block_size: 'blocksize', lru: 'purge_lru', lazy: 'lazy_expire',
  storesync: 'store_sync', storedelete: 'store_delete', mathinitial: 'math_initial', ignorefull: 'ignore_full', expire: 'expires',
};

/** uWSGI keys about its shared-memory layout: accepted, not needed (one warning). */
const NOT_NEEDED: Record<string, string> = {
  hash: 'keys live in a hash map sized on demand', hashsize: 'keys live in a hash map sized on demand', hash_size: 'keys live in a hash map sized on demand',
  blocks: 'each value is stored whole, up to blocksize', lastmod: 'last_modified_at is always tracked',
  sweep_on_full: 'expired items are always reclaimed before a cache counts as full',
};

/** uWSGI keys for features uwcore does not offer: refused with the reason. */
const NOT_OFFERED: Record<string, string> = {
  bitmap: 'each value is stored whole: set blocksize to the largest value you store',
  node: 'UDP cache replication is not offered', nodes: 'UDP cache replication is not offered',
  udp: 'UDP cache replication is not offered', udp_servers: 'UDP cache replication is not offered', udp_server: 'UDP cache replication is not offered',
  udpservers: 'UDP cache replication is not offered', udpserver: 'UDP cache replication is not offered',
  sync: 'syncing a cache from another server at startup is not offered; use store=FILE to keep items across restarts',
};

const SIZE_RE = /^(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?$/i;
const SECONDS_RE = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/i;

export function parseSize(v: string): number | undefined {
  const m = SIZE_RE.exec(v.trim());
  if (!m) return undefined;
  const n = Number(m[1]);
  const u = (m[2] ?? '').toLowerCase()[0];
  const mul = u === 'k' ? 1024 : u === 'm' ? 1024 ** 2 : u === 'g' ? 1024 ** 3 : 1;
  const r = Math.round(n * mul);
  return Number.isSafeInteger(r) ? r : undefined;
}

export function parseSeconds(v: string): number | undefined {
  const m = SECONDS_RE.exec(v.trim());
  if (!m) return undefined;
  const n = Number(m[1]);
  const u = (m[2] ?? 's').toLowerCase();
  return n * (u === 'ms' ? 0.001 : u === 'm' ? 60 : u === 'h' ? 3600 : u === 'd' ? 86400 : 1);
}

function parseBool(v: string | true): boolean | undefined {
  if (v === true) return true;
  const s = v.trim().toLowerCase();
  if (s === '' || s === '1' || s === 'true' || s === 'yes' || s === 'on') return true;
  if (s === '0' || s === 'false' || s === 'no' || s === 'off') return false;
  return undefined;
}

/** Split `a=1,b=2` on commas (a comma inside a value is written `\,`). */
export function splitKeyval(s: string): Array<[string, string | true]> {
  const out: Array<[string, string | true]> = [];
  let cur = '';
  const parts: string[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '\\' && s[i + 1] === ',') { cur += ','; i++; continue; }
    if (c === ',') { parts.push(cur); cur = ''; continue; }
    cur += c;
  }
  parts.push(cur);
  for (const p of parts) {
    if (p.trim() === '') continue;
    const eq = p.indexOf('=');
    if (eq < 0) out.push([p.trim(), true]);
    else out.push([p.slice(0, eq).trim(), p.slice(eq + 1).trim()]);
  }
  return out;
}

export interface Defaults { storeSync: number; baseDir: string }

/**
 * Parse one --cache2 value. Unknown keys and bad values throw CacheConfigError with one line naming the
 * key and what is allowed; `warn` receives one line per accepted-but-ignored uWSGI key.
 */
export function parseCache2(raw: string, defaults: Defaults, warn: (msg: string) => void): CacheConfig {
  const where = `--cache2 ${JSON.stringify(raw)}`;
  const bad = (msg: string) => new CacheConfigError(`invalid value for option ${where}: ${msg}`);
  const seen = new Map<Key, string | true>();
  for (const [k0, v] of splitKeyval(raw)) {
    const k1 = k0.toLowerCase().replace(/-/g, '_');
    if (k1 in NOT_OFFERED) throw bad(`key "${k0}" is a uWSGI cache feature uwcore does not offer: ${NOT_OFFERED[k1]}`);
    if (k1 in NOT_NEEDED) { warn(`${where}: key "${k0}" is not needed by uwcore (${NOT_NEEDED[k1]}); ignored`); continue; }
    const k = (CANONICAL as readonly string[]).includes(k1) ? k1 as Key : ALIASES[k1];
    if (k === undefined) throw bad(`unknown key "${k0}"; the keys are ${CANONICAL.join(', ')} (and uWSGI's aliases ${Object.keys(ALIASES).join(', ')})`);
    if (seen.has(k)) throw bad(`key "${k}" is given twice`);
    seen.set(k, v);
  }
  const str = (k: Key): string | undefined => {
    const v = seen.get(k);
    if (v === undefined) return undefined;
    if (v === true || v === '') throw bad(`key "${k}" needs a value (${k}=...)`);
    return v;
  };
  const int = (k: Key, min: number, max: number, size = false): number | undefined => {
    const v = str(k);
    if (v === undefined) return undefined;
    const n = size ? parseSize(v) : (/^-?\d+$/.test(v) ? Number(v) : undefined);
    if (n === undefined || !Number.isSafeInteger(n) || n < min || n > max) {
      throw bad(`${k}=${v} is not ${size ? 'a size' : 'an integer'} between ${min} and ${max}${size ? ' (bytes, or with a unit: 64k, 1m)' : ''}`);
    }
    return n;
  };
  const secs = (k: Key): number | undefined => {
    const v = str(k);
    if (v === undefined) return undefined;
    const n = parseSeconds(v);
    if (n === undefined || !Number.isFinite(n)) throw bad(`${k}=${v} is not a number of seconds (30, 1.5, 500ms, 5m, 1h)`);
    return n;
  };
  const bool = (k: Key): boolean => {
    const v = seen.get(k);
    if (v === undefined) return false;
    const b = parseBool(v);
    if (b === undefined) throw bad(`${k}=${String(v)} is not a boolean (1, 0, true, false, yes, no, on, off)`);
    return b;
  };
  const name = str('name');
  if (name === undefined) throw bad('a cache needs a name: --cache2 name=NAME,items=N');
  const items = int('items', 1, 100_000_000);
  if (items === undefined) throw bad(`cache "${name}" needs a maximum number of items: add items=N (N > 0)`);
  const store = str('store');
  return {
    name,
    items,
    blocksize: int('blocksize', 1, 1024 ** 3, true) ?? 65536,
    keysize: int('keysize', 1, 65535, true) ?? 2048,
    expires: secs('expires') ?? 0,
    purgeLru: bool('purge_lru'),
    lazyExpire: bool('lazy_expire'),
    noExpire: bool('no_expire'),
    clearOnFull: bool('clear_on_full'),
    ignoreFull: bool('ignore_full'),
    mathInitial: int('math_initial', Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER) ?? 0,
    store: store === undefined ? null : path.resolve(defaults.baseDir, store),
    storeSync: secs('store_sync') ?? defaults.storeSync,
    storeDelete: bool('store_delete'),
  };
}

// ---------------------------------------------------------------------------------------------
// the store

interface Entry {
  /** the value (never mutated in place: a change stores a new Buffer) */
  v: Buffer;
  /** absolute expiry in ms since the epoch; 0 = never */
  x: number;
  /** metadata stored alongside (the Content-Type of a cached response), or null */
  m: string | null;
  /** bytes accounted for this item: key + value + metadata */
  n: number;
}

export interface CacheStats {
  name: string;
  /** items held (including expired ones the sweeper has not freed yet) */
  items: number;
  max_items: number;
  keysize: number;
  blocksize: number;
  hits: number;
  miss: number;
  /** writes of a new key refused because the cache was full */
  full: number;
  /** items evicted by purge_lru (or clear_on_full) to make room */
  evictions: number;
  /** items removed because they expired */
  expired: number;
  /** bytes of keys, values and metadata held */
  size: number;
  /** the most the cache can hold: max_items × (keysize + blocksize) */
  max_size: number;
  last_modified_at: number;
  purge_lru: boolean;
  store: string | null;
}

export class NotANumberError extends Error {}

const TTL_DEFAULT = -1;
export { TTL_DEFAULT };

export class CacheStore {
  readonly cfg: CacheConfig;
  readonly map = new Map<string, Entry>();
  hits = 0;
  miss = 0;
  full = 0;
  evictions = 0;
  expired = 0;
  size = 0;
  lastModified = 0;
  /** bumped on every change (persistence compares it) */
  version = 0;
  /** a min-heap of (expiry, key); entries whose item changed since are skipped when popped */
  private heapT: number[] = [];
  private heapK: string[] = [];
  private readonly defaultTtlMs: number;
  /** called when a write of a new key is refused because the cache is full */
  onFull: ((s: CacheStore) => void) | null = null;
  onEvict: ((s: CacheStore, key: string) => void) | null = null;

  constructor(cfg: CacheConfig) {
    this.cfg = cfg;
    this.defaultTtlMs = cfg.expires * 1000;
  }

  /** ms to live for a call's `expires` (seconds; TTL_DEFAULT = the cache's default) */
  ttlMs(expires: number): number {
    return expires === TTL_DEFAULT ? this.defaultTtlMs : expires * 1000;
  }

  /** the live entry for key, or undefined (an expired one is never returned) */
  private live(key: string, now: number): Entry | undefined {
    const e = this.map.get(key);
    if (e === undefined) return undefined;
    if (e.x !== 0 && e.x <= now) {
      if (this.cfg.lazyExpire) { this.remove(key, e); this.expired++; }
      return undefined;
    }
    return e;
  }

  private touch(key: string, e: Entry): void {
    // Map keeps insertion order: re-inserting makes this the most recently used
    this.map.delete(key);
    this.map.set(key, e);
  }

  private remove(key: string, e: Entry): void {
    this.map.delete(key);
    this.size -= e.n;
    this.version++;
  }

  get(key: string, now: number): Buffer | null {
    const e = this.live(key, now);
    if (e === undefined) { this.miss++; return null; }
    this.hits++;
    if (this.cfg.purgeLru) this.touch(key, e);
    return e.v;
  }

  /** value, metadata and expiry (for the `cache` router action) */
  getMeta(key: string, now: number): [Buffer, string | null, number] | null {
    const e = this.live(key, now);
    if (e === undefined) { this.miss++; return null; }
    this.hits++;
    if (this.cfg.purgeLru) this.touch(key, e);
    return [e.v, e.m, e.x];
  }

  exists(key: string, now: number): boolean {
    return this.live(key, now) !== undefined;
  }

  /**
   * Store a value. `add` refuses an existing (live) key. Returns false when not stored: the key exists
   * (add), or the cache is full of live items and neither purge_lru nor clear_on_full makes room.
   * `value` must be owned by the store (copied by the caller).
   */
  put(key: string, keyBytes: number, value: Buffer, ttlMs: number, meta: string | null, add: boolean, now: number): boolean {
    const old = this.map.get(key);
    if (old !== undefined) {
      if (add && (old.x === 0 || old.x > now)) return false;
      this.size -= old.n;
      if (this.cfg.purgeLru) this.map.delete(key);
    } else if (this.map.size >= this.cfg.items && !this.makeRoom(now)) {
      this.full++;
      if (this.onFull !== null) this.onFull(this);
      return false;
    }
    const x = ttlMs > 0 ? now + ttlMs : 0;
    const e: Entry = { v: value, x, m: meta, n: keyBytes + value.length + (meta === null ? 0 : meta.length) };
    this.map.set(key, e);
    this.size += e.n;
    if (x !== 0) this.heapPush(x, key);
    this.version++;
    this.lastModified = now;
    return true;
  }

  /** Make room for one new key; false when the cache is full of live items. */
  private makeRoom(now: number): boolean {
    if (this.heapT.length > 0 && this.heapT[0]! <= now) {
      this.sweep(now);
      if (this.map.size < this.cfg.items) return true;
    }
    if (this.cfg.purgeLru) {
      const oldest = this.map.keys().next();
      if (oldest.done) return false;
      const k = oldest.value;
      this.remove(k, this.map.get(k)!);
      this.evictions++;
      if (this.onEvict !== null) this.onEvict(this, k);
      return true;
    }
    if (this.cfg.clearOnFull) {
      this.evictions += this.map.size;
      this.clear(now);
      return true;
    }
    return false;
  }

  del(key: string, now: number): boolean {
    const e = this.map.get(key);
    if (e === undefined) return false;
    this.remove(key, e);
    this.lastModified = now;
    if (e.x !== 0 && e.x <= now) { this.expired++; return false; }
    return true;
  }

  clear(now: number): void {
    this.map.clear();
    this.size = 0;
    this.heapT = [];
    this.heapK = [];
    this.version++;
    this.lastModified = now;
  }

  keys(now: number): string[] {
    const out: string[] = [];
    for (const [k, e] of this.map) if (e.x === 0 || e.x > now) out.push(k);
    return out;
  }

  /**
   * Add `by` to the 64-bit little-endian counter stored at key (uWSGI's layout). A missing key starts at
   * math_initial and is created with the cache's default expiry; an existing one keeps its expiry.
   * Returns the new value, or null when the key is new and the cache is full.
   */
  inc(key: string, keyBytes: number, by: bigint, now: number): number | null {
    const e = this.live(key, now);
    let cur: bigint;
    if (e === undefined) cur = BigInt(this.cfg.mathInitial);
    else if (e.v.length !== 8) throw new NotANumberError(`the value of "${key}" in cache "${this.cfg.name}" is ${e.v.length} bytes, not a counter (8 bytes, as written by inc/dec)`);
    else cur = e.v.readBigInt64LE(0);
    const next = BigInt.asIntN(64, cur + by);
    const buf = Buffer.allocUnsafeSlow(8);
    buf.writeBigInt64LE(next, 0);
    if (e === undefined) {
      if (!this.put(key, keyBytes, buf, this.defaultTtlMs, null, false, now)) return null;
    } else {
      const n: Entry = { v: buf, x: e.x, m: e.m, n: e.n };
      if (this.cfg.purgeLru) this.map.delete(key);
      this.map.set(key, n);
      this.version++;
      this.lastModified = now;
    }
    return Number(next);
  }

  /** the counter at key; 0 when missing */
  num(key: string, now: number): number {
    const e = this.live(key, now);
    if (e === undefined) { this.miss++; return 0; }
    this.hits++;
    if (e.v.length !== 8) throw new NotANumberError(`the value of "${key}" in cache "${this.cfg.name}" is ${e.v.length} bytes, not a counter (8 bytes, as written by inc/dec)`);
    return Number(e.v.readBigInt64LE(0));
  }

  /** Free expired items; returns how many. */
  sweep(now: number): number {
    let n = 0;
    const t = this.heapT;
    const k = this.heapK;
    while (t.length > 0 && t[0]! <= now) {
      const when = t[0]!;
      const key = k[0]!;
      this.heapPop();
      const e = this.map.get(key);
      if (e !== undefined && e.x === when) { this.remove(key, e); this.expired++; n++; }
    }
    return n;
  }

  private heapPush(t: number, key: string): void {
    const T = this.heapT;
    const K = this.heapK;
    if (T.length >= 2 * this.cfg.items + 1024) { this.rebuildHeap(); }
    let i = T.length;
    T.push(t);
    K.push(key);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (T[p]! <= t) break;
      T[i] = T[p]!; K[i] = K[p]!;
      i = p;
    }
    T[i] = t; K[i] = key;
  }

  private heapPop(): void {
    const T = this.heapT;
    const K = this.heapK;
    const lastT = T.pop()!;
    const lastK = K.pop()!;
    const n = T.length;
    if (n === 0) return;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && T[r]! < T[l]! ? r : l;
      if (T[c]! >= lastT) break;
      T[i] = T[c]!; K[i] = K[c]!;
      i = c;
    }
    T[i] = lastT; K[i] = lastK;
  }

  /** drop stale heap entries (items overwritten or deleted since they were pushed) */
  private rebuildHeap(): void {
    const live: Array<[number, string]> = [];
    for (const [k, e] of this.map) if (e.x !== 0) live.push([e.x, k]);
    live.sort((a, b) => a[0] - b[0]); // a sorted array is a valid min-heap
    this.heapT = live.map((x) => x[0]);
    this.heapK = live.map((x) => x[1]);
  }

  stats(): CacheStats {
    const c = this.cfg;
    return {
      name: c.name, items: this.map.size, max_items: c.items, keysize: c.keysize, blocksize: c.blocksize,
      hits: this.hits, miss: this.miss, full: this.full, evictions: this.evictions, expired: this.expired,
      size: this.size, max_size: c.items * (c.keysize + c.blocksize), last_modified_at: Math.floor(this.lastModified / 1000),
      purge_lru: c.purgeLru, store: c.store,
    };
  }

  /** restore one item (persistence); the caller checked sizes and expiry */
  restore(key: string, value: Buffer, x: number, meta: string | null): void {
    const e: Entry = { v: value, x, m: meta, n: Buffer.byteLength(key) + value.length + (meta === null ? 0 : meta.length) };
    this.map.set(key, e);
    this.size += e.n;
    if (x !== 0) this.heapPush(x, key);
  }
}

// ---------------------------------------------------------------------------------------------
// persistence
//
// File layout (little-endian): "UWCACHE1" | u32 format | u32 items | u32 blocksize | u32 keysize | u32 count |
// f64 savedAt | u16 nameLen | name | count × (u32 keyLen | u32 valueLen | u32 metaLen | f64 expiresAt | key | value | meta)
// | u32 crc32 of everything before. Items are written least-recently used first, so LRU order survives.

const MAGIC = Buffer.from('UWCACHE1', 'latin1');
const FORMAT = 1;
const REC = 20;

export class StoreFileError extends Error {
  constructor(message: string, readonly kind: 'mismatch' | 'damaged' | 'io') { super(message); }
}

/** The buffers of a snapshot of the store, taken synchronously (values are immutable, so writing may be async). */
function snapshot(store: CacheStore, now: number): Buffer[] {
  const c = store.cfg;
  const name = Buffer.from(c.name);
  const head = Buffer.alloc(8 + 4 * 5 + 8 + 2);
  MAGIC.copy(head, 0);
  head.writeUInt32LE(FORMAT, 8);
  head.writeUInt32LE(c.items, 12);
  head.writeUInt32LE(c.blocksize, 16);
  head.writeUInt32LE(c.keysize, 20);
  let count = 0;
  for (const e of store.map.values()) if (e.x === 0 || e.x > now) count++;
  head.writeUInt32LE(count, 24);
  head.writeDoubleLE(now, 28);
  head.writeUInt16LE(Math.min(name.length, 65535), 36);
  const out: Buffer[] = [head, name.subarray(0, 65535)];
  const recs = Buffer.allocUnsafe(REC * count);
  let i = 0;
  for (const [k, e] of store.map) {
    if (e.x !== 0 && e.x <= now) continue;
    const kb = Buffer.from(k);
    const mb = e.m === null ? null : Buffer.from(e.m);
    const r = recs.subarray(i * REC, (i + 1) * REC);
    r.writeUInt32LE(kb.length, 0);
    r.writeUInt32LE(e.v.length, 4);
    r.writeUInt32LE(mb === null ? 0 : mb.length, 8);
    r.writeDoubleLE(e.x, 12);
    out.push(r, kb, e.v);
    if (mb !== null) out.push(mb);
    i++;
  }
  let crc = 0;
  for (const b of out) crc = zlib.crc32(b, crc);
  const tail = Buffer.alloc(4);
  tail.writeUInt32LE(crc >>> 0, 0);
  out.push(tail);
  return out;
}

const IOV = 1000;

function fsyncDir(dir: string): void {
  try {
    const fd = fs.openSync(dir, 'r');
    try { fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
  } catch { /* some filesystems refuse fsync on directories: the rename is still atomic */ }
}

/** Write the store to `file` atomically, blocking (startup and shutdown). */
export function writeStoreSync(store: CacheStore, file: string, now = Date.now()): void {
  const bufs = snapshot(store, now);
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, 'w', 0o600);
  try {
    for (let i = 0; i < bufs.length; i += IOV) {
      const part = bufs.slice(i, i + IOV);
      let want = 0;
      for (const b of part) want += b.length;
      let done = fs.writevSync(fd, part);
      if (done < want) { // a short write: finish the rest plainly
        const all = Buffer.concat(part);
        while (done < want) done += fs.writeSync(fd, all, done, want - done);
      }
    }
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  fsyncDir(path.dirname(file));
}

/** Write the store to `file` atomically without blocking the event loop (the periodic sync). */
export async function writeStore(store: CacheStore, file: string, now = Date.now()): Promise<void> {
  const bufs = snapshot(store, now);
  const tmp = `${file}.${process.pid}.tmp`;
  const fh = await fs.promises.open(tmp, 'w', 0o600);
  try {
    for (let i = 0; i < bufs.length; i += IOV) {
      const part = bufs.slice(i, i + IOV);
      let want = 0;
      for (const b of part) want += b.length;
      let done = (await fh.writev(part)).bytesWritten;
      if (done < want) {
        const all = Buffer.concat(part);
        while (done < want) done += (await fh.write(all, done, want - done)).bytesWritten;
      }
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fs.promises.rename(tmp, file);
  fsyncDir(path.dirname(file));
}

/**
 * Restore a store from `file`. Returns the number of items restored, or -1 if the file does not exist.
 * Throws StoreFileError when the file was written with another shape (items, blocksize, keysize) or is damaged.
 */
export function readStore(store: CacheStore, file: string, now = Date.now()): { restored: number; expired: number } | null {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') return null;
    throw new StoreFileError(`cannot read the store file ${file}: ${err.code ?? err.message}`, 'io');
  }
  const c = store.cfg;
  const damaged = (why: string) => new StoreFileError(`the store file ${file} of cache "${c.name}" is damaged (${why}); move it away, or add store_delete to start with an empty cache`, 'damaged');
  if (buf.length < 38 + 4 || !buf.subarray(0, 8).equals(MAGIC)) throw damaged('not a uwcore cache store file');
  const crc = buf.readUInt32LE(buf.length - 4);
  if ((zlib.crc32(buf.subarray(0, buf.length - 4)) >>> 0) !== crc) throw damaged('checksum mismatch');
  const format = buf.readUInt32LE(8);
  if (format !== FORMAT) throw damaged(`format ${format}, expected ${FORMAT}`);
  const items = buf.readUInt32LE(12);
  const blocksize = buf.readUInt32LE(16);
  const keysize = buf.readUInt32LE(20);
  if (items !== c.items || blocksize !== c.blocksize || keysize !== c.keysize) {
    throw new StoreFileError(`the store file ${file} was written by a cache with items=${items},blocksize=${blocksize},keysize=${keysize}, but cache "${c.name}" is configured with items=${c.items},blocksize=${c.blocksize},keysize=${c.keysize}; start with the old configuration, delete the file, or add store_delete to start with an empty cache`, 'mismatch');
  }
  const count = buf.readUInt32LE(24);
  const nameLen = buf.readUInt16LE(36);
  let off = 38 + nameLen;
  const end = buf.length - 4;
  let restored = 0;
  let expired = 0;
  for (let i = 0; i < count; i++) {
    if (off + REC > end) throw damaged('truncated');
    const kl = buf.readUInt32LE(off);
    const vl = buf.readUInt32LE(off + 4);
    const ml = buf.readUInt32LE(off + 8);
    const x = buf.readDoubleLE(off + 12);
    off += REC;
    if (off + kl + vl + ml > end) throw damaged('truncated');
    const key = buf.toString('utf8', off, off + kl);
    off += kl;
    const vs = buf.subarray(off, off + vl);
    off += vl;
    const meta = ml === 0 ? null : buf.toString('latin1', off, off + ml);
    off += ml;
    if (x !== 0 && x <= now) { expired++; continue; }
    if (store.map.size >= c.items || kl > c.keysize || vl > c.blocksize) continue;
    const v = Buffer.allocUnsafeSlow(vl);
    vs.copy(v);
    store.restore(key, v, x, meta);
    restored++;
  }
  return { restored, expired };
}
