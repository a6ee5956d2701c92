// --threads: worker_threads running their own copy of the app; --harakiri kills a stuck thread.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { freePort, runUwcore, startUwcore, tmpDir } from '../helpers/server.js';
import { APP, FIXTURES, req } from './process-util.js';

async function twoBlocking(threads: number): Promise<{ ms: number; bodies: Array<Record<string, unknown>> }> {
  const port = await freePort();
  const s = await startUwcore(['--http', `127.0.0.1:${port}`, '--app', APP, '--master', '--processes', '1', '--threads', String(threads), '--disable-logging']);
  try {
    await req(port, '/');
    const t0 = performance.now();
    const rs = await Promise.all([req(port, '/block?ms=1000'), req(port, '/block?ms=1000')]);
    const ms = performance.now() - t0;
    for (const r of rs) assert.equal(r.status, 200);
    return { ms, bodies: rs.map((r) => JSON.parse(r.body) as Record<string, unknown>) };
  } finally { await s.stop(); }
}

test('processes 1 x threads 2 serves two blocking requests at once; threads 1 one after the other', async () => {
  const [two, one] = await Promise.all([twoBlocking(2), twoBlocking(1)]);
  assert.ok(two.ms < 1700, `two threads took ${two.ms} ms`);
  assert.ok(one.ms >= 1900, `one thread took ${one.ms} ms`);
  assert.deepEqual(two.bodies.map((b) => b.core).sort(), [1, 2]);
  for (const b of two.bodies) { assert.equal(b.worker, 1); assert.equal(b.runtimeId, 1, 'import from uwcore works in a thread'); }
  assert.deepEqual(one.bodies.map((b) => b.core), [0, 0]);
});

test('threads carry bodies, streams, errors, HEAD and the access log; single process too', async () => {
  const port = await freePort();
  const s = await startUwcore(['--http', `127.0.0.1:${port}`, '--app', APP, '--threads', '2', '--add-header', 'X-Extra: 1']);
  try {
    const body = Buffer.alloc(300_000, 'x').toString();
    const p = await req(port, '/post', { method: 'POST', body });
    assert.equal(p.status, 200);
    assert.equal(p.body.length, body.length);
    const st = await req(port, '/stream?n=500&size=4096');
    assert.equal(st.status, 200);
    assert.equal(st.body.length, 500 * 4096);
    assert.equal(st.headers['x-extra'], '1', '--add-header applies once, in the main thread');
    assert.equal(st.headers['transfer-encoding'], 'chunked');
    const h = await req(port, '/');
    assert.equal(h.headers['content-length'], String(h.body.length));
    const e = await req(port, '/throw');
    assert.equal(e.status, 500);
    const head = await req(port, '/', { method: 'HEAD' });
    assert.equal(head.status, 200);
    await s.waitFor(/GET \/throw => 500/);
    assert.match(s.output(), /request failed: boom/);
    assert.equal(s.logs().filter((l) => l.msg === 'GET /stream?n=500&size=4096 => 200').length, 1);
  } finally { await s.stop(); }
});

test('a plugin rpc from an application thread reaches the master', async () => {
  const port = await freePort();
  const s = await startUwcore(['--http', `127.0.0.1:${port}`, '--plugins', path.join(FIXTURES, 'probe-plugin.js'), '--app', path.join(FIXTURES, 'rpc-app.js'), '--master', '--threads', '2']);
  try {
    const r = await req(port, '/x');
    assert.equal(r.status, 200);
    const b = JSON.parse(r.body) as { pong: string; master: number; from: { workerId: number }; core: number; role: string };
    assert.equal(b.pong, '/x');
    assert.equal(b.master, s.proc.pid);
    assert.equal(b.from.workerId, 1);
    assert.ok(b.core >= 1);
    assert.equal(b.role, 'worker');
  } finally { await s.stop(); }
});

test('--harakiri kills the stuck thread, answers 504, logs the request and keeps serving', async () => {
  const port = await freePort();
  const s = await startUwcore(['--http', `127.0.0.1:${port}`, '--app', APP, '--master', '--processes', '2', '--threads', '2', '--harakiri', '1']);
  try {
    const stuck = req(port, '/spin?ms=20000');
    await new Promise((r) => setTimeout(r, 200));
    // the other worker (and the stuck worker's main loop) keep answering
    const t0 = performance.now();
    for (let i = 0; i < 4; i++) assert.equal((await req(port, '/')).status, 200);
    assert.ok(performance.now() - t0 < 900, 'others kept serving while one request was stuck');
    const r = await stuck;
    assert.equal(r.status, 504);
    assert.ok(r.ms >= 1000 && r.ms < 3500, `504 after ${r.ms} ms`);
    const line = await s.waitFor(/HARAKIRI/);
    assert.match(line, /GET \/spin\?ms=20000/);
    assert.match(line, /on worker [12] \(pid: \d+\)/);
    assert.match(line, /"seconds":1(\.\d)?[,}]/);
    await s.waitFor(/starting a fresh one/);
    // headers already sent: the connection is cut, no second status line
    const late = await req(port, '/late?ms=20000').then((x) => x, (e: Error) => e);
    assert.ok(late instanceof Error || late.body.length < 'partial'.length + 1, 'a response whose headers were sent is aborted');
    // the replacement threads serve
    for (let i = 0; i < 4; i++) assert.equal((await req(port, '/')).status, 200);
  } finally { await s.stop(); }
});

test('bad values stop startup with one line', async () => {
  for (const [args, re] of [
    [['--harakiri', 'abc'], /--harakiri: expected seconds/],
    [['--processes', '-1'], /--processes: must be at least 1/],
    [['--threads', '0'], /--threads: must be at least 1/],
    [['--max-requests', 'x'], /--max-requests: expected a whole number/],
    [['--uid', 'no-such-user-xyz'], /--uid: no such user/],
    [['--gid', 'no-such-group-xyz'], /--gid: no such group/],
    [['--stats', 'a:b:c'], /--stats: expected an address/],
  ] as Array<[string[], RegExp]>) {
    const r = await runUwcore(['--http', ':0', '--app', APP, ...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
  const pid = await runUwcore(['--http', ':0', '--app', APP, '--master', '--pidfile', '/nonexistent-dir/x.pid']);
  assert.equal(pid.code, 1);
  assert.match(pid.stderr, /cannot write pidfile \/nonexistent-dir\/x.pid \(--pidfile\): ENOENT/);
  assert.equal(pid.stderr.trim().split('\n').length, 1, pid.stderr);
});

test('when fresh threads cannot load the application, requests get 503 until it loads again', async () => {
  const dir = tmpDir();
  const app = path.join(dir, 'app.js');
  const good = fs.readFileSync(APP, 'utf8');
  fs.writeFileSync(app, good);
  const port = await freePort();
  const s = await startUwcore(['--http', `127.0.0.1:${port}`, '--app', app, '--threads', '1', '--harakiri', '1']);
  try {
    fs.writeFileSync(app, 'export function application( {{{\n');
    assert.equal((await req(port, '/spin?ms=5000')).status, 504);
    await s.waitFor(/application thread 1 failed to start: .*cannot load application/);
    let status = 0;
    for (let i = 0; i < 40 && status !== 503; i++) { status = (await req(port, '/')).status; if (status !== 503) await new Promise((r) => setTimeout(r, 100)); }
    assert.equal(status, 503);
    fs.writeFileSync(app, good);
    let ok = false;
    for (let i = 0; i < 60 && !ok; i++) { ok = (await req(port, '/')).status === 200; if (!ok) await new Promise((r) => setTimeout(r, 200)); }
    assert.ok(ok, 'serves again once the application loads');
  } finally { await s.stop(); }
});
