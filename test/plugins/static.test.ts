// The static plugin end to end: the seed's Range example, RFC 9110 Range and conditional semantics,
// mounts, index files, expires, precompressed variants and the memory cache, over real sockets.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { freePort, startUwcore, tmpDir, writeFile, httpGet, type Running, type HttpResult } from '../helpers/server.js';

const APP = `export function application(env, start_response) {
  const b = 'APP ' + env.REQUEST_METHOD + ' ' + env.PATH_INFO + '\\n';
  start_response('200 OK', [['Content-Type', 'text/plain'], ['Content-Length', String(Buffer.byteLength(b))]]);
  return [b];
}
`;

function isApp(r: HttpResult): boolean {
  return r.status === 200 && r.body.toString().startsWith('APP ');
}

/** Deterministic pseudo-random bytes (so a wrong offset can never look right). */
function pattern(n: number, seed = 1): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = seed * 2654435761 >>> 0;
  for (let i = 0; i < n; i++) { x = (x * 1103515245 + 12345) >>> 0; b[i] = x >>> 24; }
  return b;
}

/** Split a multipart/byteranges body into parts. */
function multipart(r: HttpResult): Array<{ range: string; type: string; body: Buffer }> {
  const m = /boundary=(\S+)/.exec(r.headers['content-type'] ?? '');
  assert.ok(m, `multipart content type: ${r.headers['content-type']}`);
  const delim = Buffer.from(`--${m[1]}`);
  const out: Array<{ range: string; type: string; body: Buffer }> = [];
  let pos = r.body.indexOf(delim);
  while (pos >= 0) {
    const after = pos + delim.length;
    if (r.body.subarray(after, after + 2).toString() === '--') break;
    const headEnd = r.body.indexOf('\r\n\r\n', after);
    const head = r.body.subarray(after + 2, headEnd).toString('latin1');
    const next = r.body.indexOf(delim, headEnd);
    const body = r.body.subarray(headEnd + 4, next - 2); // part body ends with CRLF before the delimiter
    const h: Record<string, string> = {};
    for (const l of head.split('\r\n')) { const i = l.indexOf(':'); h[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim(); }
    out.push({ range: h['content-range']!, type: h['content-type']!, body });
    pos = next;
  }
  return out;
}

describe('static: the seed example (ini, master, 2 processes x 2 threads, 25 MB file)', () => {
  let srv: Running;
  let port: number;
  let dir: string;
  let file: Buffer;
  before(async () => {
    dir = tmpDir('uwcore-static-seed-');
    port = await freePort();
    // a ~25 MB JSON document, as in the article
    const row = (i: number) => `{"id":${i},"name":"item ${i}","tags":["a","b","c"],"value":${(i * 7919) % 100003}}`;
    const parts: string[] = ['['];
    let size = 1;
    for (let i = 0; size < 25 * 1024 * 1024; i++) { const s = (i ? ',' : '') + row(i); parts.push(s); size += s.length; }
    parts.push(']\n');
    file = Buffer.from(parts.join(''));
    fs.mkdirSync(path.join(dir, 'static'));
    fs.writeFileSync(path.join(dir, 'static/large-file.json'), file);
    writeFile(path.join(dir, 'wsgi_range.js'), APP);
    writeFile(path.join(dir, 'uwsgi-config.ini'), `[uwsgi]
http = :${port}
honour-range = true
check-static = static/
wsgi-file = wsgi_range.js
processes = 2
threads = 2
master = true
`);
    srv = await startUwcore(['uwsgi-config.ini'], { cwd: dir });
  });
  after(async () => { await srv?.stop(); fs.rmSync(dir, { recursive: true, force: true }); });

  it('curl -r 1200-1299 answers 206 with exactly those 100 bytes', async () => {
    const r = await httpGet(port, '/large-file.json', { Range: 'bytes=1200-1299' });
    assert.equal(r.status, 206);
    assert.match(r.raw.subarray(0, 40).toString(), /^HTTP\/1\.1 206 Partial Content\r\n/);
    assert.equal(r.headers['content-type'], 'application/json');
    assert.equal(r.headers['content-length'], '100');
    assert.equal(r.headers['content-range'], `bytes 1200-1299/${file.length}`);
    const mtime = fs.statSync(path.join(dir, 'static/large-file.json')).mtime;
    assert.equal(r.headers['last-modified'], new Date(Math.floor(mtime.getTime() / 1000) * 1000).toUTCString());
    assert.ok(file.length > 25 * 1024 * 1024 - 1);
    assert.deepEqual(r.body, file.subarray(1200, 1300));
  });

  it('the whole file streams intact, and paths that are not files reach the application', async () => {
    const r = await httpGet(port, '/large-file.json');
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-length'], String(file.length));
    assert.equal(r.headers['accept-ranges'], 'bytes');
    assert.equal(crypto.createHash('sha1').update(r.body).digest('hex'), crypto.createHash('sha1').update(file).digest('hex'));
    const a = await httpGet(port, '/not-a-file.json');
    assert.ok(isApp(a), a.body.toString());
    assert.equal(a.body.toString(), 'APP GET /not-a-file.json\n');
  });
});

describe('static: RFC 9110 semantics', () => {
  let srv: Running;
  let port: number;
  let dir: string;
  const small = Buffer.from('hello, world\n'); // 13 bytes
  const big = pattern(3 * 1024 * 1024 + 17, 7);
  let etag = '';
  let lastModified = '';

  before(async () => {
    dir = tmpDir('uwcore-static-rfc-');
    port = await freePort();
    const www = path.join(dir, 'www');
    writeFile(path.join(www, 'small.txt'), small);
    writeFile(path.join(www, 'big.bin'), big);
    writeFile(path.join(www, 'empty.txt'), '');
    writeFile(path.join(www, 'style.css'), 'body { color: red }\n');
    writeFile(path.join(www, 'style.css.gz'), 'GZIP-BYTES');
    writeFile(path.join(www, 'style.css.br'), 'BROTLI-BYTES');
    writeFile(path.join(www, 'only-gz.js'), 'console.log(1)\n');
    writeFile(path.join(www, 'only-gz.js.gz'), 'GZ-JS');
    writeFile(path.join(www, 'data.json'), '{"a":1}\n');
    writeFile(path.join(www, 'noext'), 'x');
    writeFile(path.join(www, 'thing.custom'), 'custom');
    writeFile(path.join(www, 'page.php'), '<?php secret ?>');
    writeFile(path.join(www, 'docs/index.html'), '<h1>docs</h1>\n');
    writeFile(path.join(www, 'docs/other.txt'), 'other\n');
    fs.mkdirSync(path.join(www, 'noindex'));
    writeFile(path.join(www, 'noindex/file.txt'), 'listed?\n');
    writeFile(path.join(www, 'cached/a.html'), '<p>a</p>');
    writeFile(path.join(dir, 'assets/logo.svg'), '<svg/>');
    writeFile(path.join(dir, 'assets2/assets/deep.txt'), 'deep\n');
    writeFile(path.join(dir, 'favicon.ico'), 'ICO');
    writeFile(path.join(dir, 'mime.types'), 'application/x-custom custom\n');
    writeFile(path.join(dir, 'app.js'), APP);
    const old = new Date('2020-01-02T03:04:05Z');
    fs.utimesSync(path.join(www, 'small.txt'), old, old);
    writeFile(path.join(dir, 'uwcore.ini'), `[uwcore]
http = 127.0.0.1:${port}
app = app.js
check-static = www
static-map = /assets=assets
static-map = /favicon.ico=favicon.ico
static-map2 = /assets=assets2
static-index = index.htm
static-index = index.html
static-skip-ext = .php
static-expires-type = text/css=3600
static-expires-uri = ^/cached/=600
static-expires = \\.json$=120
static-expires-path-info = ^/docs/=60
static-gzip-all = true
mimefile = mime.types
static-cache-paths = 0.2
`);
    srv = await startUwcore(['uwcore.ini'], { cwd: dir });
    const r = await httpGet(port, '/small.txt');
    etag = r.headers.etag!;
    lastModified = r.headers['last-modified']!;
  });
  after(async () => { await srv?.stop(); fs.rmSync(dir, { recursive: true, force: true }); });

  it('200 with type, length, strong ETag, Last-Modified, Accept-Ranges', async () => {
    const r = await httpGet(port, '/small.txt');
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, small);
    assert.equal(r.headers['content-type'], 'text/plain');
    assert.equal(r.headers['content-length'], '13');
    assert.equal(r.headers['accept-ranges'], 'bytes');
    assert.equal(r.headers['last-modified'], 'Thu, 02 Jan 2020 03:04:05 GMT');
    assert.match(r.headers.etag!, /^"[^"]+"$/);
    assert.equal((await httpGet(port, '/data.json')).headers['content-type'], 'application/json');
    assert.equal((await httpGet(port, '/noext')).headers['content-type'], 'application/octet-stream');
    assert.equal((await httpGet(port, '/thing.custom')).headers['content-type'], 'application/x-custom');
    const e = await httpGet(port, '/empty.txt');
    assert.equal(e.status, 200);
    assert.equal(e.headers['content-length'], '0');
  });

  it('HEAD: the same headers, no body; other methods reach the application', async () => {
    const r = await httpGet(port, '/big.bin', {}, 'HEAD');
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-length'], String(big.length));
    assert.equal(r.body.length, 0);
    const rr = await httpGet(port, '/big.bin', { Range: 'bytes=0-9' }, 'HEAD');
    assert.equal(rr.status, 200, 'Range is defined for GET only');
    for (const m of ['POST', 'PUT', 'DELETE', 'OPTIONS']) {
      const x = await httpGet(port, '/small.txt', {}, m, m === 'OPTIONS' ? undefined : 'x');
      assert.equal(x.body.toString(), `APP ${m} /small.txt\n`);
    }
  });

  it('single ranges: 206 with Content-Range; suffix and open ranges; the end is clamped', async () => {
    const cases: Array<[string, number, number]> = [
      ['bytes=2-5', 2, 5], ['bytes=10-', 10, 12], ['bytes=-3', 10, 12], ['bytes=0-', 0, 12],
      ['bytes=-500', 0, 12], ['bytes=5-99999999999999999999', 5, 12], ['BYTES=1-1', 1, 1], ['bytes= 3 - 4 ', 3, 4],
    ];
    for (const [h, s, e] of cases) {
      const r = await httpGet(port, '/small.txt', { Range: h });
      assert.equal(r.status, 206, h);
      assert.equal(r.headers['content-range'], `bytes ${s}-${e}/13`, h);
      assert.equal(r.headers['content-length'], String(e - s + 1), h);
      assert.deepEqual(r.body, small.subarray(s, e + 1), h);
    }
    const r = await httpGet(port, '/big.bin', { Range: 'bytes=1048570-2097160' });
    assert.equal(r.status, 206);
    assert.deepEqual(r.body, big.subarray(1048570, 2097161));
  });

  it('unsatisfiable → 416 with Content-Range: bytes */size', async () => {
    for (const h of ['bytes=13-', 'bytes=50-60', 'bytes=-0', 'bytes=99999999999999999999-', 'bytes=20-30,40-50']) {
      const r = await httpGet(port, '/small.txt', { Range: h });
      assert.equal(r.status, 416, h);
      assert.equal(r.headers['content-range'], 'bytes */13', h);
      assert.equal(r.body.length, 0, h);
    }
  });

  it('malformed or non-bytes Range → 200 with the whole file', async () => {
    for (const h of ['items=0-1', 'bytes=5-2', 'bytes=abc', 'bytes=-', 'bytes 0-1', 'bytes=1-2-3', 'bytes=0x1-2', 'bytes=', 'bytes=5-2,0-1']) {
      const r = await httpGet(port, '/small.txt', { Range: h });
      assert.equal(r.status, 200, h);
      assert.deepEqual(r.body, small, h);
    }
    // an empty file has nothing to select: 200
    assert.equal((await httpGet(port, '/empty.txt', { Range: 'bytes=0-5' })).status, 200);
  });

  it('several ranges → multipart/byteranges, in the order asked, overlaps merged', async () => {
    const r = await httpGet(port, '/big.bin', { Range: 'bytes=1000000-1000009,0-4,2000000-2000099,2000050-2000199' });
    assert.equal(r.status, 206);
    assert.equal(r.headers['content-length'], String(r.body.length));
    const parts = multipart(r);
    assert.deepEqual(parts.map((p) => p.range), [`bytes 1000000-1000009/${big.length}`, `bytes 0-4/${big.length}`, `bytes 2000000-2000199/${big.length}`]);
    assert.deepEqual(parts[0]!.body, big.subarray(1000000, 1000010));
    assert.deepEqual(parts[1]!.body, big.subarray(0, 5));
    assert.deepEqual(parts[2]!.body, big.subarray(2000000, 2000200));
    assert.equal(parts[0]!.type, 'application/octet-stream');
  });

  it('range abuse is bounded: repeats, overlaps, too many ranges, tiny ranges on small files', async () => {
    const rep = await httpGet(port, '/big.bin', { Range: 'bytes=' + Array(1000).fill('0-0').join(',') });
    assert.equal(rep.status, 206);
    assert.equal(rep.headers['content-range'], `bytes 0-0/${big.length}`);
    assert.equal(rep.body.length, 1);
    const overl = await httpGet(port, '/big.bin', { Range: 'bytes=' + Array.from({ length: 500 }, (_, i) => `${i}-${i + 1000}`).join(',') });
    assert.equal(overl.status, 206);
    assert.equal(overl.headers['content-range'], `bytes 0-1499/${big.length}`);
    assert.ok(overl.body.length === 1500);
    // more than --static-max-ranges (16) distinct ranges: one coalesced range
    const many = await httpGet(port, '/big.bin', { Range: 'bytes=' + Array.from({ length: 40 }, (_, i) => `${i * 10000}-${i * 10000 + 9}`).join(',') });
    assert.equal(many.status, 206);
    assert.equal(many.headers['content-range'], `bytes 0-390009/${big.length}`);
    assert.deepEqual(many.body, big.subarray(0, 390010));
    // tiny ranges on a 13-byte file: never a response bigger than the file
    const tiny = await httpGet(port, '/small.txt', { Range: 'bytes=0-0,2-2,4-4,6-6,8-8,10-10,12-12' });
    assert.equal(tiny.status, 206);
    assert.ok(tiny.body.length <= 13);
    assert.equal(tiny.headers['content-range'], 'bytes 0-12/13');
  });

  it('If-Range: a matching ETag or date honours Range, anything else sends the whole file', async () => {
    const yes = [etag, lastModified];
    const no = ['"nope"', `W/${etag}`, 'Wed, 01 Jan 2020 00:00:00 GMT', 'garbage'];
    for (const v of yes) {
      const r = await httpGet(port, '/small.txt', { Range: 'bytes=0-1', 'If-Range': v });
      assert.equal(r.status, 206, v);
    }
    for (const v of no) {
      const r = await httpGet(port, '/small.txt', { Range: 'bytes=0-1', 'If-Range': v });
      assert.equal(r.status, 200, v);
      assert.deepEqual(r.body, small);
    }
  });

  it('If-None-Match / If-Modified-Since → 304 with validators and no body', async () => {
    for (const v of [etag, `W/${etag}`, `"a", ${etag}`, '*', `"x",W/${etag}`]) {
      const r = await httpGet(port, '/small.txt', { 'If-None-Match': v });
      assert.equal(r.status, 304, v);
      assert.equal(r.body.length, 0);
      assert.equal(r.headers.etag, etag);
      assert.equal(r.headers['content-length'], undefined);
    }
    assert.equal((await httpGet(port, '/small.txt', { 'If-None-Match': '"other"' })).status, 200);
    assert.equal((await httpGet(port, '/small.txt', { 'If-Modified-Since': lastModified })).status, 304);
    assert.equal((await httpGet(port, '/small.txt', { 'If-Modified-Since': 'Thursday, 02-Jan-20 03:04:05 GMT' })).status, 304);
    assert.equal((await httpGet(port, '/small.txt', { 'If-Modified-Since': 'Thu Jan  2 03:04:05 2020' })).status, 304);
    assert.equal((await httpGet(port, '/small.txt', { 'If-Modified-Since': 'Thu, 02 Jan 2020 03:04:04 GMT' })).status, 200);
    assert.equal((await httpGet(port, '/small.txt', { 'If-Modified-Since': 'not a date' })).status, 200);
    // If-None-Match takes precedence over If-Modified-Since
    assert.equal((await httpGet(port, '/small.txt', { 'If-None-Match': '"other"', 'If-Modified-Since': lastModified })).status, 200);
    // conditionals before Range
    assert.equal((await httpGet(port, '/small.txt', { 'If-None-Match': etag, Range: 'bytes=0-1' })).status, 304);
    // HEAD too
    assert.equal((await httpGet(port, '/small.txt', { 'If-None-Match': etag }, 'HEAD')).status, 304);
  });

  it('If-Match / If-Unmodified-Since failures → 412, in the RFC order', async () => {
    assert.equal((await httpGet(port, '/small.txt', { 'If-Match': '"nope"' })).status, 412);
    assert.equal((await httpGet(port, '/small.txt', { 'If-Match': `W/${etag}` })).status, 412, 'strong comparison');
    assert.equal((await httpGet(port, '/small.txt', { 'If-Match': etag })).status, 200);
    assert.equal((await httpGet(port, '/small.txt', { 'If-Match': '*' })).status, 200);
    assert.equal((await httpGet(port, '/small.txt', { 'If-Unmodified-Since': 'Wed, 01 Jan 2020 00:00:00 GMT' })).status, 412);
    assert.equal((await httpGet(port, '/small.txt', { 'If-Unmodified-Since': lastModified })).status, 200);
    // If-Match present: If-Unmodified-Since is not evaluated
    assert.equal((await httpGet(port, '/small.txt', { 'If-Match': etag, 'If-Unmodified-Since': 'Wed, 01 Jan 2020 00:00:00 GMT' })).status, 200);
    // 412 beats 304
    assert.equal((await httpGet(port, '/small.txt', { 'If-Match': '"nope"', 'If-None-Match': etag })).status, 412);
  });

  it('index files, no listings, skip-ext, mounts on a segment boundary, static-map2', async () => {
    for (const p of ['/docs', '/docs/']) {
      const r = await httpGet(port, p);
      assert.equal(r.body.toString(), '<h1>docs</h1>\n', p);
      assert.equal(r.headers['content-type'], 'text/html');
    }
    const nl = await httpGet(port, '/noindex/');
    assert.ok(isApp(nl), 'a directory without an index goes to the app');
    assert.ok(isApp(await httpGet(port, '/')));
    assert.equal((await httpGet(port, '/page.php')).body.toString(), 'APP GET /page.php\n');
    assert.equal((await httpGet(port, '/assets/logo.svg')).headers['content-type'], 'image/svg+xml');
    assert.equal((await httpGet(port, '/assets/logo.svg')).body.toString(), '<svg/>');
    assert.ok(isApp(await httpGet(port, '/assetsX/logo.svg')), 'mount matches whole segments only');
    assert.equal((await httpGet(port, '/assets/deep.txt')).body.toString(), 'deep\n', 'static-map2 keeps the mount in the path');
    assert.equal((await httpGet(port, '/favicon.ico')).body.toString(), 'ICO', 'a map to a file');
    assert.ok(isApp(await httpGet(port, '/small.txt/')), 'a file with a trailing slash is not a file');
  });

  it('expires by type and by URI', async () => {
    const css = await httpGet(port, '/style.css');
    assert.equal(css.headers['cache-control'], 'max-age=3600');
    const exp = Date.parse(css.headers.expires!);
    assert.ok(Math.abs(exp - (Date.now() + 3600_000)) < 5000, css.headers.expires);
    const c = await httpGet(port, '/cached/a.html');
    assert.equal(c.headers['cache-control'], 'max-age=600');
    assert.ok(Math.abs(Date.parse(c.headers.expires!) - (Date.now() + 600_000)) < 5000);
    assert.equal((await httpGet(port, '/small.txt')).headers.expires, undefined);
    assert.equal((await httpGet(port, '/small.txt')).headers['cache-control'], undefined);
    assert.equal((await httpGet(port, '/data.json')).headers['cache-control'], 'max-age=120', 'by real file name');
    assert.equal((await httpGet(port, '/docs/other.txt')).headers['cache-control'], 'max-age=60', 'by PATH_INFO');
    const nm = await httpGet(port, '/style.css', { 'If-None-Match': css.headers.etag! });
    assert.equal(nm.status, 304);
    assert.equal(nm.headers['cache-control'], 'max-age=3600');
  });

  it('static-gzip-all: .br / .gz variants when accepted, with Vary', async () => {
    const br = await httpGet(port, '/style.css', { 'Accept-Encoding': 'gzip, deflate, br' });
    assert.equal(br.body.toString(), 'BROTLI-BYTES');
    assert.equal(br.headers['content-encoding'], 'br');
    assert.equal(br.headers['content-type'], 'text/css');
    assert.equal(br.headers.vary, 'Accept-Encoding');
    const gz = await httpGet(port, '/style.css', { 'Accept-Encoding': 'gzip' });
    assert.equal(gz.body.toString(), 'GZIP-BYTES');
    assert.equal(gz.headers['content-encoding'], 'gzip');
    assert.notEqual(gz.headers.etag, br.headers.etag);
    const q0 = await httpGet(port, '/style.css', { 'Accept-Encoding': 'br;q=0, gzip;q=0' });
    assert.equal(q0.body.toString(), 'body { color: red }\n');
    assert.equal(q0.headers['content-encoding'], undefined);
    assert.equal(q0.headers.vary, 'Accept-Encoding');
    const plain = await httpGet(port, '/style.css');
    assert.equal(plain.body.toString(), 'body { color: red }\n');
    const js = await httpGet(port, '/only-gz.js', { 'Accept-Encoding': 'br, gzip' });
    assert.equal(js.body.toString(), 'GZ-JS');
    const stale = path.join(dir, 'www/stale.css');
    writeFile(stale + '.gz', 'OLD-GZ');
    writeFile(stale, 'fresh css\n');
    const past = new Date(Date.now() - 3600_000);
    fs.utimesSync(stale + '.gz', past, past);
    assert.equal((await httpGet(port, '/stale.css', { 'Accept-Encoding': 'gzip' })).body.toString(), 'fresh css\n', 'a .gz older than its file is ignored');
    const rg = await httpGet(port, '/style.css', { 'Accept-Encoding': 'gzip', Range: 'bytes=0-3' });
    assert.equal(rg.status, 206);
    assert.equal(rg.body.toString(), 'GZIP');
  });

  it('keep-alive framing: pipelined 200, HEAD, 304, 412, 416, 206, multipart and app responses on one connection', async () => {
    const reqs = [
      ['GET', '/small.txt', ''], ['HEAD', '/big.bin', ''], ['GET', '/small.txt', `If-None-Match: ${etag}\r\n`],
      ['GET', '/small.txt', 'If-Match: "no"\r\n'], ['GET', '/small.txt', 'Range: bytes=99-\r\n'], ['GET', '/big.bin', 'Range: bytes=5-9\r\n'],
      ['GET', '/big.bin', 'Range: bytes=0-1,100-101\r\n'], ['GET', '/nothing-here', ''], ['GET', '/empty.txt', ''], ['GET', '/small.txt', ''],
    ];
    const wire = reqs.map(([m, p, h]) => `${m} ${p} HTTP/1.1\r\nHost: x\r\n${h}\r\n`).join('');
    const { rawRequest } = await import('../helpers/server.js');
    const raw = await rawRequest(port, wire + 'GET /small.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    const statuses: number[] = [];
    let off = 0;
    for (let i = 0; i <= reqs.length; i++) {
      const end = raw.indexOf('\r\n\r\n', off);
      assert.ok(end > 0, `response ${i} missing`);
      const head = raw.subarray(off, end).toString('latin1');
      statuses.push(Number(head.split(' ')[1]));
      const m = /content-length: (\d+)/i.exec(head);
      const noBody = reqs[i]?.[0] === 'HEAD' || statuses[i] === 304;
      assert.ok(noBody || m, `response ${i} has a length: ${head}`);
      off = end + 4 + (noBody ? 0 : Number(m![1]));
    }
    assert.deepEqual(statuses, [200, 200, 304, 412, 416, 206, 206, 200, 200, 200, 200]);
    assert.equal(off, raw.length, 'no stray bytes');
    assert.deepEqual(raw.subarray(off - 13), small);
  });

  it('a hot file held in memory is replaced when it changes on disk', async () => {
    const f = path.join(dir, 'www/cached/hot.txt');
    writeFile(f, 'version one\n');
    for (let i = 0; i < 3; i++) assert.equal((await httpGet(port, '/cached/hot.txt')).body.toString(), 'version one\n');
    writeFile(f, 'version two, longer\n');
    const later = new Date(Date.now() + 5000);
    fs.utimesSync(f, later, later);
    await new Promise((r) => setTimeout(r, 450)); // static-cache-paths = 0.2
    const r = await httpGet(port, '/cached/hot.txt');
    assert.equal(r.body.toString(), 'version two, longer\n');
    fs.unlinkSync(f);
    await new Promise((r) => setTimeout(r, 450));
    assert.ok(isApp(await httpGet(port, '/cached/hot.txt')), 'a deleted file falls through');
  });
});

describe('static: options', () => {
  it('honour-range = false ignores Range and sends no Accept-Ranges', async () => {
    const dir = tmpDir('uwcore-static-norange-');
    const port = await freePort();
    writeFile(path.join(dir, 'www/a.txt'), 'abcdefgh');
    writeFile(path.join(dir, 'app.js'), APP);
    writeFile(path.join(dir, 'u.ini'), `[uwsgi]\nhttp = 127.0.0.1:${port}\nwsgi-file = app.js\ncheck-static = www\nhonour-range = false\n`);
    const srv = await startUwcore(['u.ini'], { cwd: dir });
    try {
      const r = await httpGet(port, '/a.txt', { Range: 'bytes=0-1' });
      assert.equal(r.status, 200);
      assert.equal(r.body.toString(), 'abcdefgh');
      assert.equal(r.headers['accept-ranges'], undefined);
    } finally { await srv.stop(); fs.rmSync(dir, { recursive: true, force: true }); }
  });

  it('a root behind a symlink follows a deployment switch; an unreadable file is 403', async () => {
    const dir = tmpDir('uwcore-static-deploy-');
    const port = await freePort();
    writeFile(path.join(dir, 'releases/1/public/v.txt'), 'one\n');
    writeFile(path.join(dir, 'releases/2/public/v.txt'), 'two\n');
    writeFile(path.join(dir, 'releases/1/public/locked.txt'), 'locked\n');
    fs.chmodSync(path.join(dir, 'releases/1/public/locked.txt'), 0o000);
    fs.symlinkSync('releases/1', path.join(dir, 'current'));
    writeFile(path.join(dir, 'app.js'), APP);
    const srv = await startUwcore(['--http', `127.0.0.1:${port}`, '--app', 'app.js', '--check-static', 'current/public', '--static-cache-paths', '0.2'], { cwd: dir });
    try {
      assert.equal((await httpGet(port, '/v.txt')).body.toString(), 'one\n');
      if (process.getuid?.() !== 0) assert.equal((await httpGet(port, '/locked.txt')).status, 403);
      fs.symlinkSync('releases/2', path.join(dir, 'current.new'));
      fs.renameSync(path.join(dir, 'current.new'), path.join(dir, 'current'));
      await new Promise((r) => setTimeout(r, 450));
      assert.equal((await httpGet(port, '/v.txt')).body.toString(), 'two\n');
      assert.ok(isApp(await httpGet(port, '/locked.txt')), 'not in the new release');
    } finally { await srv.stop(); fs.rmSync(dir, { recursive: true, force: true }); }
  });

  it('check-static-docroot serves from the DOCUMENT_ROOT the front end sends, after the other roots', async () => {
    const dir = tmpDir('uwcore-static-docroot-');
    const port = await freePort();
    writeFile(path.join(dir, 'site-a/page.txt'), 'site a\n');
    writeFile(path.join(dir, 'site-b/page.txt'), 'site b\n');
    writeFile(path.join(dir, 'site-b-private/x.txt'), 'SECRET\n');
    fs.symlinkSync('../site-b-private/x.txt', path.join(dir, 'site-b/link'));
    writeFile(path.join(dir, 'app.js'), APP);
    // stands in for nginx's uwsgi_params: DOCUMENT_ROOT from a header (only this test plugin does that)
    writeFile(path.join(dir, 'docroot-from-header.mjs'), `export default { name: 'docroot-from-header', version: '1.0.0', sdk: '^1.0.0',
      setup(api) { api.hooks.request.tap({ name: 'docroot-from-header', stage: -100 }, (ctx) => { const d = ctx.env.HTTP_X_DOCROOT; if (d) ctx.env.DOCUMENT_ROOT = d; return undefined; }); } };\n`);
    const srv = await startUwcore(['--http', `127.0.0.1:${port}`, '--app', 'app.js', '--check-static-docroot', '--plugins', path.join(dir, 'docroot-from-header.mjs')], { cwd: dir });
    try {
      assert.equal((await httpGet(port, '/page.txt', { 'X-Docroot': path.join(dir, 'site-a') })).body.toString(), 'site a\n');
      assert.equal((await httpGet(port, '/page.txt', { 'X-Docroot': path.join(dir, 'site-b') })).body.toString(), 'site b\n');
      assert.ok(isApp(await httpGet(port, '/page.txt')), 'no DOCUMENT_ROOT: the app');
      assert.ok(isApp(await httpGet(port, '/link', { 'X-Docroot': path.join(dir, 'site-b') })), 'sibling-prefix symlink refused');
      assert.ok(isApp(await httpGet(port, '/page.txt', { 'X-Docroot': 'relative/dir' })), 'relative DOCUMENT_ROOT ignored');
    } finally { await srv.stop(); fs.rmSync(dir, { recursive: true, force: true }); }
  });

  it('a static-map without = is a usage error naming the option', async () => {
    const { runUwcore } = await import('../helpers/server.js');
    const r = await runUwcore(['--http', `127.0.0.1:${await freePort()}`, '--static-map', '/nothing']);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stdout + r.stderr, /static-map.*MOUNTPOINT=DIR/);
    const r2 = await runUwcore(['--http', `127.0.0.1:${await freePort()}`, '--check-static', '/tmp', '--mimefile', '/nonexistent/mime.types']);
    assert.equal(r2.code, 2, r2.stdout + r2.stderr);
    assert.match(r2.stdout + r2.stderr, /mimefile/);
  });
});
