// The `static` plugin: serve files before the application (uWSGI's --check-static, --static-map …) with
// RFC 9110 Range and conditional requests, precompressed variants, and no way out of the roots.
// Answers GET and HEAD for paths that are regular files under a root; everything else falls through.
import { Buffer } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { definePlugin, type HeaderList, type PluginApi, type RequestContext } from '../../sdk/index.js';
import { Changed, FsCache, readP, type FileEntry, type Source } from './fscache.js';
import { buildMimeTable, lookupType } from './mime.js';
import { acceptedEncodings, etagListMatches, evaluateRange, ifRangeMatches, parseHttpDate, type ByteRange } from './range.js';

/** one read from disk (and the largest write to the wire) */
const CHUNK = 256 * 1024;

interface ExpiresRule { re: RegExp | null; type: string | null; secs: number }

function usage(api: PluginApi, option: string, value: string, allowed: string): Error {
  const e = api.error('UW_ERR_CONFIG_BAD_VALUE', `invalid value ${JSON.stringify(value)} for option --${option}: ${allowed}`) as Error & { exitCode?: number };
  e.exitCode = 2;
  return e;
}

function list<T>(v: unknown): T[] {
  return v === undefined || v === null ? [] : Array.isArray(v) ? v as T[] : [v as T];
}

/** `/mount=DIR` (static-map, static-map2). */
function parseMap(api: PluginApi, option: 'static-map' | 'static-map2', v: string): Source {
  const eq = v.indexOf('=');
  if (eq <= 0 || eq === v.length - 1) throw usage(api, option, v, 'expected MOUNTPOINT=DIR, e.g. /static=/srv/app/static');
  let mount = v.slice(0, eq).trim();
  const dir = v.slice(eq + 1).trim();
  if (!mount.startsWith('/')) throw usage(api, option, v, 'the mountpoint must start with /');
  while (mount.endsWith('/')) mount = mount.slice(0, -1);
  return { kind: option, mount, dir: path.resolve(dir), real: null, isFile: false };
}

function parseSeconds(api: PluginApi, option: string, v: string): [string, number] {
  const eq = v.lastIndexOf('=');
  const secs = eq > 0 ? Number(v.slice(eq + 1).trim()) : NaN;
  if (!(secs >= 0) || !Number.isInteger(secs)) throw usage(api, option, v, 'expected VALUE=SECONDS with whole seconds, e.g. text/css=86400');
  return [v.slice(0, eq).trim(), secs];
}

function regexRule(api: PluginApi, option: string, v: string): ExpiresRule {
  const [src, secs] = parseSeconds(api, option, v);
  try { return { re: new RegExp(src), type: null, secs }; } catch (e) { throw usage(api, option, v, `not a valid regular expression (${(e as Error).message})`); }
}

/** HTTP-date for now + secs, recomputed at most once per second per distinct `secs`. */
const expiresMemo = new Map<number, { sec: number; value: string }>();
function expiresAt(secs: number, nowMs: number): string {
  const sec = Math.floor(nowMs / 1000);
  let m = expiresMemo.get(secs);
  if (m === undefined || m.sec !== sec) {
    m = { sec, value: new Date((sec + secs) * 1000).toUTCString() };
    if (expiresMemo.size < 64) expiresMemo.set(secs, m);
  }
  return m.value;
}

/** Accept-Encoding values repeat across requests: remember their meaning (bounded). */
const aeMemo = new Map<string, { br: boolean; gzip: boolean }>();
function accepts(h: string | undefined): { br: boolean; gzip: boolean } {
  if (h === undefined) return NO_ENCODINGS;
  let r = aeMemo.get(h);
  if (r === undefined) {
    r = acceptedEncodings(h);
    if (aeMemo.size >= 256) aeMemo.clear();
    aeMemo.set(h, r);
  }
  return r;
}
const NO_ENCODINGS = Object.freeze({ br: false, gzip: false });

const EMPTY: HeaderList = [];

export default definePlugin({
  name: 'static',
  version: '1.0.0',
  sdk: '^1.0.0',
  description: 'serve files before the application: check-static, static-map, Range, conditional requests (uWSGI\'s static file server)',
  options: [
    { name: 'check-static', type: 'path', multiple: true, alias: ['static-check'], arg: 'DIR', help: 'serve DIR + PATH_INFO when it is a file, before the application (tried in order)' },
    { name: 'check-static-docroot', type: 'bool', default: false, help: 'also serve DOCUMENT_ROOT + PATH_INFO when the request carries DOCUMENT_ROOT (sent by nginx uwsgi_params), after the other roots' },
    { name: 'static-map', type: 'string', multiple: true, arg: '/MOUNT=DIR', help: 'serve DIR + the rest of PATH_INFO for paths under /MOUNT (DIR may be a file; relative to the working directory)' },
    { name: 'static-map2', type: 'string', multiple: true, arg: '/MOUNT=DIR', help: 'like --static-map but DIR + the whole PATH_INFO (the mount stays in the path)' },
    { name: 'static-index', type: 'string', multiple: true, arg: 'NAME', help: 'for a directory, serve the first of these files that exists; never a listing' },
    { name: 'static-skip-ext', type: 'string', multiple: true, arg: 'EXT', help: 'never serve files ending in EXT (e.g. .php); such requests go to the application' },
    { name: 'static-safe', type: 'path', multiple: true, arg: 'DIR', help: 'a directory that symlinks inside the roots may point into' },
    { name: 'static-expires-type', type: 'string', multiple: true, arg: 'TYPE=SECONDS', help: 'Expires/Cache-Control for files of this content type (e.g. text/css=86400)' },
    { name: 'static-expires', type: 'string', multiple: true, arg: 'REGEX=SECONDS', help: 'Expires/Cache-Control for files whose real path matches REGEX' },
    { name: 'static-expires-uri', type: 'string', multiple: true, arg: 'REGEX=SECONDS', help: 'Expires/Cache-Control when REQUEST_URI matches REGEX' },
    { name: 'static-expires-path-info', type: 'string', multiple: true, arg: 'REGEX=SECONDS', help: 'Expires/Cache-Control when PATH_INFO matches REGEX' },
    { name: 'mimefile', type: 'path', multiple: true, alias: ['mime-file'], arg: 'FILE', help: 'a mime.types file (default: the built-in table plus /etc/mime.types when present)' },
    { name: 'honour-range', type: 'bool', default: true, alias: ['honor-range'], help: 'answer Range requests (206, multipart/byteranges, 416); on by default, honour-range = false turns it off' },
    { name: 'static-gzip-all', type: 'bool', default: false, help: 'serve FILE.br or FILE.gz instead of FILE when the client accepts it (with Content-Encoding and Vary)' },
    { name: 'static-cache-paths', type: 'seconds', default: 1, min: 0, max: 3600, arg: 'S', help: 'remember path lookups, file metadata and open descriptors for S seconds (0: stat every request)' },
    { name: 'static-memory-cache', type: 'size', default: 32 * 1024 * 1024, min: 0, arg: 'SIZE', help: 'keep hot files in memory, up to SIZE bytes per worker (0 disables)' },
    { name: 'static-memory-max-file', type: 'size', default: 1024 * 1024, min: 0, arg: 'SIZE', help: 'largest file kept in memory' },
    { name: 'static-sync-read', type: 'size', default: 64 * 1024, min: 0, arg: 'SIZE', help: 'read up to SIZE bytes from an open file without the thread pool (like nginx without aio: a page-cache read costs microseconds, a thread-pool round trip far more); 0: always asynchronous' },
    { name: 'static-max-ranges', type: 'int', default: 16, min: 1, max: 1000, arg: 'N', help: 'more ranges than N in one request (after merging overlaps) are coalesced into one' },
  ],
  setup(api) {
    const o = api.options;
    const sources: Source[] = [];
    for (const d of list<string>(o['check-static'])) sources.push({ kind: 'check-static', mount: '', dir: d, real: null, isFile: false });
    for (const m of list<string>(o['static-map'])) sources.push(parseMap(api, 'static-map', m));
    for (const m of list<string>(o['static-map2'])) sources.push(parseMap(api, 'static-map2', m));
    const index = list<string>(o['static-index']).map((s) => s.trim());
    for (const i of index) if (i === '' || i.includes('/') || i === '.' || i === '..') throw usage(api, 'static-index', i, 'expected a file name such as index.html');
    const skipExt = list<string>(o['static-skip-ext']).map((s) => s.trim()).filter((s) => s !== '');
    const honourRange = o['honour-range'] !== false;
    const gzipAll = o['static-gzip-all'] === true;
    const useDocroot = o['check-static-docroot'] === true;
    const maxRanges = o['static-max-ranges'] as number;
    const syncReadMax = o['static-sync-read'] as number;
    const memoryMax = o['static-memory-cache'] as number;
    const memoryFileMax = Math.min(o['static-memory-max-file'] as number, memoryMax);
    let mime: Map<string, string>;
    try {
      mime = buildMimeTable(list<string>(o.mimefile));
    } catch (e) {
      throw usage(api, 'mimefile', (e as NodeJS.ErrnoException).path ?? '', `cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    const typeRules: ExpiresRule[] = list<string>(o['static-expires-type']).map((v) => { const [t, secs] = parseSeconds(api, 'static-expires-type', v); return { re: null, type: t, secs }; });
    const fileRules = list<string>(o['static-expires']).map((v) => regexRule(api, 'static-expires', v));
    const uriRules = list<string>(o['static-expires-uri']).map((v) => regexRule(api, 'static-expires-uri', v));
    const pathRules = list<string>(o['static-expires-path-info']).map((v) => regexRule(api, 'static-expires-path-info', v));
    const requestRules = uriRules.length + pathRules.length > 0;
    const safe: string[] = [];
    for (const s of list<string>(o['static-safe'])) {
      try { safe.push(fs.realpathSync.native(s)); } catch { api.log.warn({ dir: s }, `--static-safe ${s} does not exist; ignored`); }
    }
    if (sources.length === 0 && !useDocroot) return { stats: () => null };

    if (api.process === 'master' || api.process === 'single') {
      for (const s of sources) {
        if (!fs.existsSync(s.dir)) api.log.warn({ dir: s.dir, option: s.kind }, `--${s.kind} ${s.dir} does not exist (yet): its requests go to the application until it does`);
        else api.log.info({ option: s.kind, mount: s.mount || undefined, dir: s.dir }, `serving files from ${s.dir}${s.kind === 'check-static' ? '' : ` at ${s.mount || '/'}`}`);
      }
    }

    const boundary = randomBytes(12).toString('hex');
    const varyAe: [string, string] = ['Vary', 'Accept-Encoding'];
    const acceptRanges: [string, string] = ['Accept-Ranges', 'bytes'];

    /** Prebuild the headers every answer for this file shares. */
    function decorate(e: FileEntry): void {
      let secs = -1;
      for (const r of typeRules) if (r.type === e.type) { secs = r.secs; break; }
      if (secs < 0) for (const r of fileRules) if (r.re!.test(e.real)) { secs = r.secs; break; }
      e.expires = secs;
      const validators: HeaderList = [['Last-Modified', e.lastModified], ['ETag', e.etag]];
      const cache: HeaderList = secs >= 0 ? [['Cache-Control', `max-age=${secs}`]] : [];
      const base: HeaderList = [['Content-Type', e.type], ...validators];
      if (honourRange) base.push(acceptRanges);
      if (e.encoding !== '') base.push(['Content-Encoding', e.encoding]);
      if (gzipAll) base.push(varyAe);
      base.push(...cache);
      e.base = base;
      e.full = [...base, ['Content-Length', String(e.size)]];
      e.notModified = [...validators, ...(gzipAll ? [varyAe] : []), ...cache];
    }

    const cache = new FsCache({
      sources, safe, index, skipExt,
      ttl: o['static-cache-paths'] as number,
      memoryMax, memoryFileMax,
      typeOf: (f) => lookupType(mime, f),
      decorate,
      debug: (msg, obj) => { if (api.log.isLevelEnabled('debug')) api.log.debug(obj ?? {}, msg); },
    });
    api.onClose(() => cache.close());

    // A fresh buffer per read: a chunk handed to ctx.write may be kept by a response transform (the SDK
    // lets transforms hold chunks back), so read buffers are never recycled.
    const getBuf = (n: number): Buffer => (n < 4096 ? Buffer.allocUnsafe(n) : Buffer.allocUnsafeSlow(n));

    /** Expires for this request: the file's own rule, else the first URI / PATH_INFO rule that matches. */
    function expiresFor(ctx: RequestContext, e: FileEntry): number {
      if (e.expires >= 0 || !requestRules) return e.expires;
      const uri = ctx.env.REQUEST_URI;
      for (const r of uriRules) if (r.re!.test(uri)) return r.secs;
      const p = ctx.env.PATH_INFO;
      for (const r of pathRules) if (r.re!.test(p)) return r.secs;
      return -1;
    }

    function withExpires(h: HeaderList, secs: number, now: number, hasCacheControl: boolean): HeaderList {
      if (secs < 0) return h;
      const out = h.slice();
      if (!hasCacheControl) out.push(['Cache-Control', `max-age=${secs}`]);
      out.push(['Expires', expiresAt(secs, now)]);
      return out;
    }

    /** Stream byte ranges (and literal pieces between them) from the file: bounded memory, backpressure,
     *  read-ahead of one chunk, and a last check that the file did not change before the final bytes go out. */
    async function streamFile(ctx: RequestContext, e: FileEntry, status: number, headers: HeaderList, pieces: Array<Buffer | ByteRange>): Promise<void> {
      // open (or share) the descriptor before the status line goes out: a file that vanished or changed
      // since it was looked up can still be retried, or fall through to the application
      const fd = await cache.acquire(e);
      try {
        ctx.start(status, '', headers);
      } catch (err) {
        cache.release(e);
        throw err;
      }
      let reads = 0;
      let held: Buffer | null = null;
      let pending: Promise<number> | number | null = null;
      try {
        for (const piece of pieces) {
          if (ctx.aborted) return;
          if (Buffer.isBuffer(piece)) {
            if (held !== null && !(await put(ctx, held))) return;
            held = piece;
            continue;
          }
          let pos = piece.start;
          const end = piece.end + 1;
          let buf = getBuf(Math.min(CHUNK, end - pos));
          let want = Math.min(buf.length, end - pos);
          pending = want <= syncReadMax ? fs.readSync(fd, buf, 0, want, pos) : readP(fd, buf, want, pos);
          while (pos < end) {
            const n: number = typeof pending === 'number' ? pending : await pending!;
            pending = null;
            reads++;
            if (n !== want) { // truncated while we read it
              cache.retire(e);
              ctx.log.debug({ file: e.real }, 'file truncated during the response: connection closed short of Content-Length');
              ctx.abort();
              return;
            }
            const chunk = n === buf.length ? buf : buf.subarray(0, n);
            pos += n;
            if (pos < end) { // read ahead while the previous chunk drains
              buf = getBuf(Math.min(CHUNK, end - pos));
              want = Math.min(buf.length, end - pos);
              pending = want <= syncReadMax ? fs.readSync(fd, buf, 0, want, pos) : readP(fd, buf, want, pos);
            }
            if (held !== null && !(await put(ctx, held))) return;
            held = chunk;
          }
        }
        if (ctx.aborted) return;
        if (reads > 1 && !(await cache.unchanged(e, fd))) {
          // the file changed during the download: withhold the last bytes so the client sees a short body
          ctx.log.debug({ file: e.real }, 'file changed during the response: connection closed short of Content-Length');
          ctx.abort();
          return;
        }
        ctx.end(held ?? undefined);
      } finally {
        if (pending !== null && typeof pending !== 'number') await pending.catch(() => 0);
        cache.release(e);
      }
    }

    /** Write one chunk, waiting for the wire to drain. False when the client is gone. */
    async function put(ctx: RequestContext, b: Buffer): Promise<boolean> {
      if (!ctx.write(b)) await ctx.drain();
      return !ctx.aborted;
    }

    function partHead(e: FileEntry, r: ByteRange, first: boolean): Buffer {
      return Buffer.from(`${first ? '' : '\r\n'}--${boundary}\r\nContent-Type: ${e.type}\r\nContent-Range: bytes ${r.start}-${r.end}/${e.size}\r\n\r\n`, 'latin1');
    }

    /** Answer for one file (entry already chosen, variant included). */
    async function serve(ctx: RequestContext, e: FileEntry, now: number): Promise<void> {
      const env = ctx.env;
      const head = env.REQUEST_METHOD === 'HEAD';
      e.lastUsed = now;
      // RFC 9110 §13.2.2: If-Match, else If-Unmodified-Since → 412; If-None-Match, else If-Modified-Since → 304
      const im = env.HTTP_IF_MATCH as string | undefined;
      if (im !== undefined) {
        if (!etagListMatches(im, e.etag, false)) { ctx.respond(412, EMPTY, null); return; }
      } else {
        const ius = env.HTTP_IF_UNMODIFIED_SINCE as string | undefined;
        if (ius !== undefined) {
          const d = parseHttpDate(ius);
          if (d === d && e.lastModifiedSec > d) { ctx.respond(412, EMPTY, null); return; }
        }
      }
      const inm = env.HTTP_IF_NONE_MATCH as string | undefined;
      let notModified = false;
      if (inm !== undefined) notModified = etagListMatches(inm, e.etag, true);
      else {
        const ims = env.HTTP_IF_MODIFIED_SINCE as string | undefined;
        if (ims !== undefined) {
          const d = parseHttpDate(ims);
          notModified = d === d && e.lastModifiedSec <= d;
        }
      }
      const secs = expiresFor(ctx, e);
      if (notModified) {
        ctx.start(304, '', withExpires(e.notModified, secs, now, e.expires >= 0));
        ctx.end();
        return;
      }

      // Range (GET only: RFC 9110 §14.2), If-Range
      let ranges: ByteRange[] | null = null;
      const rh = env.HTTP_RANGE as string | undefined;
      if (rh !== undefined && honourRange && !head) {
        const ir = env.HTTP_IF_RANGE as string | undefined;
        if (ir === undefined || ifRangeMatches(ir, e.etag, e.lastModifiedSec, Math.floor(now / 1000))) {
          const r = evaluateRange(e.size, rh, maxRanges);
          if (r === 'unsatisfiable') {
            e.unsatisfiable ??= [['Content-Range', `bytes */${e.size}`], acceptRanges, ['Last-Modified', e.lastModified], ['ETag', e.etag]];
            ctx.respond(416, e.unsatisfiable, null);
            return;
          }
          ranges = r;
        }
      }

      if (ranges === null) {
        const h = withExpires(e.full, secs, now, e.expires >= 0);
        if (head || e.size === 0) { ctx.start(200, '', h); ctx.end(); return; }
        let mem = inMemory(e);
        if (typeof mem !== 'boolean') mem = await mem;
        if (mem) { ctx.respond(200, h, e.data!); return; }
        await streamFile(ctx, e, 200, h, [{ start: 0, end: e.size - 1 }]);
        return;
      }

      if (ranges.length === 1) {
        const r = ranges[0]!;
        const h = withExpires(e.base, secs, now, e.expires >= 0);
        const out = h === e.base ? h.slice() : h;
        out.push(['Content-Range', `bytes ${r.start}-${r.end}/${e.size}`], ['Content-Length', String(r.end - r.start + 1)]);
        let mem = inMemory(e);
        if (typeof mem !== 'boolean') mem = await mem;
        if (mem) { ctx.respond(206, out, e.data!.subarray(r.start, r.end + 1)); return; }
        await streamFile(ctx, e, 206, out, [r]);
        return;
      }

      // several ranges: multipart/byteranges, unless that would be larger than the file itself (tiny
      // ranges on a small file), in which case one coalesced range is sent: never more than the file
      const pieces: Array<Buffer | ByteRange> = [];
      let len = 0;
      let lo = Infinity;
      let hi = -1;
      for (let i = 0; i < ranges.length; i++) {
        const r = ranges[i]!;
        const ph = partHead(e, r, i === 0);
        pieces.push(ph, r);
        len += ph.length + r.end - r.start + 1;
        if (r.start < lo) lo = r.start;
        if (r.end > hi) hi = r.end;
      }
      const tail = Buffer.from(`\r\n--${boundary}--\r\n`, 'latin1');
      pieces.push(tail);
      len += tail.length;
      if (len >= e.size) {
        const r = { start: lo, end: hi };
        const out = withExpires(e.base, secs, now, e.expires >= 0).slice();
        out.push(['Content-Range', `bytes ${lo}-${hi}/${e.size}`], ['Content-Length', String(hi - lo + 1)]);
        let mem = inMemory(e);
        if (typeof mem !== 'boolean') mem = await mem;
        if (mem) { ctx.respond(206, out, e.data!.subarray(lo, hi + 1)); return; }
        await streamFile(ctx, e, 206, out, [r]);
        return;
      }
      const out: HeaderList = [];
      for (const x of withExpires(e.base, secs, now, e.expires >= 0)) if (x[0] !== 'Content-Type') out.push(x);
      out.unshift(['Content-Type', `multipart/byteranges; boundary=${boundary}`]);
      out.push(['Content-Length', String(len)]);
      let mem = inMemory(e);
      if (typeof mem !== 'boolean') mem = await mem;
      if (mem) {
        ctx.start(206, '', out);
        for (const p of pieces) ctx.write(Buffer.isBuffer(p) ? p : e.data!.subarray(p.start, p.end + 1));
        ctx.end();
        return;
      }
      await streamFile(ctx, e, 206, out, pieces);
    }

    /** Serve from memory? Counts the hit; loads a file on its second request when it fits. */
    function inMemory(e: FileEntry): boolean | Promise<boolean> {
      if (e.data !== null) { cache.touch(e); return true; }
      if (e.size > memoryFileMax || ++e.hits < 2) return false;
      return loadThenCheck(e);
    }
    async function loadThenCheck(e: FileEntry): Promise<boolean> {
      await cache.load(e);
      return e.data !== null;
    }

    async function onRequest(ctx: RequestContext): Promise<boolean> {
      const env = ctx.env;
      const m = env.REQUEST_METHOD;
      if (m !== 'GET' && m !== 'HEAD') return false;
      const p = env.PATH_INFO;
      const docroot = useDocroot ? env.DOCUMENT_ROOT as string | undefined : undefined;
      const key = docroot === undefined ? p : `${p}\0${docroot}`;
      for (let attempt = 0; ; attempt++) {
        const now = Date.now();
        let e = cache.lookup(key, now);
        if (e === undefined) e = await cache.resolve(key, now, p, docroot);
        if (e === null) return false;
        try {
          if (gzipAll) {
            const ae = accepts(env.HTTP_ACCEPT_ENCODING as string | undefined);
            let v: FileEntry | null = null;
            if (ae.br) v = await cache.variant(e, 'br', now);
            if (v === null && ae.gzip) v = await cache.variant(e, 'gz', now);
            if (v !== null) e = v;
          }
          await serve(ctx, e, now);
          return true;
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (ctx.headersSent || ctx.aborted) {
            if (!ctx.aborted) {
              ctx.log.warn({ code: code ?? (err as { code?: string }).code, plugin: 'static', hook: 'request', file: e.real }, `reading the file failed mid-response: ${(err as Error).message}; connection closed`);
              ctx.abort();
            }
            return true;
          }
          if (attempt === 0 && (err instanceof Changed || code === 'ENOENT' || code === 'ENOTDIR')) {
            cache.invalidate(key);
            continue;
          }
          if (code === 'EACCES' || code === 'EPERM') {
            ctx.respond(403, [['Content-Type', 'text/plain; charset=utf-8']], 'Forbidden\n');
            return true;
          }
          if (err instanceof Changed || code === 'ENOENT' || code === 'ENOTDIR') return false;
          throw err;
        }
      }
    }

    api.hooks.request.tapPromise('static', onRequest);
    return { stats: () => cache.stats() };
  },
});
