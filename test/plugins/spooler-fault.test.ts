// The spooler's fault test (issue 8): 2,000 tasks enqueued from two workers while spooler processes are
// killed with SIGKILL at random moments and the master is restarted twice (once killed, once stopped):
// every task whose spool() resolved runs at least once, none is lost. Without crashes, none runs twice.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, freePort, httpGet, startUwcore, tmpDir, type Running } from '../helpers/server.js';

const FIX = path.join(ROOT, 'test/plugins/fixtures/spooler');
const running: Running[] = [];
after(async () => { for (const r of running) await r.stop('SIGKILL').catch(() => undefined); });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function runIds(log: string): string[] {
  try { return fs.readFileSync(log, 'utf8').split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { id: string }).id); } catch { return []; }
}

function pending(dir: string): number {
  let n = 0;
  const count = (d: string) => { try { for (const f of fs.readdirSync(d)) if (f.startsWith('uwsgi_spoolfile_on_')) n++; } catch { /* none */ } };
  count(dir);
  for (const e of fs.readdirSync(dir)) if (/^\d+$/.test(e)) count(path.join(dir, e));
  for (const p of fs.readdirSync(path.join(dir, 'running'))) count(path.join(dir, 'running', p));
  return n;
}

async function start(args: string[], log: string): Promise<{ r: Running; port: number }> {
  const port = await freePort();
  const r = await startUwcore(['--http', `127.0.0.1:${port}`, '--app', path.join(FIX, 'app.js'), '--import', path.join(FIX, 'tasks.js'),
    '--processes', '2', '--reload-mercy', '2', '--worker-reload-mercy', '2', ...args], { env: { SPOOL_TEST_LOG: log } });
  running.push(r);
  await r.waitFor(/spawned the uwcore spooler on dir/);
  return { r, port };
}

/** Enqueue `record` tasks with `conc` clients until `ids` holds `target` ids. */
async function enqueue(port: number, ids: Set<string>, workers: Set<number>, target: number, ms = 0, conc = 12): Promise<void> {
  let n = ids.size;
  await Promise.all(Array.from({ length: conc }, async () => {
    while (ids.size < target) {
      try {
        const res = await httpGet(port, `/?fn=record&args=${encodeURIComponent(JSON.stringify({ n: String(n++), ...(ms ? { ms } : {}) }))}`);
        if (res.status !== 200) continue;
        const o = JSON.parse(res.body.toString()) as { id: string; worker: number };
        ids.add(o.id);
        workers.add(o.worker);
      } catch { /* the server is being killed */ }
    }
  }));
}

/** Live spooler processes that have run for 2 s at least (younger ones count as dying at startup and
 *  would make the master back off, which only slows the test down). */
function spoolerPids(r: Running): number[] {
  const out = new Map<number, number>();
  for (const m of r.output().matchAll(/"time":(\d+),"pid":(\d+)[^\n]*with pid \d+"/g)) out.set(Number(m[2]), Number(m[1]));
  return [...out].filter(([p, t]) => {
    if (Date.now() - t < 2100) return false;
    try { return fs.readFileSync(`/proc/${p}/cmdline`, 'latin1').startsWith('uwcore spooler'); } catch { return false; }
  }).map(([p]) => p);
}

test('fault test: 2,000 tasks, spoolers SIGKILLed at random, master restarted twice: none lost', async () => {
  const base = tmpDir('uwcore-spool-fault-');
  const log = path.join(base, 'runs.log');
  const dir = path.join(base, 'q');
  const args = ['--spooler', dir, '--spooler-processes', '2', '--spooler-frequency', '0.2', '--spooler-retry-delay', '0.02', '--spooler-max-retries', '1000'];
  const ids = new Set<string>();
  const workers = new Set<number>();
  const TOTAL = 2000;
  let kills = 0;
  let interrupted = 0;
  let last: Running | null = null;
  const t0 = Date.now();
  for (let m = 0; m < 3; m++) {
    const s = await start(args, log);
    process.stdout.write(`# master ${m + 1} up at ${Date.now() - t0} ms\n`);
    last = s.r;
    let killing = true;
    const killsBefore = kills;
    const killer = (async () => {
      while (killing) {
        await sleep(10 + Math.random() * 100);
        // mostly kill a spooler in the middle of a task (it has a file in running/<pid>)
        const alive = spoolerPids(s.r);
        const busy = alive.filter((p) => { try { return fs.readdirSync(path.join(dir, 'running', String(p))).length > 0; } catch { return false; } });
        const pids = busy.length || Math.random() < 0.7 ? busy : alive;
        if (!pids.length || !killing) continue;
        try { process.kill(pids[Math.floor(Math.random() * pids.length)]!, 'SIGKILL'); kills++; } catch { /* gone */ }
      }
    })();
    // each task takes ~10 ms, so the spoolers are busy and the kills land in the middle of runs
    await enqueue(s.port, ids, workers, Math.round((TOTAL * (m + 1)) / 3), 10);
    const until = Date.now() + 8000;
    while (kills - killsBefore < 2 && Date.now() < until) await sleep(50);
    killing = false;
    await killer;
    if (m < 2) interrupted += (s.r.output().match(/was interrupted/g) ?? []).length;
    process.stdout.write(`# master ${m + 1}: ${ids.size} ids at ${Date.now() - t0} ms, ${kills} spooler kills\n`);
    if (m === 0) { s.r.proc.kill('SIGKILL'); await s.r.exited; } // the master dies
    else if (m === 1) assert.equal(await s.r.stop(), 0); // the master is restarted gracefully
  }
  assert.ok(ids.size >= TOTAL, `${ids.size} ids`);
  assert.ok(kills >= 6, `only ${kills} spooler kills`);
  assert.deepEqual([...workers].sort(), [1, 2], 'both workers enqueued');
  const deadline = Date.now() + 60_000;
  let missing: string[] = [];
  for (;;) {
    const ran = new Set(runIds(log));
    missing = [...ids].filter((id) => !ran.has(id));
    if (missing.length === 0 && pending(dir) === 0) break;
    if (Date.now() > deadline) break;
    await sleep(100);
  }
  assert.deepEqual(missing.slice(0, 5), [], `${missing.length} of ${ids.size} tasks never ran; ${pending(dir)} still pending`);
  assert.deepEqual(fs.readdirSync(path.join(dir, 'failed')), []);
  assert.deepEqual(fs.readdirSync(path.join(dir, 'corrupt')), []);
  process.stdout.write(`# all ran at ${Date.now() - t0} ms\n`);
  interrupted += (last!.output().match(/was interrupted/g) ?? []).length;
  assert.ok(interrupted >= 1, 'no kill interrupted a running task');
  const all = runIds(log);
  const dup = all.length - new Set(all).size;
  process.stdout.write(`# fault test: ${ids.size} tasks, ${kills} spooler kills (${interrupted} interrupted runs re-run), 2 master restarts, ${dup} duplicate completions\n`);
  assert.equal(await last!.stop(), 0);
});

test('without crashes no task runs twice', async () => {
  const base = tmpDir('uwcore-spool-once-');
  const log = path.join(base, 'runs.log');
  const dir = path.join(base, 'q');
  const s = await start(['--spooler', dir, '--spooler-processes', '2', '--spooler-frequency', '0.2'], log);
  const ids = new Set<string>();
  await enqueue(s.port, ids, new Set(), 600);
  const deadline = Date.now() + 30_000;
  while (runIds(log).length < ids.size && Date.now() < deadline) await sleep(50);
  await sleep(300);
  const all = runIds(log);
  assert.equal(all.length, ids.size);
  assert.deepEqual([...new Set(all)].sort(), [...ids].sort());
  assert.equal(pending(dir), 0);
  assert.equal(await s.r.stop(), 0);
});
