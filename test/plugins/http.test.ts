// Hardening of the `http` plugin over real sockets: --http and --http-socket on its lean listener, and --http
// on the node:http fallback (UWCORE_LEAN_HTTP=0): limits (431, 414, 413), Host rules, smuggling vectors, slow
// clients, client resets, wrong-protocol diagnostics, response framing.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { freePort, httpGet, parseResponse, rawRequest, startUwcore, tmpDir, type Running } from '../helpers/server.js';
import { writeProtocolApp } from '../helpers/protocol-app.js';
import { encodePacket } from '../../plugins/uwsgi/index.js';

let srv: Running;
let port: number;

/** Every status line in a byte stream. */
function statusLines(raw: Buffer): number[] {
  return [...raw.toString('latin1').matchAll(/HTTP\/1\.[01] (\d{3}) /g)].map((m) => Number(m[1]));
}

/** Send bytes; resolve with what came back and whether the server closed the connection. */
function send(data: string | Buffer, ms = 1500): Promise<{ raw: Buffer; closed: boolean }> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let closed = false;
    const t = setTimeout(() => { s.destroy(); }, ms);
    s.on('connect', () => s.write(data));
    s.on('data', (d) => chunks.push(d));
    s.on('end', () => { closed = true; });
    s.on('error', () => { closed = true; });
    s.on('close', () => { clearTimeout(t); resolve({ raw: Buffer.concat(chunks), closed }); });
  });
}

for (const [option, lean] of [['--http', true], ['--http-socket', true], ['--http', false]] as const) describe(`http hardening (${option}${lean ? '' : ', node:http fallback'})`, () => {
  before(async () => {
    port = await freePort();
    srv = await startUwcore([option, `127.0.0.1:${port}`, '--app', writeProtocolApp(), '--buffer-size', '4k', '--limit-post', '1k', '--http-timeout', '1'], lean ? {} : { env: { UWCORE_LEAN_HTTP: '0' } });
  });
  after(async () => { await srv?.stop(); });

  test('header block over --buffer-size → 431; request line over it → 414', async () => {
    const big = await httpGet(port, '/', { 'X-Big': 'a'.repeat(5000) });
    assert.equal(big.status, 431);
    const longUrl = await httpGet(port, '/' + 'u'.repeat(5000));
    assert.equal(longUrl.status, 414);
    assert.equal((await httpGet(port, '/')).status, 200);
  });

  test('--limit-post: Content-Length over it → 413; a chunked body over it → 413; Expect: 100-continue refused before the body', async () => {
    const cl = await httpGet(port, '/body', {}, 'POST', 'x'.repeat(2000));
    assert.equal(cl.status, 413);
    const chunk = 'x'.repeat(600);
    const body = `258\r\n${chunk}\r\n258\r\n${chunk}\r\n0\r\n\r\n`;
    const ch = await httpGet(port, '/body', { 'Transfer-Encoding': 'chunked' }, 'POST', body);
    assert.equal(ch.status, 413);
    const { raw } = await send(`POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n`);
    assert.doesNotMatch(raw.toString(), /100 Continue/);
    assert.deepEqual(statusLines(raw), [413]);
    const ok = await send(`POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`);
    assert.match(ok.raw.toString(), /^HTTP\/1\.1 100 Continue\r\n\r\n/);
  });

  test('Host: missing on HTTP/1.1, duplicated or malformed → 400; HTTP/1.0 without Host is fine', async () => {
    for (const req of [
      'GET / HTTP/1.1\r\nConnection: close\r\n\r\n',
      'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n',
      'GET / HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n',
      'GET / HTTP/1.1\r\nHost: a/b\r\nConnection: close\r\n\r\n',
    ]) {
      const { raw } = await send(req);
      assert.deepEqual(statusLines(raw), [400], JSON.stringify(req));
    }
    const { raw } = await send('GET / HTTP/1.0\r\n\r\n');
    assert.deepEqual(statusLines(raw), [200]);
  });

  test('smuggling vectors: one 400 and a closed connection, never a second response', async () => {
    const vectors = [
      'POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhelloGET / HTTP/1.1\r\nHost: x\r\n\r\n',
      'POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n',
      'POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n',
      'POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n',
      'POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n',
      'POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n',
      'POST /body HTTP/1.1\r\nHost: x\r\nX-Fold: a\r\n b\r\nContent-Length: 0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n',
      'POST /body HTTP/1.1\r\nHost: x\nContent-Length: 0\r\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n',
      'POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n',
      'POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nContent-Length: 99\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n',
      'POST /body HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n',
      'GET / HTTP/2.0\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n',
    ];
    for (const v of vectors) {
      const { raw, closed } = await send(v);
      const st = statusLines(raw);
      assert.ok(st.length <= 1, `${JSON.stringify(v)} → ${st.join(',')}`);
      assert.ok(st.every((s) => s >= 400), `${JSON.stringify(v)} → ${st.join(',')}`);
      assert.ok(closed, `${JSON.stringify(v)}: connection left open`);
    }
  });

  test('a uwsgi packet on the HTTP socket: 400 and one log line suggesting --uwsgi-socket', async () => {
    const raw = await rawRequest(port, encodePacket({ REQUEST_METHOD: 'GET', PATH_INFO: '/' }));
    assert.match(raw.toString(), /^HTTP\/1\.1 400/);
    await srv.waitFor(/uwsgi packet.*--uwsgi-socket/);
  });

  test('200 connections dribbling header bytes do not delay a request; --http-timeout closes them', async () => {
    const socks: net.Socket[] = [];
    let closed = 0;
    await Promise.all(Array.from({ length: 200 }, () => new Promise<void>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.write('G'); resolve(); });
      s.on('error', () => undefined);
      s.on('close', () => closed++);
      s.resume();
      socks.push(s);
    })));
    const drip = setInterval(() => { for (const s of socks) if (!s.destroyed) s.write('E'); }, 1000);
    try {
      const t0 = performance.now();
      const r = await httpGet(port, '/');
      const ms = performance.now() - t0;
      assert.equal(r.status, 200);
      assert.ok(ms < 500, `request took ${ms} ms`);
      await new Promise((r2) => setTimeout(r2, 2600));
      assert.equal(closed, 200, 'dribbling connections closed by --http-timeout 1');
    } finally {
      clearInterval(drip);
      for (const s of socks) s.destroy();
    }
  });

  // (keep-alive listeners only: --http-socket answers one request per connection)
  if (option !== '--http-socket') test('an idle keep-alive connection closes after min(--http-timeout, 5 s); one in use stays open', async () => {
    const idle = net.connect(port, '127.0.0.1');
    const busy = net.connect(port, '127.0.0.1');
    let idleGot = '';
    let idleClosedAt = 0;
    let busyClosed = false;
    idle.on('data', (d) => { idleGot += d.toString('latin1'); });
    idle.on('close', () => { idleClosedAt = performance.now(); });
    busy.on('data', () => undefined);
    busy.on('close', () => { busyClosed = true; });
    idle.on('error', () => undefined);
    busy.on('error', () => undefined);
    await Promise.all([new Promise((r) => idle.once('connect', r)), new Promise((r) => busy.once('connect', r))]);
    idle.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    const t0 = performance.now();
    // the busy connection sends a request every 300 ms: never idle for the 1 s timeout
    const tick = setInterval(() => busy.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), 300);
    try {
      await new Promise((r) => setTimeout(r, 3000));
      assert.match(idleGot, /^HTTP\/1\.1 200 /, 'the idle connection got its response first');
      assert.ok(idleClosedAt > 0, 'the idle keep-alive connection was closed');
      const after = idleClosedAt - t0;
      assert.ok(after >= 900 && after < 2600, `closed ${Math.round(after)} ms after its response (timeout 1 s)`);
      assert.equal(busyClosed, false, 'a connection in use is not closed');
    } finally {
      clearInterval(tick);
      idle.destroy();
      busy.destroy();
    }
  });

  test('client resets mid-request and mid-response: the worker survives and leaks no descriptor', async () => {
    const fds = () => fs.readdirSync(`/proc/${srv.proc.pid}/fd`).length;
    await httpGet(port, '/');
    const before = fds();
    for (let i = 0; i < 30; i++) {
      await new Promise<void>((resolve) => {
        const s = net.connect(port, '127.0.0.1', () => {
          if (i % 2 === 0) { s.write('POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc'); setTimeout(() => s.resetAndDestroy(), 10); }
          else s.write('GET /big?100 HTTP/1.1\r\nHost: x\r\n\r\n');
        });
        s.once('data', () => s.resetAndDestroy());
        s.on('error', () => undefined);
        s.on('close', () => resolve());
      });
    }
    // a reset mid-response runs the response's close()
    const mark = path.join(tmpDir(), 'closed.txt');
    await new Promise<void>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => s.write(`GET /closing?${encodeURIComponent(mark)} HTTP/1.1\r\nHost: x\r\n\r\n`));
      s.once('data', () => s.resetAndDestroy());
      s.on('error', () => undefined);
      s.on('close', () => resolve());
    });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(fs.readFileSync(mark, 'utf8'), 'closed\n');
    assert.equal((await httpGet(port, '/')).status, 200);
    assert.ok(fds() <= before + 2, `descriptors: ${before} before, ${fds()} after`);
  });

  test('framing: streamed responses chunked on HTTP/1.1 and close-delimited on HTTP/1.0; HEAD has no body; a chunked upload is de-chunked', async () => {
    const r11 = await send('GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 3000);
    const t11 = r11.raw.toString('latin1');
    assert.match(t11, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(t11, /\r\nTransfer-Encoding: chunked\r\n/i);
    assert.match(t11, /\r\nDate: [A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT\r\n/);
    assert.ok(t11.endsWith('\r\n8\r\nchunk 4\n\r\n0\r\n\r\n'), JSON.stringify(t11.slice(-60)));
    assert.equal(parseResponse(r11.raw).body.toString(), 'chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n');
    const r10 = (await send('GET /stream HTTP/1.0\r\n\r\n', 3000)).raw.toString('latin1');
    assert.doesNotMatch(r10, /Transfer-Encoding|Content-Length/i);
    assert.ok(r10.endsWith('\r\n\r\nchunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n'), JSON.stringify(r10));
    const head = await send('HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.match(head.raw.toString(), /^HTTP\/1\.1 200 OK\r\n[^]*Content-Length: 11\r\n[^]*\r\n\r\n$/);
    const up = await send('POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n');
    assert.match(parseResponse(up.raw).body.toString(), /^11 [0-9a-f]{64} no-content-length$/);
  });

  test('CONNECT gets 405; GET * gets 400', async () => {
    assert.deepEqual(statusLines((await send('CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n')).raw), [405]);
    assert.deepEqual(statusLines((await send('GET * HTTP/1.1\r\nHost: x\r\n\r\n')).raw), [400]);
    const r = parseResponse((await send('OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).raw);
    assert.equal(r.status, 200);
  });
});
