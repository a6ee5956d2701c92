// The spooler process alone on a directory runs tasks in place (no claim rename), naming them in
// running/<pid>/.current: an interrupted run still counts as an attempt (a task that kills its process
// every time ends up in failed/), `spooler ls` shows the running task, and a second server on the same
// directory never runs a task the first one runs (the two hand over, then both claim by rename).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { encodePacket, newTaskId } from '../../plugins/spooler/format.js';
import { SpoolDir } from '../../plugins/spooler/queue.js';
import { runs, until } from '../helpers/spool.js';
import { ROOT, freePort, httpGet, runUwcore, startUwcore, tmpDir, type Running } from '../helpers/server.js';

const FIX = path.join(ROOT, 'test/plugins/fixtures/spooler');
const running: Running[] = [];
after(async () => { for (const r of running) await r.stop('SIGKILL').catch(() => undefined); });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function server(dir: string, log: string, extra: string[] = []): Promise<{ r: Running; port: number }> {
  const port = await freePort();
  const r = await startUwcore(['--http', `127.0.0.1:${port}`, '--app', path.join(FIX, 'app.js'), '--import', path.join(FIX, 'tasks.js'),
    '--reload-mercy', '3', '--spooler', dir, ...extra], { env: { SPOOL_TEST_LOG: log } });
  running.push(r);
  await r.waitFor(/spawned the uwcore spooler on dir/);
  return { r, port };
}

async function spool(port: number, fn: string, args: Record<string, unknown> = {}): Promise<string> {
  const res = await httpGet(port, `/?fn=${fn}&args=${encodeURIComponent(JSON.stringify(args))}`);
  assert.equal(res.status, 200, res.body.toString());
  return (JSON.parse(res.body.toString()) as { id: string }).id;
}

test('alone: ls shows the task running in place; a task that kills its spooler every time ends up in failed/', async () => {
  const base = tmpDir('uwcore-spool-alone-');
  const log = path.join(base, 'runs.log');
  const dir = path.join(base, 'q');
  const s = await server(dir, log, ['--spooler-retry-delay', '0.05', '--spooler-max-retries', '2']);
  const slow = await spool(s.port, 'slow', { ms: 5000 });
  const start = await until('slow started', () => runs(log).find((x) => x.id === slow && x.phase === 'start'));
  const owner = path.join(dir, 'running', String(start.pid));
  assert.ok(fs.existsSync(path.join(owner, '.current')), 'the only spooler runs tasks in place');
  assert.ok(fs.existsSync(path.join(dir, slow)), 'the task stays in the queue while it runs');
  const out = await runUwcore(['spooler', 'ls', dir]);
  assert.match(out.stdout, /0 queued, 0 scheduled, 1 running, 0 failed/);
  assert.match(out.stdout, new RegExp(`running \\(pid ${start.pid}\\)\\s+${slow}\\s+slow`));
  const rm = await runUwcore(['spooler', 'rm', dir, slow]);
  assert.equal(rm.code, 1);
  assert.match(rm.stderr, /UW_ERR_SPOOLER_RUNNING/);
  await until('slow done', () => runs(log).find((x) => x.id === slow && x.phase === 'end'));

  const bad = await spool(s.port, 'suicide');
  await until('suicide in failed/', () => fs.existsSync(path.join(dir, 'failed', bad)), 20_000);
  assert.deepEqual(runs(log).filter((x) => x.id === bad).map((x) => x.attempt), [1, 2, 3]);
  // (a line logged just before the task kills the process again may be lost with the process's stdout)
  await until('the last interrupted run logged', () => s.r.output().includes(`task ${bad} was interrupted`), 3000);
  const meta = JSON.parse(fs.readFileSync(path.join(dir, 'meta', `${bad}.json`), 'utf8')) as { attempts: number; lastError: string };
  assert.equal(meta.attempts, 3);
  assert.match(meta.lastError, /interrupted/);
  // the next task runs normally, once
  const ok = await spool(s.port, 'record', { n: 'after' });
  await until('next task ran', () => runs(log).find((x) => x.id === ok));
  await sleep(200);
  assert.equal(runs(log).filter((x) => x.id === ok).length, 1);
  assert.equal(await s.r.stop(), 0);
  assert.deepEqual(fs.readdirSync(path.join(dir, 'running')), []);
});

test('a second server on the same directory while the first drains: every task runs once', async () => {
  const base = tmpDir('uwcore-spool-two-');
  const log = path.join(base, 'runs.log');
  const dir = path.join(base, 'q');
  SpoolDir.prepare(dir);
  const ids: string[] = [];
  for (let i = 0; i < 400; i++) {
    const id = newTaskId();
    fs.writeFileSync(path.join(dir, id), encodePacket([['n', String(i)], ['ms', '4'], ['ud_spool_func', 'record'], ['ud_spool_ret', '-2']]), { mode: 0o600 });
    ids.push(id);
  }
  const a = await server(dir, log);
  await until('A started', () => runs(log).length > 0);
  const b = await server(dir, log);
  await until('all ran', () => new Set(runs(log).map((x) => x.id)).size >= ids.length, 30_000);
  await sleep(300);
  const all = runs(log).map((x) => x.id);
  assert.equal(all.length, new Set(all).size, 'no task ran twice');
  assert.deepEqual([...new Set(all)].sort(), ids.sort());
  const pids = new Set(runs(log).map((x) => x.pid));
  process.stdout.write(`# ${pids.size} spooler processes ran the 400 tasks\n`);
  assert.equal(await b.r.stop(), 0);
  assert.equal(await a.r.stop(), 0);
  assert.deepEqual(fs.readdirSync(path.join(dir, 'running')), []);
});
