// How uwsgi TCP sockets accept: TCP_DEFER_ACCEPT (uWSGI's default) and, with the native helper, the native
// acceptor (sdk/socket): connections answered during their first call never become libuv handles. Checked
// end to end through the real CLI: a master with two workers (both serve, a killed worker is replaced and
// serves, a reload loses nothing), requests that need more than the first read (a body in pieces, a slow
// app, a large response), a silent connection, and --no-defer-accept.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { BIN, freePort, parseResponse, startUwcore, tmpDir, writeFile, type Running } from '../helpers/server.js';
import { encodePacket } from '../../plugins/uwsgi/index.js';
import { nativeSockets } from '../../sdk/socket.js';

const APP = `
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export async function application(env, start_response) {
  if (env.PATH_INFO === '/slow') await sleep(50);
  if (env.PATH_INFO === '/body') {
    const b = await env['wsgi.input'].read();
    start_response('200 OK', [['Content-Type', 'text/plain']]);
    return ['body ' + b.length];
  }
  if (env.PATH_INFO === '/big') {
    start_response('200 OK', [['Content-Type', 'application/octet-stream']]);
    return [Buffer.alloc(8 << 20, 97)];
  }
  start_response('200 OK', [['Content-Type', 'text/plain']]);
  return ['pid ' + process.pid];
}
`;

const vars = (p: string, extra: Record<string, string> = {}) => ({ REQUEST_METHOD: 'GET', PATH_INFO: p, SERVER_PROTOCOL: 'HTTP/1.1', HTTP_HOST: 'localhost', ...extra });

/** one request on a new connection; the whole answer (the server closes) */
function ask(port: number, pieces: Buffer[], gapMs = 0): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    const parts: Buffer[] = [];
    const t = setTimeout(() => { s.destroy(); reject(new Error('no answer in 10 s')); }, 10_000);
    s.on('connect', async () => {
      for (const p of pieces) { s.write(p); if (gapMs) await new Promise((r) => setTimeout(r, gapMs)); }
    });
    s.on('data', (d: Buffer) => parts.push(d));
    s.on('error', reject);
    s.on('close', () => { clearTimeout(t); resolve(Buffer.concat(parts)); });
  });
}

async function many(port: number, n: number, concurrency = 16): Promise<Map<string, number>> {
  const bodies = new Map<string, number>();
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next++ < n) {
      const r = parseResponse(await ask(port, [encodePacket(vars('/'))]));
      assert.equal(r.status, 200);
      const b = r.body.toString();
      bodies.set(b, (bodies.get(b) ?? 0) + 1);
    }
  }));
  return bodies;
}

let dir: string;
let app: string;
let srv: Running;
let port: number;

before(async () => {
  dir = tmpDir();
  app = writeFile(path.join(dir, 'app.mjs'), APP);
  port = await freePort();
  srv = await startUwcore(['--uwsgi-socket', `127.0.0.1:${port}`, '--app', app, '--master', '--processes', '2', '--socket-timeout', '2']);
});
after(async () => { await srv?.stop(); });

test('uwsgi accept: each worker says how it accepts: deferred, native (npm install built the helper on this machine)', () => {
  const lines = srv.logs().filter((l) => /^uwsgi socket /.test(String(l.msg)));
  assert.equal(lines.length, 2, srv.output());
  // on Linux `npm install` builds the helper; UWCORE_NATIVE=0 runs these tests on the libuv path instead
  if (process.platform === 'linux' && process.env.UWCORE_NATIVE !== '0') assert.equal(nativeSockets, true);
  for (const l of lines) {
    assert.equal(l.msg, nativeSockets ? `uwsgi socket 127.0.0.1:${port}: deferred accept (TCP_DEFER_ACCEPT 2 s), native accept`
      : `uwsgi socket 127.0.0.1:${port}: accept through libuv (the native helper is not built or UWCORE_NATIVE=0)`);
    assert.equal(l.nativeAccept, nativeSockets);
  }
});

test('uwsgi accept: 600 requests over new connections, answered by both workers; a worker killed with SIGKILL is replaced and serves', async () => {
  const first = await many(port, 600);
  const pids = [...first.keys()];
  assert.equal([...first.values()].reduce((a, b) => a + b, 0), 600);
  assert.equal(pids.length, 2, `both workers answered: ${JSON.stringify([...first])}`);
  const victim = Number(pids[0]!.split(' ')[1]);
  process.kill(victim, 'SIGKILL');
  await srv.waitFor(/respawn|spawned/i, 10_000);
  await new Promise((r) => setTimeout(r, 500));
  const second = await many(port, 400);
  assert.equal([...second.values()].reduce((a, b) => a + b, 0), 400);
  assert.ok(![...second.keys()].includes(pids[0]!), 'the killed worker answers no more');
  assert.equal(second.size, 2, `the replacement serves too: ${JSON.stringify([...second])}`);
});

test('uwsgi accept: requests that need more than the first read: a body in pieces, a slow app, an 8 MiB answer, all while others are answered at once', async () => {
  const body = Buffer.alloc(300_000, 98);
  const pkt = Buffer.concat([encodePacket(vars('/body', { CONTENT_LENGTH: String(body.length) })), body]);
  const pieces = [pkt.subarray(0, 10), pkt.subarray(10, 5000), pkt.subarray(5000)];
  const [b, slow, big, quick] = await Promise.all([
    ask(port, pieces, 30),
    ask(port, [encodePacket(vars('/slow'))]),
    ask(port, [encodePacket(vars('/big'))]),
    many(port, 100),
  ]);
  assert.equal(parseResponse(b).body.toString(), 'body 300000');
  assert.match(parseResponse(slow).body.toString(), /^pid \d+$/);
  const r = parseResponse(big);
  assert.equal(r.status, 200);
  assert.equal(r.body.length, 8 << 20);
  assert.ok(r.body.every((x) => x === 97));
  assert.equal([...quick.values()].reduce((a, c) => a + c, 0), 100);
});

test('uwsgi accept: a connection silent for a while (held back by TCP_DEFER_ACCEPT) is answered once it speaks, others meanwhile', async () => {
  const s = net.connect(port, '127.0.0.1');
  await new Promise((r) => s.once('connect', r));
  const parts: Buffer[] = [];
  s.on('data', (d: Buffer) => parts.push(d));
  const closed = new Promise((r) => s.on('close', r));
  // meanwhile the workers serve others
  assert.equal([...(await many(port, 50)).values()].reduce((a, c) => a + c, 0), 50);
  await new Promise((r) => setTimeout(r, 300));
  s.write(encodePacket(vars('/')));
  await closed;
  assert.match(parseResponse(Buffer.concat(parts)).body.toString(), /^pid \d+$/);
});

test('uwsgi accept: a reload (SIGHUP) loses no request on the native acceptor', async () => {
  let stop = false;
  let served = 0;
  const load = (async () => { while (!stop) { await many(port, 20, 4); served += 20; } })();
  await new Promise((r) => setTimeout(r, 200));
  srv.proc.kill('SIGHUP');
  await srv.waitFor(/reload|respawn|spawned/i, 10_000);
  await new Promise((r) => setTimeout(r, 1500));
  stop = true;
  await load; // many() asserts every answer is a 200
  assert.ok(served >= 40, `served ${served} during the reload`);
});

test('uwsgi accept: --no-defer-accept serves the same (connections through libuv)', async () => {
  const p2 = await freePort();
  const s2 = await startUwcore(['--uwsgi-socket', `127.0.0.1:${p2}`, '--app', app, '--no-defer-accept']);
  try {
    assert.ok(s2.logs().some((l) => l.msg === `uwsgi socket 127.0.0.1:${p2}: accept through libuv (--no-defer-accept)`), s2.output());
    const r = await many(p2, 200);
    assert.equal([...r.values()].reduce((a, c) => a + c, 0), 200);
    const body = Buffer.alloc(100_000, 99);
    const b = await ask(p2, [encodePacket(vars('/body', { CONTENT_LENGTH: String(body.length) })), body]);
    assert.equal(parseResponse(b).body.toString(), 'body 100000');
  } finally {
    await s2.stop();
  }
});

test('uwsgi accept: out of descriptors (EMFILE), accepting pauses without dropping anyone, logs once, and resumes', { skip: !nativeSockets && 'the native acceptor is not built (libuv drops connections on EMFILE instead)' }, async () => {
  const p3 = await freePort();
  // a worker limited to 100 descriptors; 110 clients hold half-sent packets open
  const proc = spawn('sh', ['-c', `ulimit -n 100 && exec "${process.execPath}" "${BIN}" --uwsgi-socket 127.0.0.1:${p3} --app "${app}" --socket-timeout 30`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => { out += d; });
  proc.stderr!.on('data', (d: Buffer) => { out += d; });
  const exited = new Promise((r) => proc.on('exit', r));
  try {
    for (let i = 0; i < 100 && !/uwcore is ready/.test(out); i++) await new Promise((r) => setTimeout(r, 50));
    assert.match(out, /uwcore is ready/);
    const held: net.Socket[] = [];
    for (let i = 0; i < 110; i++) {
      const c = net.connect(p3, '127.0.0.1', () => c.write(encodePacket(vars('/')).subarray(0, 10)));
      c.on('error', () => undefined);
      held.push(c);
    }
    await new Promise((r) => setTimeout(r, 800));
    const waiting = ask(p3, [encodePacket(vars('/'))]);
    await new Promise((r) => setTimeout(r, 600));
    for (const c of held) c.destroy();
    assert.match(parseResponse(await waiting).body.toString(), /^pid \d+$/);
    assert.equal([...(await many(p3, 100)).values()].reduce((a, c) => a + c, 0), 100);
    const emfile = out.split('\n').filter((l) => l.includes('accept EMFILE'));
    assert.equal(emfile.length, 1, out.slice(-2000));
  } finally {
    proc.kill('SIGTERM');
    await exited;
  }
});
