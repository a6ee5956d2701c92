// --stats: uWSGI-compatible JSON from the master, raw socket or HTTP, TCP or UNIX; real counters.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import fs from 'node:fs';
import { freePort, startUwcore, tmpDir } from '../helpers/server.js';
import { APP, FIXTURES, req } from './process-util.js';

function readAll(opts: net.NetConnectOpts, send?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(opts);
    let out = '';
    s.on('connect', () => { if (send) s.write(send); });
    s.on('data', (d) => { out += d.toString(); });
    s.on('end', () => resolve(out));
    s.on('error', reject);
  });
}

test('stats: after 100 requests the workers\' counts sum to 100; uWSGI keys; plugin sections', async () => {
  const port = await freePort();
  const sport = await freePort();
  const s = await startUwcore(['--http', `127.0.0.1:${port}`, '--app', APP, '--processes', '2', '--threads', '2', '--stats', `127.0.0.1:${sport}`,
    '--plugins', path.join(FIXTURES, 'probe-plugin.js'), '--disable-logging']);
  try {
    await s.waitFor(/stats server enabled on 127\.0\.0\.1:\d+/);
    for (let i = 0; i < 10; i++) await Promise.all(Array.from({ length: 10 }, () => req(port, '/')));
    const raw = await readAll({ port: sport, host: '127.0.0.1' });
    const doc = JSON.parse(raw) as Record<string, any>;
    for (const k of ['version', 'listen_queue', 'listen_queue_errors', 'signal_queue', 'load', 'pid', 'uid', 'gid', 'cwd', 'locks', 'sockets', 'workers']) assert.ok(k in doc, `key ${k}`);
    assert.equal(doc.pid, s.proc.pid);
    assert.equal(doc.cwd, process.cwd());
    assert.equal(doc.workers.length, 2);
    const sum = doc.workers.reduce((n: number, w: { requests: number }) => n + w.requests, 0);
    assert.equal(sum, 100);
    for (const w of doc.workers) {
      for (const k of ['id', 'pid', 'requests', 'exceptions', 'status', 'rss', 'vsz', 'running_time', 'last_spawn', 'respawn_count', 'tx', 'avg_rt', 'cores']) assert.ok(k in w, `worker key ${k}`);
      assert.equal(w.status, 'idle');
      assert.ok(w.rss > 1_000_000);
      assert.equal(w.cores.length, 2);
      assert.equal(w.cores.reduce((n: number, c: { requests: number }) => n + c.requests, 0), w.requests);
      assert.equal(w.delta_requests, w.requests);
      if (w.requests > 0) { assert.ok(w.tx > 0); assert.ok(w.avg_rt > 0); }
    }
    assert.equal(doc.sockets[0].name, `127.0.0.1:${port}`);
    assert.equal(doc.probe.role, 'master', 'the stats hook runs in the master');
    // exceptions, busy status and delta
    assert.equal((await req(port, '/throw')).status, 500);
    const slow = req(port, '/sleep?ms=800');
    await new Promise((r) => setTimeout(r, 200));
    const doc2 = JSON.parse(await readAll({ port: sport, host: '127.0.0.1' })) as Record<string, any>;
    assert.equal(doc2.workers.reduce((n: number, w: { exceptions: number }) => n + w.exceptions, 0), 1);
    assert.ok(doc2.workers.some((w: { status: string }) => w.status === 'busy'));
    assert.equal(doc2.load, 1);
    assert.equal(doc2.workers.reduce((n: number, w: { delta_requests: number }) => n + w.delta_requests, 0), 1);
    await slow;
    // counters survive a graceful reload (carried over, as uWSGI does)
    s.proc.kill('SIGHUP');
    await new Promise((r) => setTimeout(r, 100));
    await s.waitFor(/worker 2 replaced/);
    await new Promise((r) => setTimeout(r, 300));
    const doc3 = JSON.parse(await readAll({ port: sport, host: '127.0.0.1' })) as Record<string, any>;
    assert.equal(doc3.workers.reduce((n: number, w: { requests: number }) => n + w.requests, 0), 102);
    assert.deepEqual(doc3.workers.map((w: { respawn_count: number }) => w.respawn_count), [1, 1]);
  } finally { await s.stop(); }
});

test('--stats-http over a UNIX socket, removed at exit', async () => {
  const dir = tmpDir();
  const sock = path.join(dir, 'stats.sock');
  const port = await freePort();
  const s = await startUwcore(['--http', `127.0.0.1:${port}`, '--app', APP, '--stats', sock, '--stats-http']);
  assert.match(s.output(), /with master/, '--stats implies the master');
  await req(port, '/');
  const r = await req(0, '/', { socketPath: sock });
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-type'], 'application/json');
  assert.equal(r.headers['access-control-allow-origin'], '*');
  const doc = JSON.parse(r.body) as { workers: Array<{ requests: number }> };
  assert.equal(doc.workers[0]!.requests, 1);
  assert.equal(await s.stop(), 0);
  assert.ok(!fs.existsSync(sock));
});

test('--stats on an address in use stops startup with one line', async () => {
  const port = await freePort();
  const busy = net.createServer().listen(0, '127.0.0.1');
  await new Promise((r) => busy.once('listening', r));
  const sport = (busy.address() as net.AddressInfo).port;
  try {
    const s = await startUwcore(['--http', `127.0.0.1:${port}`, '--app', APP, '--stats', `127.0.0.1:${sport}`], { ready: null });
    const r = await s.exited;
    assert.equal(r.code, 1);
    assert.match(s.output(), /cannot serve stats on 127\.0\.0\.1:\d+ \(--stats\): address already in use/);
  } finally { busy.close(); }
});
