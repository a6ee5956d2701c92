// Recycling: --max-requests, --max-worker-lifetime, --reload-on-rss (the same graceful drain as a reload).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { freePort, startUwcore } from '../helpers/server.js';
import { APP, alive, childPids, req, waitUntil } from './process-util.js';

test('--max-requests N: the Nth response carries Connection: close and the replacement serves the next', async () => {
  const port = await freePort();
  const s = await startUwcore(['--http', `127.0.0.1:${port}`, '--app', APP, '--max-requests', '3', '--worker-reload-mercy', '2']);
  try {
    assert.match(s.output(), /with master/, '--max-requests implies the master');
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const rs = [];
    for (let i = 0; i < 3; i++) rs.push(await req(port, '/', { agent }));
    agent.destroy();
    const pids = rs.map((r) => (JSON.parse(r.body) as { pid: number }).pid);
    assert.equal(new Set(pids).size, 1);
    assert.equal(rs[0]!.headers.connection, 'keep-alive');
    assert.equal(rs[1]!.headers.connection, 'keep-alive');
    assert.equal(rs[2]!.headers.connection, 'close');
    await s.waitFor(/reached --max-requests 3/);
    await s.waitFor(/worker 1 replaced \(max-requests 3 reached\)/);
    const next = JSON.parse((await req(port, '/')).body) as { pid: number };
    assert.notEqual(next.pid, pids[0]);
    assert.ok(await waitUntil(() => childPids(s.proc.pid!).length === 1), 'the old worker exited');
  } finally { await s.stop(); }
});

test('--min-worker-lifetime delays recycling by --max-requests', async () => {
  const port = await freePort();
  const s = await startUwcore(['--http', `127.0.0.1:${port}`, '--app', APP, '--max-requests', '2', '--min-worker-lifetime', '30']);
  try {
    const pids = new Set<number>();
    for (let i = 0; i < 5; i++) {
      const r = await req(port, '/');
      pids.add((JSON.parse(r.body) as { pid: number }).pid);
      assert.equal(r.headers.connection, 'close', 'http without agent closes anyway');
    }
    assert.equal(pids.size, 1);
    assert.doesNotMatch(s.output(), /reached --max-requests/);
  } finally { await s.stop(); }
});

test('--max-worker-lifetime and --reload-on-rss replace workers gracefully', async () => {
  const port = await freePort();
  const s = await startUwcore(['--http', `127.0.0.1:${port}`, '--app', APP, '--max-worker-lifetime', '1', '--worker-reload-mercy', '3']);
  const port2 = await freePort();
  const s2 = await startUwcore(['--http', `127.0.0.1:${port2}`, '--app', APP, '--reload-on-rss', '1', '--min-worker-lifetime', '1', '--worker-reload-mercy', '1']);
  try {
    const [first] = childPids(s.proc.pid!);
    // a request in flight when the lifetime ends still completes
    const slow = req(port, '/sleep?ms=1500');
    await s.waitFor(/worker 1 replaced \(max-worker-lifetime 1 s reached\)/, 5000);
    assert.equal((await slow).status, 200);
    assert.ok(await waitUntil(() => !alive(first!), 3000), 'the old worker exits once its request is done');
    const r = JSON.parse((await req(port, '/')).body) as { pid: number };
    assert.notEqual(r.pid, first);
    const line = await s2.waitFor(/worker 1 replaced \(reload-on-rss: resident memory \d+ MB > 1 MB\)/, 6000);
    assert.ok(line);
    assert.equal((await req(port2, '/')).status, 200);
  } finally { await Promise.all([s.stop(), s2.stop()]); }
});
