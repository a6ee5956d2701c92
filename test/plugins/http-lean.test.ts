// The lean HTTP listener (plugins/http/lean.ts) under attack and under awkward clients, over real sockets:
// half-closed clients, slow readers, clients that never read, resets in the middle of synchronous streams,
// early answers before the body, pipelining behind slow responses, 1xx/204/304/HEAD framing, Expect behind a
// queued request, a throwing body listener inside the parser, graceful stop while responses flush.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { freePort, startUwcore, tmpDir, writeFile, type Running } from '../helpers/server.js';

const APP = `
import fs from 'node:fs';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export function application(env, start_response) {
  const p = env.PATH_INFO;
  const q = env.QUERY_STRING;
  if (p === '/slow') return (async () => { await sleep(Number(q)); start_response('200 OK', [['Content-Type', 'text/plain']]); return ['slow ' + q]; })();
  if (p === '/early') { start_response('200 OK', [['Content-Type', 'text/plain']]); return ['early']; }
  if (p === '/big') { start_response('200 OK', [['Content-Type', 'application/octet-stream']]); return [Buffer.alloc(Number(q) * 1048576, 120)]; }
  if (p === '/forever') {
    // an endless synchronous stream whose close() leaves a mark
    const file = decodeURIComponent(q);
    const block = Buffer.alloc(16384, 120);
    start_response('200 OK', [['Content-Type', 'application/octet-stream']]);
    return { *[Symbol.iterator]() { for (;;) yield block; }, close() { fs.appendFileSync(file, 'closed\\n'); } };
  }
  if (p === '/status') { const [code, body] = q.split(','); start_response(code + ' Whatever', [['Content-Type', 'text/plain']]); return [body ?? '']; }
  if (p === '/te') { start_response('200 OK', [['Transfer-Encoding', decodeURIComponent(q)]]); return (function* () { yield 'abc'; yield 'def'; })(); }
  if (p === '/gen') { start_response('200 OK', [['Content-Type', 'text/plain']]); return (function* () { yield 'gen'; })(); }
  if (p === '/mark') { fs.appendFileSync(decodeURIComponent(q), 'served\\n'); start_response('200 OK', [['Content-Length', '4']]); return ['mark']; }
  start_response('200 OK', [['Content-Type', 'text/plain'], ['Content-Length', '5']]);
  return ['hello'];
}
`;

// a plugin whose request hook listens to the body stream with a listener that throws: the throw happens inside
// the parser's callback (the body arrives while llhttp executes)
const PLUGIN = `
export default {
  name: 'body-thrower', version: '1.0.0', sdk: '^1.0.0', description: 'test: a throwing body listener',
  setup(api) {
    api.hooks.request.tap('body-thrower', (ctx) => {
      if (ctx.env.HTTP_X_THROW === '1') ctx.body.on('data', () => { throw new Error('thrown by a data listener'); });
    });
  },
};
`;

let srv: Running;
let port: number;
let dir: string;

function statusLines(raw: string): number[] {
  return [...raw.matchAll(/HTTP\/1\.[01] (\d{3}) /g)].map((m) => Number(m[1]));
}

interface Conn { s: net.Socket; data(): string; closed(): boolean; wait(re: RegExp, ms?: number): Promise<void>; done: Promise<void> }

function connect(p = port): Promise<Conn> {
  return new Promise((resolve) => {
    const s = net.connect(p, '127.0.0.1');
    let buf = '';
    let closed = false;
    const waiters: Array<() => void> = [];
    const done = new Promise<void>((r) => s.on('close', () => { closed = true; r(); for (const w of waiters) w(); }));
    // (only the first MiB is kept: some downloads here are large)
    s.on('data', (d) => { if (buf.length < 1 << 20) buf += d.toString('latin1'); for (const w of waiters) w(); });
    s.on('error', () => undefined);
    const c: Conn = {
      s, done, data: () => buf, closed: () => closed,
      wait: (re, ms = 3000) => new Promise((res, rej) => {
        const check = () => { if (re.test(buf)) { res(); return true; } if (closed) { rej(new Error(`closed before ${re}: ${JSON.stringify(buf.slice(0, 300))}`)); return true; } return false; };
        if (check()) return;
        const t = setTimeout(() => rej(new Error(`timed out waiting for ${re}: ${JSON.stringify(buf.slice(0, 300))}`)), ms);
        waiters.push(() => { if (check()) clearTimeout(t); });
      }),
    };
    s.on('connect', () => resolve(c));
  });
}

/** Send, then collect until the server closes or `ms` pass. */
async function exchange(data: string, ms = 1500, p = port): Promise<{ raw: string; closed: boolean }> {
  const c = await connect(p);
  c.s.write(data);
  await Promise.race([c.done, new Promise((r) => setTimeout(r, ms))]);
  const closed = c.closed();
  c.s.destroy();
  return { raw: c.data(), closed };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const rssMb = (pid: number) => Number(fs.readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]) * 4096 / 1048576;

const BIG_HEAD = /^HTTP\/1\.1 200 OK\r\n[^]*?Content-Length: (\d+)\r\n[^]*?\r\n\r\n/;

/** Read one Content-Length response, slowly (a pause after every read); resolves '' once it all came, else
 *  how many bytes came before the connection closed. */
function download(c: Conn, pause: number | (() => number)): Promise<string> {
  let n = 0;
  let head = '';
  return new Promise((resolve) => {
    c.s.on('data', (d) => {
      n += d.length;
      if (head.length < 400) head += d.toString('latin1', 0, 400);
      const m = BIG_HEAD.exec(head);
      if (m && n >= m[0].length + Number(m[1])) { resolve(n === m[0].length + Number(m[1]) ? '' : `${n} bytes, too many`); return; }
      const ms = typeof pause === 'number' ? pause : pause();
      if (ms > 0) { c.s.pause(); setTimeout(() => c.s.resume(), ms); }
    });
    void c.done.then(() => resolve(`closed after ${n} bytes`));
  });
}

describe('lean HTTP listener (--http)', () => {
  before(async () => {
    port = await freePort();
    dir = tmpDir();
    writeFile(path.join(dir, 'package.json'), '{"type":"module"}');
    const app = writeFile(path.join(dir, 'app.mjs'), APP);
    // (no plugin here: with a request hook the core dispatches asynchronously, which hides ordering bugs)
    srv = await startUwcore(['--http', `127.0.0.1:${port}`, '--app', app, '--http-timeout', '1', '--disable-logging'], { cwd: dir });
  });
  after(async () => { await srv?.stop(); });

  test('a client that half-closes after its request gets the whole response', async () => {
    for (const pause of [0, 5]) {
      const c = await connect();
      const whole = download(c, pause);
      c.s.end('GET /big?8 HTTP/1.1\r\nHost: x\r\n\r\n');
      assert.equal(await whole, '', `pause ${pause}`);
      await c.done;
    }
  });

  test('a keep-alive response still flushing to a slow reader is not closed as idle', async () => {
    const c = await connect();
    c.s.write('GET /big?8 HTTP/1.1\r\nHost: x\r\n\r\n');
    const t0 = performance.now();
    // 8 MiB at ~64 KiB per 25 ms: ~3 s, three times the idle timeout (min(1 s, 5 s))
    assert.equal(await download(c, 25), '');
    assert.ok(performance.now() - t0 > 1500, 'the download was slow');
    assert.ok(!c.closed(), 'open after the response');
    c.s.destroy();
  });

  test('a client that pipelines requests and never reads: reading stops, memory stays bounded', async () => {
    const pid = srv.proc.pid!;
    const before = rssMb(pid);
    const c = await connect();
    c.s.pause();
    const block = Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(2000));
    let sent = 0;
    let stop = false;
    const pump = () => { while (!stop) { sent++; if (!c.s.write(block)) { c.s.once('drain', pump); return; } } };
    pump();
    await sleep(3000);
    stop = true;
    const grown = rssMb(pid) - before;
    c.s.destroy();
    assert.ok(grown < 80, `worker grew ${Math.round(grown)} MB while ${sent * 2000} requests were offered`);
    assert.equal(statusLines((await exchange('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).raw)[0], 200);
  });

  test('a reset in the middle of an endless synchronous stream: close() runs, the worker does not spin', async () => {
    const mark = path.join(tmpDir(), 'closed.txt');
    for (let i = 0; i < 15; i++) {
      const c = await connect();
      let n = 0;
      c.s.on('data', (d) => { n += d.length; if (n > 1 << 20) c.s.resetAndDestroy(); });
      c.s.write(`GET /forever?${encodeURIComponent(mark)} HTTP/1.1\r\nHost: x\r\n\r\n`);
      await c.done;
    }
    const t0 = performance.now();
    const r = await exchange('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 3000);
    assert.deepEqual(statusLines(r.raw), [200]);
    assert.ok(performance.now() - t0 < 1000);
    await sleep(200);
    assert.equal(fs.readFileSync(mark, 'utf8'), 'closed\n'.repeat(15));
  });

  test('pipelined behind a slow response: answers in order, a refusal last, then close', async () => {
    const r = await exchange('GET /slow?300 HTTP/1.1\r\nHost: x\r\n\r\nGET /slow?10 HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n', 2000);
    assert.deepEqual(statusLines(r.raw), [200, 200, 200, 400]);
    assert.match(r.raw, /slow 300[^]*slow 10[^]*hello/);
    assert.ok(r.closed);
  });

  test('answered before its body: the rest of the body (Content-Length or chunked) is dropped, never parsed', async () => {
    const fake = 'GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n';
    const c = await connect();
    c.s.write(`POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: ${fake.length * 3}\r\n\r\n`);
    await c.wait(/early$/);
    c.s.write(fake.repeat(3) + 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await c.wait(/hello$/);
    const chunk = fake.repeat(2);
    c.s.write(`POST /early HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n`);
    await c.wait(/early[^]*hello[^]*early$/);
    c.s.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    await c.done;
    assert.deepEqual(statusLines(c.data()), [200, 200, 200, 200]);
    assert.doesNotMatch(c.data(), /smuggled|404/);
  });

  test('a final 1xx from the application, or a Transfer-Encoding without chunked, ends the connection', async () => {
    for (const target of ['/status?101', '/status?100', '/te?gzip']) {
      const r = await exchange(`GET ${target} HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n`);
      assert.equal(statusLines(r.raw).length, 1, `${target}: ${JSON.stringify(r.raw)}`);
      assert.ok(r.closed, `${target}: left open`);
    }
  });

  test('HEAD, 204 and 304 with a body from the application: no body on the wire, the next response is intact', async () => {
    const r = await exchange('HEAD /gen HTTP/1.1\r\nHost: x\r\n\r\nGET /status?204,body HTTP/1.1\r\nHost: x\r\n\r\nGET /status?304,body HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.deepEqual(statusLines(r.raw), [200, 204, 304, 200]);
    const parts = r.raw.split(/(?=HTTP\/1\.1 )/);
    assert.equal(parts.length, 4);
    for (const part of parts.slice(0, 3)) assert.ok(part.endsWith('\r\n\r\n'), JSON.stringify(part));
    assert.doesNotMatch(parts[0]!, /Transfer-Encoding/);
    assert.ok(parts[3]!.endsWith('\r\n\r\nhello'));
  });

  test('HTTP/1.0 keep-alive with a close-delimited answer: the requests behind it are not run', async () => {
    const mark = path.join(tmpDir(), 'mark.txt');
    const r = await exchange(`GET /slow?200 HTTP/1.1\r\nHost: x\r\n\r\nGET /gen HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /mark?${encodeURIComponent(mark)} HTTP/1.1\r\nHost: x\r\n\r\n`);
    assert.deepEqual(statusLines(r.raw), [200, 200]);
    assert.ok(r.raw.endsWith('\r\n\r\ngen'), JSON.stringify(r.raw));
    assert.ok(r.closed);
    await sleep(100);
    assert.equal(fs.existsSync(mark), false, 'the request after the connection ended was run');
  });

  test('Expect: 100-continue queued behind a slow response (longer than --http-timeout) gets its turn', async () => {
    const c = await connect();
    c.s.write('GET /slow?1600 HTTP/1.1\r\nHost: x\r\n\r\nPOST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n');
    await c.wait(/slow 1600HTTP\/1\.1 100 Continue\r\n\r\n/, 4000);
    c.s.write('hello');
    await c.wait(/early$/);
    assert.deepEqual(statusLines(c.data()), [200, 100, 200]);
    c.s.destroy();
  });
});

describe('lean HTTP listener (--http-socket)', () => {
  let s2: Running;
  let p2: number;
  before(async () => {
    p2 = await freePort();
    const d = tmpDir();
    const app = writeFile(path.join(d, 'app.mjs'), APP);
    s2 = await startUwcore(['--http-socket', `127.0.0.1:${p2}`, '--app', app, '--http-timeout', '1', '--buffer-size', '65535', '--disable-logging'], { cwd: d });
  });
  after(async () => { await s2?.stop(); });

  test('pipelined requests on a one-request socket: one answer, the others are never run', async () => {
    const mark = path.join(tmpDir(), 'mark.txt');
    const c = await connect(p2);
    c.s.write(`GET /slow?100 HTTP/1.1\r\nHost: x\r\n\r\n${`GET /mark?${encodeURIComponent(mark)} HTTP/1.1\r\nHost: x\r\n\r\n`.repeat(5)}`);
    await Promise.race([c.done, sleep(2000)]);
    assert.deepEqual(statusLines(c.data()), [200]);
    assert.ok(c.closed());
    assert.equal(fs.existsSync(mark), false);
  });

  test('more than 2000 header fields (within --buffer-size): 431, not a quadratic merge', async () => {
    const fields = (n: number) => Array.from({ length: n }, (_, i) => `a${i % 10}:b\r\n`).join('');
    assert.deepEqual(statusLines((await exchange(`GET / HTTP/1.1\r\nHost: x\r\n${fields(12000)}\r\n`, 1500, p2)).raw), [431]);
    assert.deepEqual(statusLines((await exchange(`GET / HTTP/1.1\r\nHost: x\r\n${fields(2001)}\r\n`, 1500, p2)).raw), [431]);
    const ok = await exchange(`GET /gen HTTP/1.1\r\nHost: x\r\n${fields(1990)}\r\n`, 1500, p2);
    assert.deepEqual(statusLines(ok.raw), [200]);
  });
});

test('SIGTERM while a finished response still flushes to a slow reader: the reader gets it all', async () => {
  const p = await freePort();
  const d = tmpDir();
  const app = writeFile(path.join(d, 'app.mjs'), APP);
  const s = await startUwcore(['--http', `127.0.0.1:${p}`, '--app', app, '--disable-logging'], { cwd: d });
  try {
    const c = await connect(p);
    c.s.write('GET /big?32 HTTP/1.1\r\nHost: x\r\n\r\n');
    // slow for 800 ms (most of the 32 MiB waits in the worker's socket when the stop begins), then fast
    const t0 = performance.now();
    const whole = download(c, () => (performance.now() - t0 < 800 ? 50 : 0));
    await c.wait(/^HTTP\/1\.1 200 /);
    await sleep(100);
    const stopped = s.stop();
    assert.equal(await whole, '');
    c.s.destroy();
    await stopped;
  } finally {
    await s.stop();
  }
});

test('a body listener that throws inside the parser: that connection closes, the worker lives on', async () => {
  const p = await freePort();
  const d = tmpDir();
  const app = writeFile(path.join(d, 'app.mjs'), APP);
  const plugin = writeFile(path.join(d, 'body-thrower.mjs'), PLUGIN);
  const s = await startUwcore(['--plugins', plugin, '--http', `127.0.0.1:${p}`, '--app', app, '--disable-logging'], { cwd: d });
  try {
    const c = await connect(p);
    // (the application sleeps without reading: the body arrives while the listener is attached)
    c.s.write('POST /slow?500 HTTP/1.1\r\nHost: x\r\nX-Throw: 1\r\nContent-Length: 10\r\n\r\n');
    await sleep(100);
    c.s.write('0123456789');
    await Promise.race([c.done, sleep(2000)]);
    assert.ok(c.closed(), 'closed');
    assert.equal(s.proc.exitCode, null, 'the worker is alive');
    assert.deepEqual(statusLines((await exchange('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 1500, p)).raw), [200]);
  } finally {
    await s.stop();
  }
});
