// Respawn, crash loops, graceful stop, forced stop, SIGQUIT, master kill -9, pidfile and sockets cleanup.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { freePort, startUwcore, tmpDir } from '../helpers/server.js';
import { APP, FIXTURES, alive, childPids, req, sleep, waitUntil } from './process-util.js';

test('a killed worker is respawned within a second, with a log line naming it, its pid and the cause', async () => {
  const port = await freePort();
  const s = await startUwcore(['--http', `127.0.0.1:${port}`, '--app', APP, '--processes', '2']);
  try {
    const before = childPids(s.proc.pid!);
    assert.equal(before.length, 2);
    const victim = before[0]!;
    const t0 = Date.now();
    process.kill(victim, 'SIGKILL');
    const died = await s.waitFor(new RegExp(`worker \\d \\(pid: ${victim}\\) died, killed by signal SIGKILL`));
    assert.match(died, /respawning/);
    await s.waitFor(/respawned uwcore worker \d \(new pid: \d+\)/);
    assert.ok(Date.now() - t0 < 4000, `respawned after ${Date.now() - t0} ms`);
    const after = childPids(s.proc.pid!);
    assert.equal(after.length, 2);
    assert.ok(!after.includes(victim));
    // a worker that exits by itself
    const r = await req(port, '/exit');
    assert.equal(r.status, 200);
    await s.waitFor(/died, exited with code 3: respawning/);
    assert.ok(await waitUntil(() => s.output().split('\n').filter((l) => /respawned uwcore worker/.test(l)).length >= 2, 5000));
    for (let i = 0; i < 4; i++) assert.equal((await req(port, '/')).status, 200);
    // process titles
    const titles = fs.readFileSync(`/proc/${s.proc.pid}/cmdline`, 'utf8');
    assert.match(titles, /uwcore master/);
    assert.match(fs.readFileSync(`/proc/${childPids(s.proc.pid!)[0]}/cmdline`, 'utf8'), /uwcore worker [12]/);
  } finally { await s.stop(); }
});

test('a worker that keeps dying right after start backs off instead of fork-bombing', async () => {
  const port = await freePort();
  const s = await startUwcore(['--http', `127.0.0.1:${port}`, '--app', path.join(FIXTURES, 'crashy.js'), '--master'], { env: { CRASH_AFTER_MS: '1500' } });
  try {
    const line = await s.waitFor(/respawning in [\d.]+ s \(it keeps dying right after starting\)/, 20_000);
    assert.match(line, /worker 1/);
    const spawns = s.output().split('\n').filter((l) => /respawned uwcore worker/.test(l)).length;
    assert.ok(spawns <= 4, `${spawns} respawns before backing off`);
    assert.ok(alive(s.proc.pid!), 'the master survives');
  } finally { await s.stop(); }
});

test('SIGTERM drains in-flight requests, removes the pidfile and UNIX socket, exits 0', async () => {
  const dir = tmpDir();
  const port = await freePort();
  const sock = path.join(dir, 'app.sock');
  const pidfile = path.join(dir, 'uw.pid');
  const s = await startUwcore(['--http', `127.0.0.1:${port}`, '--http', sock, '--app', APP, '--processes', '2', '--pidfile', pidfile]);
  assert.equal(fs.readFileSync(pidfile, 'utf8').trim(), String(s.proc.pid));
  assert.ok(fs.existsSync(sock));
  const workers = childPids(s.proc.pid!);
  const inflight = req(port, '/sleep?ms=1200');
  const viaUnix = req(0, '/sleep?ms=800', { socketPath: sock });
  await sleep(200);
  const t0 = Date.now();
  const code = await s.stop('SIGTERM');
  assert.equal(code, 0);
  assert.ok(Date.now() - t0 >= 900, 'waited for the in-flight request');
  assert.equal((await inflight).status, 200);
  assert.equal((await viaUnix).status, 200);
  assert.ok(!fs.existsSync(pidfile), 'pidfile removed');
  assert.ok(!fs.existsSync(sock), 'UNIX socket removed');
  for (const p of workers) assert.ok(!alive(p), `worker ${p} gone`);
  assert.match(s.output(), /SIGTERM received: stopping gracefully/);
  assert.match(s.output(), /goodbye to uwcore/);
});

test('--reload-mercy bounds a graceful stop; a second signal and SIGQUIT stop at once', async () => {
  const port = await freePort();
  const s = await startUwcore(['--http', `127.0.0.1:${port}`, '--app', APP, '--processes', '2', '--reload-mercy', '1']);
  const slow = req(port, '/sleep?ms=30000').catch((e: Error) => e);
  await sleep(200);
  let t0 = Date.now();
  assert.equal(await s.stop('SIGTERM'), 0);
  assert.ok(Date.now() - t0 < 4000, `stopped after ${Date.now() - t0} ms`);
  assert.ok((await slow) instanceof Error, 'the request past its mercy is cut');

  const port2 = await freePort();
  const s2 = await startUwcore(['--http', `127.0.0.1:${port2}`, '--app', APP, '--processes', '2']);
  const workers = childPids(s2.proc.pid!);
  void req(port2, '/sleep?ms=30000').catch(() => undefined);
  await sleep(200);
  t0 = Date.now();
  s2.proc.kill('SIGTERM');
  await s2.waitFor(/SIGTERM received/);
  s2.proc.kill('SIGTERM');
  const r = await s2.exited;
  assert.equal(r.code, 1);
  assert.ok(Date.now() - t0 < 2000);
  assert.ok(await waitUntil(() => workers.every((p) => !alive(p)), 3000), 'workers killed');

  const port3 = await freePort();
  const s3 = await startUwcore(['--http', `127.0.0.1:${port3}`, '--app', APP, '--processes', '2']);
  const w3 = childPids(s3.proc.pid!);
  void req(port3, '/sleep?ms=30000').catch(() => undefined);
  await sleep(200);
  t0 = Date.now();
  s3.proc.kill('SIGQUIT');
  await s3.exited;
  assert.ok(Date.now() - t0 < 2000);
  assert.ok(await waitUntil(() => w3.every((p) => !alive(p)), 3000), 'workers killed');
});

test('kill -9 of the master leaves no worker running', async () => {
  const port = await freePort();
  const s = await startUwcore(['--http', `127.0.0.1:${port}`, '--app', APP, '--processes', '2', '--threads', '2']);
  const workers = childPids(s.proc.pid!);
  assert.equal(workers.length, 2);
  s.proc.kill('SIGKILL');
  await s.exited;
  assert.ok(await waitUntil(() => workers.every((p) => !alive(p)), 6000), 'workers exited after the master died');
});

test('a worker that does not finish in time is killed after --worker-reload-mercy', async () => {
  const port = await freePort();
  // no threads: /spin blocks the worker's own event loop, so it cannot even hear the stop message
  const s = await startUwcore(['--http', `127.0.0.1:${port}`, '--app', APP, '--master', '--processes', '1', '--worker-reload-mercy', '1']);
  try {
    const [old] = childPids(s.proc.pid!);
    void req(port, '/spin?ms=60000').catch(() => undefined);
    await sleep(300);
    s.proc.kill('SIGHUP');
    await s.waitFor(/worker 1 replaced/);
    const t0 = Date.now();
    await s.waitFor(new RegExp(`worker 1 \\(pid: ${old}\\) is taking too long to finish`), 8000);
    assert.ok(await waitUntil(() => !alive(old!), 2000));
    assert.ok(Date.now() - t0 < 5000);
    assert.equal((await req(port, '/')).status, 200);
  } finally { await s.stop(); }
});

test('--uid/--gid drop privileges after binding (as root)', { skip: process.getuid?.() !== 0 && 'needs root' }, async () => {
  const port = await freePort();
  const s = await startUwcore(['--http', `127.0.0.1:${port}`, '--app', APP, '--master', '--processes', '1', '--uid', 'nobody', '--gid', 'nogroup']);
  try {
    assert.equal((await req(port, '/')).status, 200);
    const uidOf = (pid: number) => /Uid:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1];
    const nobody = /^nobody:[^:]*:(\d+):/m.exec(fs.readFileSync('/etc/passwd', 'utf8'))![1];
    assert.equal(uidOf(s.proc.pid!), nobody);
    assert.equal(uidOf(childPids(s.proc.pid!)[0]!), nobody);
    await s.waitFor(/dropped privileges/);
  } finally { await s.stop(); }
});

test('the master survives a worker flooding IPC and a worker exhausting its memory', async () => {
  const port = await freePort();
  const s = await startUwcore(['--http', `127.0.0.1:${port}`, '--app', APP, '--processes', '2', '--disable-logging'], { env: { NODE_OPTIONS: '--max-old-space-size=48' } });
  try {
    assert.equal((await req(port, '/flood?n=20000')).status, 200);
    const oom = await req(port, '/oom').then((r) => r.status, () => 'reset');
    assert.equal(oom, 'reset');
    await s.waitFor(/died, (killed by signal SIGABRT|exited with code \d+): respawning/, 15_000);
    await s.waitFor(/respawned uwcore worker/, 10_000);
    assert.ok(alive(s.proc.pid!));
    for (let i = 0; i < 4; i++) assert.equal((await req(port, '/')).status, 200);
    assert.equal(childPids(s.proc.pid!).length, 2);
  } finally { await s.stop(); }
});

test('--lazy-apps is accepted with one warning; --need-app without an application stops startup', async () => {
  const port = await freePort();
  const s = await startUwcore(['--http', `127.0.0.1:${port}`, '--app', APP, '--master', '--lazy-apps']);
  try {
    assert.match(s.output(), /option lazy-apps .*each worker always loads the application itself/);
  } finally { await s.stop(); }
  const { runUwcore } = await import('../helpers/server.js');
  const r = await runUwcore(['--http', `127.0.0.1:${port}`, '--master', '--need-app']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no application could be loaded and --need-app is set/);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
});
