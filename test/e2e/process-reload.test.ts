// Zero-downtime reload (SIGHUP, --touch-reload, uwcore.reload()), a bad deploy, reload and kill -9 under load.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { freePort, startUwcore, tmpDir } from '../helpers/server.js';
import { APP, FIXTURES, childPids, load, req, sleep, waitUntil } from './process-util.js';

function deploy(dir: string, version: string): { app: string; env: NodeJS.ProcessEnv } {
  const app = path.join(dir, 'app.js');
  fs.copyFileSync(path.join(FIXTURES, 'versioned.js'), app);
  fs.writeFileSync(path.join(dir, 'version.txt'), version);
  return { app, env: { VERSION_FILE: path.join(dir, 'version.txt') } };
}

async function versions(port: number, n = 6): Promise<Set<string>> {
  const out = new Set<string>();
  for (let i = 0; i < n; i++) out.add((JSON.parse((await req(port, '/')).body) as { version: string }).version);
  return out;
}

test('SIGHUP replaces every worker, one at a time, with freshly loaded code; a bad deploy keeps the old workers', async () => {
  const dir = tmpDir();
  const { app, env } = deploy(dir, 'v1');
  const port = await freePort();
  const s = await startUwcore(['--http', `127.0.0.1:${port}`, '--app', app, '--processes', '2', '--worker-reload-mercy', '2'], { env });
  try {
    assert.deepEqual([...await versions(port)], ['v1']);
    const before = childPids(s.proc.pid!).sort();
    fs.writeFileSync(path.join(dir, 'version.txt'), 'v2');
    s.proc.kill('SIGHUP');
    await s.waitFor(/SIGHUP received: gracefully reloading 2 workers/);
    assert.ok(await waitUntil(() => s.output().split('\n').filter((l) => /worker \d replaced \(SIGHUP received\)/.test(l)).length === 2, 10_000));
    assert.ok(await waitUntil(() => { const now = childPids(s.proc.pid!); return now.length === 2 && now.every((p) => !before.includes(p)); }, 5000), 'old workers exited');
    assert.deepEqual([...await versions(port)], ['v2']);
    // a bad deploy: the new code does not load; the running workers keep serving v2
    fs.writeFileSync(app, 'export function application( {{{ syntax error\n');
    const running = childPids(s.proc.pid!).sort();
    s.proc.kill('SIGHUP');
    const line = await s.waitFor(/could not be replaced/);
    assert.match(line, /cannot load application/);
    await s.waitFor(/reload aborted/);
    assert.ok(await waitUntil(() => JSON.stringify(childPids(s.proc.pid!).sort()) === JSON.stringify(running), 3000), 'the failed worker exited, the running ones stayed');
    assert.deepEqual([...await versions(port)], ['v2']);
  } finally { await s.stop(); }
});

test('--touch-reload and uwcore.reload() reload the workers', async () => {
  const dir = tmpDir();
  const touch = path.join(dir, 'reload.touch');
  fs.writeFileSync(touch, '');
  const port = await freePort();
  const s = await startUwcore(['--http', `127.0.0.1:${port}`, '--app', APP, '--touch-reload', touch, '--worker-reload-mercy', '1']);
  try {
    assert.match(s.output(), /with master/, '--touch-reload implies the master');
    const [first] = childPids(s.proc.pid!);
    await sleep(1100);
    fs.utimesSync(touch, new Date(), new Date(Date.now() + 5000));
    await s.waitFor(/reload\.touch has been touched: gracefully reloading/, 5000);
    await s.waitFor(/worker 1 replaced/);
    assert.ok(await waitUntil(() => { const p = childPids(s.proc.pid!); return p.length === 1 && p[0] !== first; }));
    const [second] = childPids(s.proc.pid!);
    assert.equal((await req(port, '/reload')).status, 200);
    await s.waitFor(/SIGHUP received: gracefully reloading/);
    assert.ok(await waitUntil(() => { const p = childPids(s.proc.pid!); return p.length === 1 && p[0] !== second; }));
    assert.equal((await req(port, '/')).status, 200);
  } finally { await s.stop(); }
});

test('a reload under a steady load of keep-alive and new connections loses no request', async (t) => {
  const port = await freePort();
  const s = await startUwcore(['--http', `127.0.0.1:${port}`, '--app', APP, '--processes', '2', '--disable-logging', '--worker-reload-mercy', '5']);
  try {
    const before = childPids(s.proc.pid!);
    let finish!: () => void;
    const stop = new Promise<void>((r) => { finish = r; });
    const running = load(port, '/sleep?ms=5', stop, 4, 2);
    await sleep(300);
    s.proc.kill('SIGHUP');
    assert.ok(await waitUntil(() => s.output().split('\n').filter((l) => /worker \d replaced/.test(l)).length === 2, 15_000));
    await sleep(800);
    s.proc.kill('SIGHUP');
    assert.ok(await waitUntil(() => s.output().split('\n').filter((l) => /worker \d replaced/.test(l)).length === 4, 15_000));
    await sleep(800);
    finish();
    const r = await running;
    t.diagnostic(`2 reloads under load: ${r.ok} requests answered, ${r.failed} failed, statuses ${JSON.stringify(r.statuses)}, ${r.pids.size} worker pids`);
    assert.deepEqual(r.errors, [], `failed requests: ${r.errors.slice(0, 5).join('; ')}`);
    assert.equal(r.failed, 0);
    assert.ok(r.ok > 100, `${r.ok} requests served`);
    assert.deepEqual(Object.keys(r.statuses), ['200']);
    assert.ok(r.pids.size >= 4, 'responses came from old and new workers');
    assert.ok(childPids(s.proc.pid!).every((p) => !before.includes(p)));
  } finally { await s.stop(); }
});

test('kill -9 of a worker under load: the others keep serving, it comes back, no 5xx', async (t) => {
  const port = await freePort();
  const s = await startUwcore(['--http', `127.0.0.1:${port}`, '--app', APP, '--processes', '2', '--disable-logging']);
  try {
    let finish!: () => void;
    const stop = new Promise<void>((r) => { finish = r; });
    const running = load(port, '/sleep?ms=5', stop, 3, 2);
    await sleep(300);
    const [victim] = childPids(s.proc.pid!);
    process.kill(victim!, 'SIGKILL');
    await s.waitFor(/respawned uwcore worker/);
    await sleep(500);
    finish();
    const r = await running;
    t.diagnostic(`kill -9 under load: ${r.ok} answered, ${r.failed} failed (${r.errors.join('; ')})`);
    // only requests in flight on the killed worker can fail (at most one per client)
    assert.ok(r.failed <= 5, `${r.failed} failed: ${r.errors.join('; ')}`);
    assert.ok(!r.errors.some((e) => e.startsWith('status')), 'no 5xx');
    assert.ok(r.ok > 50);
    assert.equal(childPids(s.proc.pid!).length, 2);
  } finally { await s.stop(); }
});
