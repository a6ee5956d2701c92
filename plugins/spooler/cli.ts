// `uwcore spooler ls|retry|rm DIR ...`: look at and manage a spool directory from the shell. It works on
// the files alone, so it works whether or not a server is running (a running spooler sees a retried
// task at once through its directory watch).
import fs from 'node:fs';
import path from 'node:path';
import { summarizeArgs } from './format.js';
import { SpoolDir, ownerAlive, type TaskEntry } from './queue.js';

const USAGE = `Usage: uwcore spooler ls DIR [--json]          list queued, scheduled, running and failed tasks
       uwcore spooler retry DIR ID... | --all   run failed or scheduled tasks again now (attempts reset)
       uwcore spooler rm DIR ID...              delete tasks (not while they run)
`;

function when(ms: number | undefined): string {
  if (!ms) return '-';
  const d = Math.round((ms - Date.now()) / 1000);
  const iso = new Date(ms).toISOString().replace('T', ' ').slice(0, 19);
  return d > 0 ? `${iso} (in ${d}s)` : iso;
}

function describe(s: SpoolDir, t: TaskEntry) {
  let fn = '?';
  let args = '';
  try {
    const p = s.readPacket(t.file);
    fn = p.vars.get('ud_spool_func') ?? '?';
    args = summarizeArgs(p);
  } catch (e) { args = `(unreadable: ${(e as Error).message})`; }
  const m = s.readMeta(t.id);
  return {
    state: t.state, id: t.id, function: fn, args, priority: t.priority, attempts: m?.attempts ?? 0,
    next_run: t.state === 'queued' || t.state === 'scheduled' ? t.runAt : null, pid: t.pid ?? null,
    pid_alive: t.pid && t.owner ? ownerAlive(t.owner, t.pid) : null, last_error: m?.lastError ?? null, failed_at: m?.failedAt ?? null,
  };
}

function open(dir: string | undefined, out: NodeJS.WritableStream): SpoolDir | null {
  if (!dir) { out.write(USAGE); return null; }
  const abs = path.resolve(dir);
  try { if (!fs.statSync(abs).isDirectory()) throw new Error(); } catch {
    process.stderr.write(`uwcore: UW_ERR_SPOOLER_DIR: ${abs} is not a spool directory (give the DIR of --spooler DIR)\n`);
    return null;
  }
  return new SpoolDir(abs);
}

export default async function spoolerCommand(argv: string[]): Promise<number> {
  const [cmd, dir, ...rest] = argv;
  if (!cmd) { process.stderr.write(USAGE); return 2; }
  if (cmd === '--help' || cmd === '-h' || cmd === 'help') { process.stdout.write(USAGE); return 0; }
  if (!['ls', 'list', 'retry', 'rm'].includes(cmd)) { process.stderr.write(`uwcore: unknown spooler command ${JSON.stringify(cmd)}\n${USAGE}`); return 2; }
  const s = open(dir, process.stderr);
  if (!s) return 2;
  if (cmd === 'ls' || cmd === 'list') {
    const tasks = s.listAll().map((t) => describe(s, t));
    if (rest.includes('--json')) { process.stdout.write(JSON.stringify(tasks, null, 1) + '\n'); return 0; }
    const counts = { queued: 0, scheduled: 0, running: 0, failed: 0 };
    for (const t of tasks) counts[t.state]++;
    process.stdout.write(`${s.dir}: ${counts.queued} queued, ${counts.scheduled} scheduled, ${counts.running} running, ${counts.failed} failed\n`);
    if (tasks.length) {
      const rows = [['STATE', 'ID', 'FUNCTION', 'ARGS', 'ATTEMPTS', 'NEXT RUN', 'LAST ERROR']];
      for (const t of tasks) {
        rows.push([
          t.state === 'running' ? `running (pid ${t.pid}${t.pid_alive ? '' : ', dead'})` : t.priority !== null ? `${t.state} (p${t.priority})` : t.state,
          t.id, t.function, t.args || '-', String(t.attempts), t.next_run ? when(t.next_run) : '-', t.last_error ?? '-',
        ]);
      }
      const widths = rows[0]!.map((_, i) => Math.min(i === 6 ? 200 : 80, Math.max(...rows.map((r) => r[i]!.length))));
      for (const r of rows) process.stdout.write(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd() + '\n');
    }
    return 0;
  }
  const all = rest.includes('--all');
  const ids = rest.filter((a) => !a.startsWith('--'));
  if (!ids.length && !(cmd === 'retry' && all)) { process.stderr.write(`uwcore: give the task ID(s) to ${cmd} (uwcore spooler ls ${dir} shows them)\n`); return 2; }
  const targets: TaskEntry[] = [];
  let code = 0;
  if (all) targets.push(...s.listFailed(), ...s.listQueued().filter((t) => t.state === 'scheduled'));
  for (const id of ids) {
    const t = s.find(path.basename(id));
    if (!t) { process.stderr.write(`uwcore: UW_ERR_SPOOLER_NO_TASK: no task ${id} in ${s.dir}\n`); code = 1; continue; }
    targets.push(t);
  }
  for (const t of targets) {
    if (t.state === 'running' && t.pid && t.owner && ownerAlive(t.owner, t.pid)) {
      process.stderr.write(`uwcore: UW_ERR_SPOOLER_RUNNING: task ${t.id} is running in spooler process ${t.pid}; wait for it (or kill that process: the task is then retried)\n`);
      code = 1;
      continue;
    }
    if (cmd === 'rm') {
      try { fs.unlinkSync(t.file); } catch (e) { process.stderr.write(`uwcore: cannot remove ${t.file}: ${(e as NodeJS.ErrnoException).code}\n`); code = 1; continue; }
      s.removeMeta(t.id);
      process.stdout.write(`removed ${t.id} (${t.state})\n`);
      continue;
    }
    // retry: back to the queue, runnable now, attempts reset (the last error is kept for reference)
    let prio: string | number | null = t.priority;
    try { const p = s.readPacket(t.file).vars.get('priority'); if (p !== undefined && /^\d{1,10}$/.test(p)) prio = p; } catch { /* corrupt: the spooler moves it aside */ }
    const q = t.state === 'queued' || t.state === 'scheduled' ? path.dirname(t.file) : s.queueDir(prio);
    const m = s.readMeta(t.id);
    try {
      if (m) s.writeMeta(t.id, { attempts: 0, ...(m.lastError ? { lastError: m.lastError } : {}) });
      const now = Date.now() / 1000;
      fs.utimesSync(t.file, now, now);
      fs.mkdirSync(q, { recursive: true, mode: 0o750 });
      if (t.file !== path.join(q, t.id)) fs.renameSync(t.file, path.join(q, t.id));
      const fd = fs.openSync(q, 'r'); fs.fsyncSync(fd); fs.closeSync(fd);
    } catch (e) { process.stderr.write(`uwcore: cannot requeue ${t.id}: ${(e as Error).message}\n`); code = 1; continue; }
    process.stdout.write(`requeued ${t.id} (was ${t.state})\n`);
  }
  return code;
}
