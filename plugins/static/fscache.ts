// Where a request path lands on disk, and what uwcore remembers about it.
//
// - Sources (check-static, static-map, static-map2) are tried in order. A path with a `..` segment, a NUL
//   or a backslash never reaches the file system; every hit is resolved with realpath(3) and must lie on a
//   path-segment boundary under its root (or under a --static-safe directory).
// - A path cache (PATH_INFO → file entry or "not a file") whose answers live `ttl` seconds
//   (--static-cache-paths), bounded in size; concurrent misses for one path share one resolution.
// - File entries (one per real file and content coding) carry the stat identity, the validators, the
//   prebuilt headers, an open descriptor shared by every request (reference-counted, closed once idle for
//   `ttl`, or at once when ttl is 0) and, for hot files up to --static-memory-max-file, the content itself
//   (an LRU bounded by --static-memory-cache, dropped when the stat identity changes).
import { Buffer } from 'node:buffer';
import fs from 'node:fs';
import type { HeaderList } from '../../sdk/index.js';

export interface Source {
  kind: 'check-static' | 'static-map' | 'static-map2' | 'check-static-docroot';
  /** the mount point for maps, without a trailing slash ('' for `/`); '' for check-static */
  mount: string;
  /** the directory (or file, for maps) as configured */
  dir: string;
  /** realpath of `dir`, resolved on first use (uWSGI resolves lazily too) and again after the cache TTL,
   *  so that a root behind a symlink (`current -> releases/42`) follows deployments */
  real: string | null;
  isFile: boolean;
  realUntil?: number;
}

/** The file changed under us (stat identity differs from what the entry recorded). */
export class Changed extends Error {
  code = 'UW_ERR_STATIC_CHANGED';
  constructor(file: string) { super(`${file} changed while it was being served`); }
}

export class FileEntry {
  readonly real: string;
  readonly size: number;
  readonly mtimeMs: number;
  readonly ino: number;
  readonly dev: number;
  /** the root this file was found under (its variants must lie under it too) */
  readonly root: string;
  /** '' or the content coding of a precompressed variant (`br`, `gzip`) */
  readonly encoding: string;
  readonly type: string;
  readonly etag: string;
  readonly lastModified: string;
  readonly lastModifiedSec: number;
  fd = -1;
  opening: Promise<number> | null = null;
  refs = 0;
  dead = false;
  lastUsed: number;
  hits = 0;
  data: Buffer | null = null;
  loading: Promise<void> | null = null;
  /** precompressed variants: entry, null (none), undefined (not looked up); valid until variantsUntil */
  br: FileEntry | null | undefined = undefined;
  gz: FileEntry | null | undefined = undefined;
  variantsUntil = 0;
  // set by the plugin (decorate): headers prebuilt once per file
  /** seconds for Expires/Cache-Control from type/filename rules, -1 = none */
  expires = -1;
  base: HeaderList = [];
  full: HeaderList = [];
  notModified: HeaderList = [];
  unsatisfiable: HeaderList | null = null;

  constructor(real: string, st: fs.Stats, root: string, type: string, encoding: string, now: number) {
    this.real = real;
    this.size = st.size;
    this.mtimeMs = st.mtimeMs;
    this.ino = st.ino;
    this.dev = st.dev;
    this.root = root;
    this.type = type;
    this.encoding = encoding;
    this.etag = `"${st.ino.toString(36)}-${st.size.toString(36)}-${Math.round(st.mtimeMs * 1000).toString(36)}"`;
    this.lastModifiedSec = Math.floor(st.mtimeMs / 1000);
    this.lastModified = new Date(this.lastModifiedSec * 1000).toUTCString();
    this.lastUsed = now;
  }

  same(st: fs.Stats): boolean {
    return st.ino === this.ino && st.dev === this.dev && st.size === this.size && st.mtimeMs === this.mtimeMs;
  }
}

export interface CacheOptions {
  sources: Source[];
  safe: string[];
  index: string[];
  skipExt: string[];
  /** seconds; 0 = stat on every request */
  ttl: number;
  memoryMax: number;
  memoryFileMax: number;
  typeOf(file: string): string;
  /** fill the entry's prebuilt headers */
  decorate(e: FileEntry): void;
  debug(msg: string, obj?: Record<string, unknown>): void;
}

interface PathSlot { entry: FileEntry | null; until: number }

const MAX_PATHS = 10_000;
const MAX_FILES = 20_000;
/** drop an unused entry (and its cached content) after this long */
const IDLE_DROP_MS = 60_000;

function statP(p: string): Promise<fs.Stats | null> {
  return new Promise((resolve) => fs.stat(p, (err, st) => resolve(err ? null : st)));
}
function realpathP(p: string): Promise<string | null> {
  return new Promise((resolve) => fs.realpath.native(p, (err, r) => resolve(err ? null : r)));
}
export function readP(fd: number, buf: Buffer, len: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => fs.read(fd, buf, 0, len, pos, (err, n) => (err ? reject(err) : resolve(n))));
}
function closeFd(fd: number): void {
  fs.close(fd, () => { /* nothing to do about a failed close */ });
}

/** `p` is `root` or lies below it (segment boundary: /srv/www never contains /srv/www-private). */
export function within(p: string, root: string): boolean {
  if (p === root) return true;
  if (root === '/') return p.startsWith('/');
  return p.length > root.length && p.charCodeAt(root.length) === 47 && p.startsWith(root);
}

/** A request path that may touch the file system: absolute, no NUL, no backslash, no `..` segment. */
export function safeRequestPath(p: string): boolean {
  if (p.length === 0 || p.charCodeAt(0) !== 47) return false;
  if (p.includes('\0') || p.includes('\\')) return false;
  if (!p.includes('..')) return true;
  for (const seg of p.split('/')) if (seg === '..') return false;
  return true;
}

export class FsCache {
  private readonly o: CacheOptions;
  private readonly paths = new Map<string, PathSlot>();
  private readonly pending = new Map<string, Promise<FileEntry | null>>();
  private readonly docroots = new Map<string, Source>();
  private readonly files = new Map<string, FileEntry>();
  /** LRU of entries holding content, oldest first */
  private readonly lru = new Map<FileEntry, true>();
  memoryBytes = 0;
  private sweeper: NodeJS.Timeout | null = null;
  private readonly ttlMs: number;

  constructor(o: CacheOptions) {
    this.o = o;
    this.ttlMs = o.ttl * 1000;
  }

  /** Synchronous cache hit: an entry, null (known not to be a file), undefined (ask resolve()). */
  lookup(key: string, now: number): FileEntry | null | undefined {
    const s = this.paths.get(key);
    if (s === undefined || s.until < now) return undefined;
    const e = s.entry;
    if (e !== null) {
      if (e.dead) return undefined;
      e.lastUsed = now;
    }
    return e;
  }

  invalidate(key: string): void {
    const s = this.paths.get(key);
    if (s !== undefined) {
      this.paths.delete(key);
      if (s.entry !== null) this.retire(s.entry);
    }
  }

  /** Resolve a request path (`docroot`: the request's DOCUMENT_ROOT for --check-static-docroot; `key` then
   *  names both). */
  resolve(key: string, now: number, path: string = key, docroot?: string): Promise<FileEntry | null> {
    let p = this.pending.get(key);
    if (p === undefined) {
      p = this.doResolve(path, docroot).then((e) => {
        this.pending.delete(key);
        if (this.ttlMs > 0) {
          if (this.paths.size >= MAX_PATHS) this.paths.delete(this.paths.keys().next().value!);
          this.paths.set(key, { entry: e, until: now + this.ttlMs });
        }
        return e;
      }, (err: unknown) => { this.pending.delete(key); throw err; });
      this.pending.set(key, p);
      this.startSweeper();
    }
    return p;
  }

  private async rootOf(s: Source): Promise<string | null> {
    const now = Date.now();
    if (s.real !== null && (s.realUntil ?? 0) > now) return s.real;
    const r = await realpathP(s.dir);
    const st = r === null ? null : await statP(r);
    if (r === null || st === null) { s.real = null; return null; }
    s.isFile = st.isFile();
    s.real = r;
    s.realUntil = now + this.ttlMs;
    return r;
  }

  private allowed(real: string, root: string): boolean {
    if (within(real, root)) return true;
    for (const s of this.o.safe) if (within(real, s)) return true;
    return false;
  }

  private skipped(file: string): boolean {
    for (const x of this.o.skipExt) if (file.endsWith(x)) return true;
    return false;
  }

  /** A source for the request's DOCUMENT_ROOT, remembered (bounded) so its realpath is cached like the others. */
  private docrootSource(dir: string): Source | null {
    if (!dir.startsWith('/') || dir.includes('\0')) return null;
    let s = this.docroots.get(dir);
    if (s === undefined) {
      s = { kind: 'check-static-docroot', mount: '', dir, real: null, isFile: false };
      if (this.docroots.size >= 256) this.docroots.clear();
      this.docroots.set(dir, s);
    }
    return s;
  }

  private async doResolve(key: string, docroot?: string): Promise<FileEntry | null> {
    if (!safeRequestPath(key)) {
      this.o.debug('request path refused (traversal, NUL or backslash)', { path: key });
      return null;
    }
    let sources = this.o.sources;
    if (docroot !== undefined && docroot !== '') {
      const d = this.docrootSource(docroot);
      if (d !== null) sources = [...sources, d];
    }
    for (const s of sources) {
      let rest: string;
      if (s.kind === 'check-static' || s.kind === 'check-static-docroot') rest = key;
      else {
        if (s.mount !== '' && key !== s.mount && !(key.startsWith(s.mount) && key.charCodeAt(s.mount.length) === 47)) continue;
        rest = s.kind === 'static-map' ? key.slice(s.mount.length) : key;
      }
      const root = await this.rootOf(s);
      if (root === null) continue;
      let candidate = s.isFile && (s.kind === 'static-map' || s.kind === 'static-map2') ? root : root + rest;
      let st = await statP(candidate);
      if (st === null) continue;
      if (st.isDirectory()) {
        let found = false;
        for (const idx of this.o.index) {
          const c = candidate.endsWith('/') ? candidate + idx : candidate + '/' + idx;
          const st2 = await statP(c);
          if (st2 !== null && st2.isFile()) { candidate = c; st = st2; found = true; break; }
        }
        if (!found) continue; // never a listing: the app gets the request
      }
      if (!st.isFile()) continue;
      const real = await realpathP(candidate);
      if (real === null) continue;
      if (!this.allowed(real, root)) {
        this.o.debug('file resolves outside its root and every --static-safe directory', { path: key, file: real, root });
        continue;
      }
      if (this.skipped(candidate) || this.skipped(real)) return null;
      return this.entryFor(real, st, root, '', this.o.typeOf(real));
    }
    return null;
  }

  private entryFor(real: string, st: fs.Stats, root: string, encoding: string, type: string): FileEntry {
    const k = encoding === '' ? real : real + '\0' + encoding;
    const old = this.files.get(k);
    const now = Date.now();
    if (old !== undefined) {
      if (!old.dead && old.same(st)) { old.lastUsed = now; return old; }
      this.retire(old);
    }
    const e = new FileEntry(real, st, root, type, encoding, now);
    this.o.decorate(e);
    if (this.files.size >= MAX_FILES) this.retire(this.files.values().next().value!);
    this.files.set(k, e);
    return e;
  }

  /** The precompressed variant (`br` or `gz`) of an entry, if one exists, is a file under the same root and is not older. */
  async variant(e: FileEntry, which: 'br' | 'gz', now: number): Promise<FileEntry | null> {
    if (e.variantsUntil < now) { e.br = undefined; e.gz = undefined; e.variantsUntil = now + this.ttlMs; }
    const have = which === 'br' ? e.br : e.gz;
    if (have !== undefined && (have === null || !have.dead)) return have;
    let v: FileEntry | null = null;
    const path = `${e.real}.${which}`;
    const st = await statP(path);
    if (st !== null && st.isFile() && st.mtimeMs >= e.mtimeMs) {
      const real = await realpathP(path);
      if (real !== null && this.allowed(real, e.root)) v = this.entryFor(real, st, e.root, which === 'br' ? 'br' : 'gzip', e.type);
    }
    if (which === 'br') e.br = v; else e.gz = v;
    return v;
  }

  /** Take a reference on the entry's descriptor (opening it, and checking it is still the same file). */
  async acquire(e: FileEntry): Promise<number> {
    e.refs++;
    try {
      if (e.fd >= 0) return e.fd;
      if (e.opening === null) {
        e.opening = new Promise<number>((resolve, reject) => {
          fs.open(e.real, fs.constants.O_RDONLY, (err, fd) => {
            if (err) { reject(err); return; }
            fs.fstat(fd, (err2, st) => {
              if (err2 || !e.same(st)) { closeFd(fd); reject(err2 ?? new Changed(e.real)); return; }
              resolve(fd);
            });
          });
        }).then((fd) => { e.opening = null; e.fd = fd; return fd; }, (err: unknown) => { e.opening = null; throw err; });
      }
      return await e.opening;
    } catch (err) {
      e.refs--;
      if (err instanceof Changed) this.retire(e);
      throw err;
    }
  }

  release(e: FileEntry): void {
    e.refs--;
    if (e.refs === 0 && e.fd >= 0 && (e.dead || this.ttlMs === 0)) {
      closeFd(e.fd);
      e.fd = -1;
    }
  }

  /** Is the open descriptor still the file the entry describes? (After a multi-read response, before its last bytes.) */
  async unchanged(e: FileEntry, fd: number): Promise<boolean> {
    try {
      const st = fs.fstatSync(fd); // an open descriptor's inode is in memory: this never waits for the disk
      if (e.same(st)) return true; // an unlinked (replaced) file still reads consistently
    } catch { /* fall through */ }
    this.retire(e);
    return false;
  }

  /** Content held in memory for a hot small file: load it once (shared by concurrent requests). */
  async load(e: FileEntry): Promise<void> {
    if (e.data !== null) return;
    if (e.loading === null) {
      e.loading = (async () => {
        const fd = await this.acquire(e);
        try {
          const buf = Buffer.allocUnsafeSlow(e.size);
          let off = 0;
          while (off < e.size) {
            const n = await readP(fd, buf.subarray(off), e.size - off, off);
            if (n === 0) throw new Changed(e.real);
            off += n;
          }
          if (!(await this.unchanged(e, fd))) throw new Changed(e.real);
          if (!e.dead) this.store(e, buf);
        } finally {
          this.release(e);
        }
      })().finally(() => { e.loading = null; });
    }
    return e.loading;
  }

  private store(e: FileEntry, buf: Buffer): void {
    if (e.size > this.o.memoryFileMax || e.size > this.o.memoryMax) return;
    while (this.memoryBytes + e.size > this.o.memoryMax && this.lru.size > 0) {
      const oldest = this.lru.keys().next().value!;
      this.drop(oldest);
    }
    e.data = buf;
    this.memoryBytes += e.size;
    this.lru.set(e, true);
  }

  /** A memory hit: move the entry to the young end of the LRU. */
  touch(e: FileEntry): void {
    this.lru.delete(e);
    this.lru.set(e, true);
  }

  private drop(e: FileEntry): void {
    if (e.data !== null) {
      e.data = null;
      this.memoryBytes -= e.size;
      this.lru.delete(e);
    }
  }

  /** Forget an entry: no new request uses it; its descriptor closes when the last one is done. */
  retire(e: FileEntry): void {
    if (e.dead) return;
    e.dead = true;
    const k = e.encoding === '' ? e.real : e.real + '\0' + e.encoding;
    if (this.files.get(k) === e) this.files.delete(k);
    this.drop(e);
    if (e.refs === 0 && e.fd >= 0) { closeFd(e.fd); e.fd = -1; }
  }

  private startSweeper(): void {
    if (this.sweeper !== null) return;
    this.sweeper = setInterval(() => this.sweep(Date.now()), Math.max(250, Math.min(this.ttlMs || 1000, 5000)));
    this.sweeper.unref();
  }

  /** Expire path answers, close descriptors idle for a TTL, forget files idle for a minute. */
  sweep(now: number): void {
    for (const [k, s] of this.paths) if (s.until < now) this.paths.delete(k);
    for (const e of this.files.values()) {
      if (e.refs !== 0) continue;
      const idle = now - e.lastUsed;
      if (idle >= IDLE_DROP_MS) this.retire(e);
      else if (e.fd >= 0 && idle >= this.ttlMs) { closeFd(e.fd); e.fd = -1; }
    }
  }

  /** Counters for tests and stats. */
  stats(): { paths: number; files: number; openFds: number; memoryBytes: number; memoryFiles: number } {
    let fds = 0;
    for (const e of this.files.values()) if (e.fd >= 0) fds++;
    return { paths: this.paths.size, files: this.files.size, openFds: fds, memoryBytes: this.memoryBytes, memoryFiles: this.lru.size };
  }

  close(): void {
    if (this.sweeper !== null) clearInterval(this.sweeper);
    this.sweeper = null;
    for (const e of [...this.files.values()]) this.retire(e);
    this.paths.clear();
  }
}
