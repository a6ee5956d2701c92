// Every example of the seed article, run from a copy of its examples/ folder with the ports rewritten to
// free ones: the JavaScript twin of each Python app with the same ini file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { freePort, httpGet, rawRequest, ROOT, startUwcore, tmpDir, writeFile } from '../helpers/server.js';
import { startNginx } from '../helpers/nginx.js';

async function copyExample(name: string): Promise<{ dir: string; ports: Record<string, number> }> {
  const dir = tmpDir(`uwcore-ex-${name}-`);
  fs.cpSync(path.join(ROOT, 'examples', name), dir, { recursive: true });
  const ports: Record<string, number> = {};
  for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.ini'))) {
    let text = fs.readFileSync(path.join(dir, f), 'utf8');
    for (const p of ['8000', '8087']) {
      if (text.includes(p)) { ports[p] ??= await freePort(); text = text.replaceAll(`:${p}`, `127.0.0.1:${ports[p]}`).replace(new RegExp(`= ${p}$`, 'm'), `= ${ports[p]}`); }
    }
    fs.writeFileSync(path.join(dir, f), text);
  }
  return { dir, ports };
}

test('hello: the seed\'s ini (http = 8000 is a TCP port)', async () => {
  const { dir, ports } = await copyExample('hello');
  const s = await startUwcore(['./uwsgi-config.ini'], { cwd: dir });
  try {
    const r = await httpGet(ports['8000']!, '/');
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-length'], '11');
    assert.equal(r.body.toString(), 'Hello World');
  } finally { await s.stop(); }
});

test('chunked input: a 25 MB chunked upload is written with the same sha256', async () => {
  const { dir, ports } = await copyExample('chunked-input');
  const s = await startUwcore(['uwsgi.ini'], { cwd: dir });
  try {
    const body = crypto.randomBytes(25 * 1024 * 1024);
    const chunks: Buffer[] = [];
    for (let off = 0; off < body.length; off += 1 << 20) {
      const c = body.subarray(off, off + (1 << 20));
      chunks.push(Buffer.from(c.length.toString(16) + '\r\n'), c, Buffer.from('\r\n'));
    }
    chunks.push(Buffer.from('0\r\n\r\n'));
    const head = Buffer.from(`POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nContent-Type: application/x-www-form-urlencoded\r\nConnection: close\r\n\r\n`);
    const raw = (await rawRequest(ports['8000']!, Buffer.concat([head, ...chunks]), { idleMs: 10_000 })).toString();
    assert.match(raw, /^HTTP\/1\.1 200 OK/);
    assert.match(raw, /Hello World\n$/);
    const written = fs.readFileSync(path.join(dir, 'test.json'));
    assert.equal(crypto.createHash('sha256').update(written).digest('hex'), crypto.createHash('sha256').update(body).digest('hex'));
  } finally { await s.stop(); }
});

test('chunked output: route-run = chunked: + last: gives exactly the seed\'s bytes', async () => {
  const { dir, ports } = await copyExample('chunked-output');
  const s = await startUwcore(['uwsgi.ini'], { cwd: dir });
  try {
    const raw = (await rawRequest(ports['8000']!, 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n')).toString();
    assert.match(raw, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(raw, /\r\nTransfer-Encoding: chunked\r\n/i);
    assert.doesNotMatch(raw, /Content-Length/i);
    assert.ok(raw.endsWith('\r\n\r\n7\r\nline 1\n\r\n7\r\nline 2\n\r\n0\r\n\r\n'), JSON.stringify(raw));
  } finally { await s.stop(); }
});

test('range: a static 25 MB file answers bytes 1200-1299 with 206', async () => {
  const { dir, ports } = await copyExample('range');
  const big = crypto.randomBytes(25 * 1024 * 1024);
  fs.writeFileSync(path.join(dir, 'static', 'large-file.json'), big);
  const s = await startUwcore(['uwsgi.ini'], { cwd: dir });
  try {
    const r = await httpGet(ports['8000']!, '/large-file.json', { Range: 'bytes=1200-1299' });
    assert.equal(r.status, 206);
    assert.equal(r.headers['content-type'], 'application/json');
    assert.equal(r.headers['content-length'], '100');
    assert.equal(r.headers['content-range'], `bytes 1200-1299/${big.length}`);
    assert.ok(r.headers['last-modified']);
    assert.deepEqual(r.body, big.subarray(1200, 1300));
    const app = await httpGet(ports['8000']!, '/not-a-file', { Range: 'bytes=0-9' });
    assert.equal(app.status, 200, 'paths that are not files fall through to the app');
    assert.deepEqual(app.body, big.subarray(0, 10));
  } finally { await s.stop(); }
});

test('cache and uwsgi protocol: Hello World directly and through nginx', async () => {
  const { dir, ports } = await copyExample('cache');
  const s = await startUwcore(['uwsgi.ini'], { cwd: dir });
  const nginx = await startNginx({ '/': `127.0.0.1:${ports['8087']}` });
  try {
    assert.equal((await httpGet(ports['8000']!, '/')).body.toString(), 'Hello World');
    const r = await httpGet(nginx.port, '/');
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), 'Hello World');
    assert.match(r.headers.server ?? '', /nginx/);
  } finally { await nginx.stop(); await s.stop(); }
});

test('spooler: every request logs "Send email to someone@no.spam" from the spooler', async () => {
  const { dir, ports } = await copyExample('spooler');
  const s = await startUwcore(['uwsgi.ini'], { cwd: dir });
  try {
    assert.equal((await httpGet(ports['8000']!, '/')).body.toString(), 'Hello World');
    await s.waitFor(/Send email to someone@no\.spam/, 10_000);
  } finally { await s.stop(); }
});

test('static files through nginx uwsgi_pass: Range, 304 and traversal behave the same as over HTTP', async () => {
  const { dir } = await copyExample('range');
  const big = crypto.randomBytes(2 * 1024 * 1024);
  fs.writeFileSync(path.join(dir, 'static', 'large-file.json'), big);
  const up = await freePort();
  const s = await startUwcore(['--uwsgi-socket', `127.0.0.1:${up}`, '--check-static', path.join(dir, 'static'), '--app', path.join(dir, 'wsgi_range.js')]);
  const nginx = await startNginx({ '/': `127.0.0.1:${up}` });
  try {
    const r = await httpGet(nginx.port, '/large-file.json', { Range: 'bytes=1200-1299' });
    assert.equal(r.status, 206, r.raw.toString('latin1').slice(0, 300));
    assert.equal(r.headers['content-range'], `bytes 1200-1299/${big.length}`);
    assert.deepEqual(r.body, big.subarray(1200, 1300));
    const whole = await httpGet(nginx.port, '/large-file.json');
    assert.equal(whole.status, 200);
    assert.equal(whole.body.length, big.length);
    const etag = whole.headers.etag!;
    assert.ok(etag);
    assert.equal((await httpGet(nginx.port, '/large-file.json', { 'If-None-Match': etag })).status, 304);
    const out = await httpGet(nginx.port, '/%2e%2e/%2e%2e/etc/passwd', { Range: 'bytes=0-9' });
    assert.doesNotMatch(out.body.toString(), /root:/);
  } finally { await nginx.stop(); await s.stop(); }
});
