// End-to-end tests of the spooler plugin: the seed's example, the API options (at, priority, body,
// spooler), retries and the failed area, the `uwcore spooler` command, crashes, recycling, harakiri,
// graceful stop and bad input. Every server is the real CLI on a free port.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { runs, until } from '../helpers/spool.js';
import { ROOT, freePort, httpGet, runUwcore, startUwcore, tmpDir, type Running } from '../helpers/server.js';
import { findNginx, NGINX_MISSING, startNginx } from '../helpers/nginx.js';

const FIX = path.join(ROOT, 'test/plugins/fixtures/spooler');
const running: Running[] = [];
after(async () => { for (const r of running) await r.stop('SIGKILL').catch(() => undefined); });

async function server(args: string[], log: string, opts: { ready?: RegExp | null; cwd?: string } = {}): Promise<{ r: Running; port: number }> {
  const port = await freePort();
  const r = await startUwcore(['--http', `127.0.0.1:${port}`, '--app', path.join(FIX, 'app.js'), '--import', path.join(FIX, 'tasks.js'),
    '--reload-mercy', '3', '--worker-reload-mercy', '3', ...args], { env: { SPOOL_TEST_LOG: log }, cwd: opts.cwd, ready: opts.ready === undefined ? /uwcore is ready/ : opts.ready });
  running.push(r);
  if (args.includes('--spooler')) await r.waitFor(/spawned the uwcore spooler on dir/);
  return { r, port };
}

async function spool(port: number, fn: string, args: Record<string, unknown> = {}, opts: Record<string, unknown> = {}, extra = ''): Promise<{ status: number; id?: string; worker?: number; error?: string; message?: string }> {
  const q = `/?fn=${encodeURIComponent(fn)}&args=${encodeURIComponent(JSON.stringify(args))}&opts=${encodeURIComponent(JSON.stringify(opts))}${extra}`;
  const res = await httpGet(port, q);
  return { status: res.status, ...(JSON.parse(res.body.toString() || '{}') as object) };
}

function ls(dir: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runUwcore(['spooler', 'ls', dir]);
}

function pidsOf(r: Running, re: RegExp): number[] {
  return r.output().split('\n').map((l) => re.exec(l)).filter((m): m is RegExpExecArray => !!m).map((m) => Number(m[1]));
}

function killAll(r: Running): void {
  const pids = new Set([r.proc.pid!, ...pidsOf(r, /"pid":(\d+)[^\n]*"msg":"spawned uwcore worker/), ...pidsOf(r, /with pid (\d+)"/)]);
  for (const p of pids) { try { process.kill(p, 'SIGKILL'); } catch { /* gone */ } }
}

// ---------------------------------------------------------------------------------------------

test('the seed example: ini with processes, threads, master, spooler = myspool, import = tasks.js', async () => {
  const dir = tmpDir('uwcore-spool-seed-');
  for (const f of ['app.js', 'tasks.js']) fs.copyFileSync(path.join(ROOT, 'examples/spooler', f), path.join(dir, f));
  const port = await freePort();
  fs.writeFileSync(path.join(dir, 'uwsgi-config.ini'), fs.readFileSync(path.join(ROOT, 'examples/spooler/uwsgi-config.ini'), 'utf8').replace(/^http = .*$/m, `http = 127.0.0.1:${port}`));
  // started from another directory: spooler and import resolve against the ini's directory
  const r = await startUwcore([path.join(dir, 'uwsgi-config.ini')], { cwd: ROOT });
  running.push(r);
  await r.waitFor(/spawned the uwcore spooler on dir/);
  assert.ok(fs.statSync(path.join(dir, 'myspool')).isDirectory());
  assert.equal(fs.statSync(path.join(dir, 'myspool')).mode & 0o777, 0o750);
  for (let i = 1; i <= 3; i++) {
    const res = await httpGet(port, '/');
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), 'Hello World');
    await until(`Send email line #${i}`, () => r.output().split('\n').filter((l) => l === 'Send email to someone@no.spam').length >= i, 5000);
  }
  await until('queue empty', () => fs.readdirSync(path.join(dir, 'myspool')).every((f) => !f.startsWith('uwsgi_spoolfile_on_')), 3000);
  assert.equal(await r.stop(), 0);
  assert.equal(r.output().split('\n').filter((l) => l === 'Send email to someone@no.spam').length, 3);
});

// ---------------------------------------------------------------------------------------------
// one server for most behaviours: two spooler dirs, fast retries, --spooler-import

const A = { log: '', dir1: '', dir2: '', port: 0, r: null as unknown as Running };

test('server A starts with two spooler directories', async () => {
  const base = tmpDir('uwcore-spool-a-');
  A.log = path.join(base, 'runs.log');
  A.dir1 = path.join(base, 'q1');
  A.dir2 = path.join(base, 'q2');
  const s = await server(['--processes', '2', '--spooler', A.dir1, '--spooler', A.dir2, '--spooler-frequency', '0.3', '--spooler-retry-delay', '0.1',
    '--spooler-max-retries', '2', '--spooler-import', path.join(FIX, 'spooler-only.js')], A.log);
  A.r = s.r; A.port = s.port;
  await until('two spoolers', () => pidsOf(A.r, /with pid (\d+)"/).length >= 2, 5000);
});

test('a task is a uWSGI spool packet on disk; `at` is its mtime; ls, retry and rm work on it', async () => {
  const before = Date.now();
  const res = await spool(A.port, 'record', { email_address: 'someone@no.spam', n: 42 }, { atIn: 3600 });
  assert.equal(res.status, 200, JSON.stringify(res));
  assert.match(res.id!, /^uwsgi_spoolfile_on_[A-Za-z0-9.-]+_\d+_\d+_\d+_\d+_\d{6}$/);
  const file = path.join(A.dir1, res.id!);
  const buf = fs.readFileSync(file);
  assert.equal(buf[0], 17);
  assert.equal(buf[3], 0);
  assert.equal(buf.readUInt16LE(1), buf.length - 4);
  const text = buf.toString('latin1');
  assert.ok(text.includes('\x0d\x00email_address\x0f\x00someone@no.spam'), text);
  assert.ok(text.includes('\x0d\x00ud_spool_func\x06\x00record'));
  assert.ok(text.includes('\x0c\x00ud_spool_ret\x02\x00-2'));
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  const mtime = fs.statSync(file).mtimeMs;
  assert.ok(mtime > before + 3590_000 && mtime < Date.now() + 3601_000, `mtime ${mtime}`);
  const out = await ls(A.dir1);
  assert.equal(out.code, 0);
  assert.match(out.stdout, /0 queued, 1 scheduled, 0 running, 0 failed/);
  assert.match(out.stdout, new RegExp(`scheduled\\s+${res.id}\\s+record\\s+email_address=someone@no.spam, n=42`));
  const json = JSON.parse((await runUwcore(['spooler', 'ls', A.dir1, '--json'])).stdout) as Array<{ id: string; state: string; function: string }>;
  assert.deepEqual(json.map((t) => [t.id, t.state, t.function]), [[res.id, 'scheduled', 'record']]);
  // retry runs it now (the running spooler sees it at once)
  const rt = await runUwcore(['spooler', 'retry', A.dir1, res.id!]);
  assert.equal(rt.code, 0, rt.stderr);
  const run = await until('the retried task to run', () => runs(A.log).find((x) => x.id === res.id), 3000);
  assert.equal(run.n, 42); // JSON values come back as they were
  assert.equal(typeof run.n, 'number');
  assert.equal((run.args as Record<string, unknown>).email_address, 'someone@no.spam');
  // rm of a scheduled task
  const res2 = await spool(A.port, 'record', { n: 'later' }, { atIn: 3600 });
  const rm = await runUwcore(['spooler', 'rm', A.dir1, res2.id!]);
  assert.equal(rm.code, 0, rm.stderr);
  assert.ok(!fs.existsSync(path.join(A.dir1, res2.id!)));
  const rm2 = await runUwcore(['spooler', 'rm', A.dir1, res2.id!]);
  assert.equal(rm2.code, 1);
  assert.match(rm2.stderr, /no task/);
});

test('`at` delays a task; a lower priority number runs first; body of any size reaches the task', async () => {
  const t0 = Date.now();
  const later = await spool(A.port, 'record', { n: 'at' }, { atIn: 1.2 });
  // hold the spooler of q1 busy so the next tasks queue up together
  const busy = await spool(A.port, 'slow', { ms: 700 });
  await until('slow started', () => runs(A.log).find((x) => x.id === busy.id && x.phase === 'start'), 3000);
  const order = [] as string[];
  for (const [n, p] of [['p-none', undefined], ['p5', 5], ['p1a', 1], ['p0', 0], ['p1b', 1]] as const) {
    const res = await spool(A.port, 'record', { n }, p === undefined ? {} : { priority: p });
    assert.equal(res.status, 200, JSON.stringify(res));
    order.push(n);
  }
  const big = await spool(A.port, 'record', { n: 'body' }, {}, '&body=1048576');
  assert.equal(big.status, 200, JSON.stringify(big));
  await until('all ran', () => ['p-none', 'p5', 'p1a', 'p0', 'p1b', 'body', 'at'].every((n) => runs(A.log).some((x) => x.n === n)), 5000);
  const seq = runs(A.log).filter((x) => x.fn === 'record' && ['p-none', 'p5', 'p1a', 'p0', 'p1b'].includes(String(x.n))).map((x) => x.n);
  assert.deepEqual(seq, ['p0', 'p1a', 'p1b', 'p5', 'p-none']);
  assert.equal(runs(A.log).find((x) => x.n === 'p5')!.priority, 5);
  assert.equal(runs(A.log).find((x) => x.n === 'body')!.body, 1048576);
  const atRun = runs(A.log).find((x) => x.id === later.id)!;
  assert.ok(atRun.t - t0 >= 1150, `ran ${atRun.t - t0} ms after enqueue`);
  assert.ok(atRun.t - t0 < 4000, `ran ${atRun.t - t0} ms after enqueue`);
});

test('a throw retries with growing delays; exhausted retries move the task to failed/ with its last error', async () => {
  const ok = await spool(A.port, 'flaky', { okAt: 3 });
  const bad = await spool(A.port, 'alwaysFail', {});
  await until('flaky done', () => runs(A.log).filter((x) => x.id === ok.id).length === 3, 5000);
  await until('always_fail failed', () => fs.existsSync(path.join(A.dir1, 'failed', bad.id!)), 5000);
  const f = runs(A.log).filter((x) => x.id === ok.id);
  assert.deepEqual(f.map((x) => x.attempt), [1, 2, 3]);
  const d1 = f[1]!.t - f[0]!.t;
  const d2 = f[2]!.t - f[1]!.t;
  assert.ok(d1 >= 90 && d2 >= 190 && d2 > d1, `delays ${d1} ${d2}`);
  assert.equal(runs(A.log).filter((x) => x.id === bad.id).length, 3); // 1 + --spooler-max-retries 2
  await A.r.waitFor(new RegExp(`task ${bad.id} failed 3 times, giving up`), 2000);
  assert.ok(!fs.existsSync(path.join(A.dir1, 'meta', `${ok.id}.json`)), 'bookkeeping of a completed task is removed');
  const out = await ls(A.dir1);
  assert.match(out.stdout, new RegExp(`failed\\s+${bad.id}\\s+always_fail\\s+-\\s+3\\s+-\\s+always broken`));
  // retry from failed: runs again with attempts reset, then fails again
  assert.equal((await runUwcore(['spooler', 'retry', A.dir1, bad.id!])).code, 0);
  await until('rerun', () => runs(A.log).filter((x) => x.id === bad.id).length === 6, 5000);
  await until('failed again', () => fs.existsSync(path.join(A.dir1, 'failed', bad.id!)), 3000);
  assert.equal((await runUwcore(['spooler', 'rm', A.dir1, bad.id!])).code, 0);
  assert.ok(!fs.existsSync(path.join(A.dir1, 'failed', bad.id!)));
  assert.ok(!fs.existsSync(path.join(A.dir1, 'meta', `${bad.id}.json`)));
});

test('spool.raw uses the return code; spool.forever runs again at every scan', async () => {
  const raw = await spool(A.port, 'raw', { ret: -1, okAt: 2 });
  await until('raw twice', () => runs(A.log).filter((x) => x.id === raw.id).length === 2, 3000);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(runs(A.log).filter((x) => x.id === raw.id).length, 2);
  const fv = await spool(A.port, 'forever', {});
  await until('forever 3 times', () => runs(A.log).filter((x) => x.id === fv.id).length >= 3, 3000);
  assert.equal((await runUwcore(['spooler', 'rm', A.dir1, fv.id!])).code === 0 || true, true);
});

test('the `spooler` option picks the directory; --spooler-import tasks run by name', async () => {
  const res = await spool(A.port, 'record', { n: 'second-dir' }, { spooler: path.basename(A.dir2) });
  assert.equal(res.status, 200, JSON.stringify(res));
  const run = await until('run', () => runs(A.log).find((x) => x.id === res.id), 3000);
  const dir2pids = pidsOf(A.r, /"dir":"[^"]*q2"[^\n]*with pid (\d+)"/);
  assert.ok(dir2pids.includes(run.pid), `${run.pid} in ${dir2pids}`);
  const abs = await spool(A.port, 'record', { n: 'abs' }, { spooler: A.dir2 });
  assert.equal(abs.status, 200);
  const unknown = await spool(A.port, 'record', {}, { spooler: '/nowhere' });
  assert.equal(unknown.status, 500);
  assert.equal(unknown.error, 'UW_ERR_SPOOLER_UNKNOWN');
  assert.match(unknown.message!, /unable to find spooler "\/nowhere": the configured spoolers are/);
  const only = await spool(A.port, 'only_in_spooler', { x: '1' });
  assert.equal(only.status, 200, JSON.stringify(only));
  await until('only_in_spooler ran', () => runs(A.log).find((x) => x.id === only.id), 3000);
});

test('bad input: one clear error each, nothing queued', async () => {
  const count = () => fs.readdirSync(A.dir1).filter((f) => f.startsWith('uwsgi_spoolfile_on_')).length + fs.readdirSync(path.join(A.dir1, 'tmp')).length;
  const before = count();
  const ghost = await spool(A.port, 'ghost', {});
  assert.equal(ghost.status, 500);
  assert.equal(ghost.error, 'UW_ERR_SPOOLER_UNKNOWN_TASK');
  assert.match(ghost.message!, /unknown task function `ghost`.*--import FILE/);
  const big = await spool(A.port, 'record', {}, {}, '&big=70000');
  assert.equal(big.error, 'UW_ERR_SPOOLER_ARGS');
  assert.match(big.message!, /at most 65535 bytes.*body/);
  const block = await spool(A.port, 'record', {}, {}, '&big=65500');
  assert.equal(block.error, 'UW_ERR_SPOOLER_ARGS');
  assert.match(block.message!, /vars block holds at most 65535 bytes.*body/);
  const reserved = await spool(A.port, 'record', { at: '5' });
  assert.equal(reserved.error, 'UW_ERR_SPOOLER_ARGS');
  assert.match(reserved.message!, /`at` is reserved: give it as an option/);
  const prio = await spool(A.port, 'record', {}, { priority: -1 });
  assert.match(prio.message!, /invalid priority -1/);
  const at = await spool(A.port, 'record', {}, { at: 'soon' });
  assert.match(at.message!, /invalid `at`/);
  assert.equal(count(), before);
  // a directory that cannot be written at enqueue time: the error names the errno, nothing is queued
  const tmp2 = path.join(A.dir2, 'tmp');
  fs.renameSync(tmp2, `${tmp2}.away`);
  fs.writeFileSync(tmp2, 'in the way');
  try {
    const w = await spool(A.port, 'record', { n: 'nowhere' }, { spooler: A.dir2 });
    assert.equal(w.error, 'UW_ERR_SPOOLER_WRITE');
    assert.match(w.message!, /cannot write task record to spooler .*q2: ENOTDIR; the task was not queued/);
  } finally {
    fs.unlinkSync(tmp2);
    fs.renameSync(`${tmp2}.away`, tmp2);
  }
});

test('a task naming a function the spooler does not have retries, then fails with a clear error', async () => {
  const { SpoolDir } = await import('../../plugins/spooler/queue.js');
  const { encodePacket } = await import('../../plugins/spooler/format.js');
  const id = await new SpoolDir(A.dir1).enqueue(encodePacket([['ud_spool_func', 'nobody'], ['ud_spool_ret', '-2']]), {});
  await until('failed', () => fs.existsSync(path.join(A.dir1, 'failed', id)), 5000);
  const meta = JSON.parse(fs.readFileSync(path.join(A.dir1, 'meta', `${id}.json`), 'utf8')) as { attempts: number; lastError: string };
  assert.equal(meta.attempts, 3);
  assert.match(meta.lastError, /unable to find the spooler function `nobody`: load its module into the spooler process with --import FILE or --spooler-import FILE/);
  assert.equal((await runUwcore(['spooler', 'rm', A.dir1, id])).code, 0);
});

test('a corrupt or truncated spool file is moved aside with a log line; the spooler keeps going', async () => {
  const name = 'uwsgi_spoolfile_on_test_1_1_1_1_000001';
  const old = Date.now() / 1000 - 60;
  fs.writeFileSync(path.join(A.dir1, 'tmp', name), Buffer.from([17, 200, 0, 0, 3, 0, 97]));
  fs.utimesSync(path.join(A.dir1, 'tmp', name), old, old);
  fs.renameSync(path.join(A.dir1, 'tmp', name), path.join(A.dir1, name));
  await A.r.waitFor(new RegExp(`corrupt spool file ${name} moved to .*corrupt.*truncated`), 3000);
  assert.ok(fs.existsSync(path.join(A.dir1, 'corrupt', name)));
  const res = await spool(A.port, 'record', { n: 'after-corrupt' });
  await until('next task runs', () => runs(A.log).find((x) => x.id === res.id), 3000);
});

test('a spooler killed with SIGKILL is respawned and runs the interrupted task again', async () => {
  const res = await spool(A.port, 'slow', { ms: 2000 });
  const start = await until('slow started', () => runs(A.log).find((x) => x.id === res.id && x.phase === 'start'), 3000);
  process.kill(start.pid, 'SIGKILL');
  await A.r.waitFor(new RegExp(`spooler \\d \\(pid: ${start.pid}\\) died, killed by signal SIGKILL: respawning`), 3000);
  await A.r.waitFor(/respawned spooler \d \(new pid: \d+\)/, 5000);
  await until('rerun completes', () => runs(A.log).find((x) => x.id === res.id && x.phase === 'end'), 8000);
  const rs = runs(A.log).filter((x) => x.id === res.id);
  assert.deepEqual(rs.map((x) => x.phase), ['start', 'start', 'end']);
  assert.notEqual(rs[1]!.pid, start.pid);
  await A.r.waitFor(new RegExp(`task ${res.id} was interrupted \\(spooler process ${start.pid} stopped`), 1000);
});

test('server A stops cleanly', async () => {
  assert.equal(await A.r.stop(), 0);
  assert.match(A.r.output(), /spooler on dir .*q1 \(pid \d+\) stopped after \d+ tasks?/);
});

// ---------------------------------------------------------------------------------------------

test('every task whose spool() resolved survives kill -9 of every process', async () => {
  const base = tmpDir('uwcore-spool-crash-');
  const log = path.join(base, 'runs.log');
  const dir = path.join(base, 'q');
  const s = await server(['--processes', '2', '--spooler', dir], log);
  const ids: string[] = [];
  await Promise.all(Array.from({ length: 30 }, async (_, i) => {
    const res = await spool(s.port, 'record', { n: i }, { atIn: 0.8 });
    assert.equal(res.status, 200);
    ids.push(res.id!);
  }));
  killAll(s.r);
  await s.r.exited;
  assert.equal(runs(log).length, 0);
  const s2 = await server(['--processes', '1', '--spooler', dir], log);
  await until('all 30 ran', () => runs(log).length >= 30, 8000);
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(runs(log).map((x) => x.id).sort(), ids.sort());
  assert.equal(await s2.r.stop(), 0);
});

test('SIGTERM lets the running task finish; --spooler-max-tasks recycles; --spooler-harakiri kills a stuck task', async () => {
  const base = tmpDir('uwcore-spool-b-');
  const log = path.join(base, 'runs.log');
  const dir = path.join(base, 'q');
  const s = await server(['--spooler', dir, '--spooler-max-tasks', '3', '--spooler-harakiri', '1', '--spooler-retry-delay', '0.05'], log);
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) ids.push((await spool(s.port, 'record', { n: `m${i}` })).id!);
  await until('5 ran', () => ids.every((id) => runs(log).some((x) => x.id === id)), 8000);
  await s.r.waitFor(/maximum number of tasks reached \(3\) recycling/, 2000);
  await s.r.waitFor(/spooler 1 \(pid: \d+\) finished: respawning/, 2000);
  const hang = await spool(s.port, 'hang', { until: 1 });
  await s.r.waitFor(/\*\*\* HARAKIRI ON THE SPOOLER \(pid: \d+\) \*\*\* task uwsgi_spoolfile_on_\S+ ran for more than 1 s/, 5000);
  await until('hang reran and returned', () => runs(log).filter((x) => x.id === hang.id).length === 2, 8000);
  // SIGHUP replaces the spooler process too (new code)
  const oldPid = runs(log).filter((x) => x.id === hang.id).at(-1)!.pid;
  s.r.proc.kill('SIGHUP');
  await s.r.waitFor(/spooler 1 reloaded \(new pid: \d+\)/, 8000);
  await s.r.waitFor(new RegExp(`spooler on dir .* \\(pid ${oldPid}\\) stopped after`), 8000);
  await s.r.waitFor(/worker 1 (reloaded|replaced)/, 8000);
  // graceful stop: the running task completes, exit 0, nothing left behind
  const slow = await spool(s.port, 'slow', { ms: 600 });
  await until('slow started', () => runs(log).find((x) => x.id === slow.id && x.phase === 'start'), 5000);
  assert.equal(await s.r.stop(), 0);
  assert.deepEqual(runs(log).filter((x) => x.id === slow.id).map((x) => x.phase), ['start', 'end']);
  assert.equal(fs.readdirSync(dir).filter((f) => f.startsWith('uwsgi_spoolfile_on_')).length, 0);
  assert.deepEqual(fs.readdirSync(path.join(dir, 'running')), []);
});

test('spool() without --spooler: one clear error', async () => {
  const base = tmpDir('uwcore-spool-none-');
  const s = await server([], path.join(base, 'runs.log'));
  const res = await spool(s.port, 'record', {});
  assert.equal(res.status, 500);
  assert.equal(res.error, 'UW_ERR_NOT_ENABLED');
  assert.match(res.message!, /the spooler is not enabled in this server: start uwcore with --spooler DIR/);
  await s.r.stop();
});

test('a spooler directory that cannot be created or written stops startup with one line', async () => {
  const base = tmpDir('uwcore-spool-bad-');
  fs.writeFileSync(path.join(base, 'file'), 'x');
  const r = await runUwcore(['--http', '127.0.0.1:0', '--spooler', path.join(base, 'file', 'q')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /UW_ERR_SPOOLER_DIR.*spooler directory .*file\/q cannot be used \(--spooler\): cannot create .*ENOTDIR/);
  if (process.getuid?.() !== 0) {
    fs.mkdirSync(path.join(base, 'ro'), { mode: 0o500 });
    const r2 = await runUwcore(['--http', '127.0.0.1:0', '--spooler', path.join(base, 'ro')]);
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /UW_ERR_SPOOLER_DIR.*cannot be written/);
  }
  const r4 = await runUwcore(['--http', '127.0.0.1:0', '--spooler', path.join(base, 'q'), '--spooler-import', path.join(base, 'nothere.js')]);
  assert.equal(r4.code, 1);
  assert.match(r4.stderr, /UW_ERR_APP_NOT_FOUND: module .*nothere\.js not found \(--spooler-import\)/);
  const r3 = await runUwcore(['spooler', 'ls', path.join(base, 'missing')]);
  assert.equal(r3.code, 2);
  assert.match(r3.stderr, /is not a spool directory/);
});

// ---------------------------------------------------------------------------------------------
// interoperability

test('the seed example through nginx (uwsgi_pass)', async (t) => {
  if (findNginx() === null) { t.skip(NGINX_MISSING); return; }
  const dir = tmpDir('uwcore-spool-nginx-');
  for (const f of ['app.js', 'tasks.js']) fs.copyFileSync(path.join(ROOT, 'examples/spooler', f), path.join(dir, f));
  const up = await freePort();
  const ini = fs.readFileSync(path.join(ROOT, 'examples/spooler/uwsgi-config.ini'), 'utf8')
    .replace(/^http = .*$/m, `uwsgi-socket = 127.0.0.1:${up}`);
  fs.writeFileSync(path.join(dir, 'uwsgi-config.ini'), ini);
  const r = await startUwcore([path.join(dir, 'uwsgi-config.ini')], { cwd: dir });
  running.push(r);
  await r.waitFor(/spawned the uwcore spooler on dir/);
  const ngx = await startNginx({ '/': `127.0.0.1:${up}` });
  try {
    const res = await httpGet(ngx.port, '/');
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), 'Hello World');
    const res2 = await httpGet(ngx.port, '/');
    assert.equal(res2.body.toString(), 'Hello World');
    await until('two Send email lines', () => r.output().split('\n').filter((l) => l === 'Send email to someone@no.spam').length >= 2, 5000);
  } finally {
    await ngx.stop();
  }
  assert.equal(await r.stop(), 0);
});

test('uWSGI 2.0\'s own spooler runs a task file written by uwcore', async (t) => {
  if (spawnSync('uwsgi', ['--plugin', 'python3', '--version']).status !== 0) { t.skip('uwsgi with the python3 plugin is not installed'); return; }
  const base = tmpDir('uwcore-spool-uwsgi-');
  const dir = path.join(base, 'q');
  const out = path.join(base, 'out.txt');
  fs.writeFileSync(path.join(base, 'spool.py'), [
    'import uwsgi, json, os',
    'def handler(env):',
    "    with open(os.environ['OUT'], 'a') as f:",
    "        f.write(json.dumps({(k.decode() if isinstance(k, bytes) else k): (v.decode('latin1') if isinstance(v, bytes) else v) for k, v in env.items()}) + '\\n')",
    '    return uwsgi.SPOOL_OK',
    'uwsgi.spooler = handler', ''].join('\n'));
  const { SpoolDir } = await import('../../plugins/spooler/queue.js');
  const { encodePacket, argsToVars } = await import('../../plugins/spooler/format.js');
  const s = SpoolDir.prepare(dir);
  const { vars, json } = argsToVars({ email_address: 'someone@no.spam', n: 7 });
  const id = await s.enqueue(encodePacket([...vars, ['ud_spool_func', 'send_email'], ['ud_spool_ret', '-2'], ['uwcore_json', JSON.stringify(json)], ['uwcore_body_size', '5']], Buffer.from('hello')), {});
  const port = await freePort();
  const u = spawn('uwsgi', ['--plugin', 'python3', '--master', '--die-on-term', '--spooler', dir, '--spooler-frequency', '1', '--pyimport', path.join(base, 'spool.py'), '--http-socket', `127.0.0.1:${port}`],
    { cwd: base, env: { ...process.env, OUT: out }, stdio: 'ignore', detached: true });
  try {
    const line = await until('uWSGI ran the task', () => { try { return fs.readFileSync(out, 'utf8').split('\n')[0] || null; } catch { return null; } }, 10_000);
    const got = JSON.parse(line) as Record<string, string>;
    assert.equal(got.spooler_task_name, id);
    assert.equal(got.email_address, 'someone@no.spam');
    assert.equal(got.n, '7');
    assert.equal(got.ud_spool_func, 'send_email');
    assert.equal(got.body, 'hello');
    await until('uWSGI deleted it', () => !fs.existsSync(path.join(dir, id)), 3000);
  } finally {
    // uWSGI runs in its own process group: end it with its spooler and worker
    try { process.kill(-u.pid!, 'SIGKILL'); } catch { /* gone */ }
  }
});
