// The loop of one spooler process: scan the directory (priority dirs first, oldest first), run each
// task, then delete it (done), put it back with a later mtime (retry, backing off), or move it to
// failed/. The only spooler process on a directory runs a task where it lies, naming it in
// running/<pid>/.current; where several share the directory, each claims a task first by renaming it into
// running/<pid>/ (only one process can win); see Runner.mode. A new file wakes the loop at once
// (fs.watch); the scan interval is only a fallback. Tasks a process that died was running are recovered
// (claimed, counted as an attempt, put back) at startup and whenever the loop scans.
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../../sdk/index.js';
import { CorruptSpoolFile, SPOOL_IGNORE, SPOOL_OK, SPOOL_RETRY, decodePacket, isTaskName, varsToArgs, type Packet } from './format.js';
import { CURRENT_FILE, OWNER_FILE, SpoolDir, ownerAlive, procStart, readCurrent, type Meta, type TaskEntry } from './queue.js';

export type TaskKind = 'spool' | 'raw' | 'forever';
export interface TaskContext {
  id: string; name: string; attempt: number; dir: string; priority: number | null; at: number | null;
  signal: AbortSignal; log: Logger;
}
export type TaskFn = (args: Record<string, unknown>, ctx: TaskContext) => unknown;

export interface RunnerOptions {
  frequencyMs: number;
  maxTasks: number;
  retryDelayMs: number;
  maxRetries: number;
}

export interface RunnerReport { done: number; failed: number; retried: number; running: string | null }

/** The context a task function receives; its logger is made on first use (most tasks never log). */
class Context implements TaskContext {
  #log: Logger | null = null;
  readonly #parent: Logger;
  constructor(
    readonly id: string, readonly name: string, readonly attempt: number, readonly dir: string,
    readonly priority: number | null, readonly at: number | null, readonly signal: AbortSignal, parent: Logger,
  ) { this.#parent = parent; }
  get log(): Logger { return (this.#log ??= this.#parent.child({ task: this.id })); }
}

/** A task whose function is running: what its outcome needs. */
interface Run {
  t: TaskEntry;
  /** where its file is: in running/<pid>/, or in the queue (inPlace) */
  file: string;
  inPlace: boolean;
  p: Packet;
  name: string;
  kind: TaskKind;
  meta: Meta | null;
  attempt: number;
  started: number;
}

const RET_SPOOL = String(SPOOL_OK);
const RET_FOREVER = String(SPOOL_RETRY);

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return (typeof v === 'object' || typeof v === 'function') && v !== null && typeof (v as PromiseLike<unknown>).then === 'function';
}

/** What a task function's return value means: null when it succeeded, else why it is retried. */
function judge(kind: TaskKind, r: unknown): string | null {
  if (kind === 'raw') {
    if (r === SPOOL_OK) return null;
    return r === SPOOL_RETRY ? 'returned SPOOL_RETRY' : r === SPOOL_IGNORE ? 'returned SPOOL_IGNORE (not handled)' : `returned ${typeof r === 'number' ? r : typeof r} instead of SPOOL_OK`;
  }
  if (r === SPOOL_RETRY) return 'returned SPOOL_RETRY';
  if (r === SPOOL_IGNORE && kind === 'spool') return 'returned SPOOL_IGNORE (not handled)';
  return null;
}

/** How a spooler process takes the tasks of a scan (see Runner.mode):
 *  'alone': it is the only spooler process on the directory: it runs each task where it lies;
 *  'claim': others share the directory: it claims each task by renaming it into running/<pid>/;
 *  'wait': another process still runs tasks alone (it has not seen this one yet): take none. */
type Mode = 'alone' | 'claim' | 'wait';

const MAX_BACKOFF = 3600_000;
/** how often a process running tasks alone looks for a newcomer between tasks (ms) */
const ALONE_CHECK_MS = 100;
/** how often a waiting process looks again (ms) */
const WAIT_MS = 20;
/** .current names the next tasks to run in place, up to this many (and NAMED_BYTES of names) at a time */
const NAMED_MAX = 32;
const NAMED_BYTES = 3500;
/** completed task files kept in free/ for writers to reuse (see SpoolDir.enqueue) */
const FREE_KEEP = 1024;

export class Runner {
  private readonly mine: string;
  private readonly pidName = String(process.pid);
  /** running/<pid>/.current, open while this process runs tasks alone (in place) */
  private readonly currentFile: string;
  private currentFd: number | null = null;
  /** the tasks .current names, in the order they run, and the index of the one running (or next) */
  private named: TaskEntry[] = [];
  private namedPos = 0;
  /** when the mode was last decided (performance.now()) */
  private modeAt = 0;
  done = 0;
  failed = 0;
  retried = 0;
  current: string | null = null;
  private dirty = false;
  private wake: (() => void) | null = null;
  private readonly watchers = new Map<string, fs.FSWatcher>();
  private lastRecover = 0;
  /** files that looked half-written (another writer): skipped until this time */
  private readonly skipUntil = new Map<string, number>();
  /** tasks this process took (claimed or ran in place) whose departure from the queue (or change, when
   *  it stays) the directory watch has not reported yet */
  private readonly takenNames = new Set<string>();
  /** ids that had a bookkeeping file in meta/ at the last scan (read after the queue: a queued task's
   *  bookkeeping is always written before the task is put back in the queue) */
  private metaIds = new Set<string>();
  private readonly debug: boolean;
  /** task files are read into this (see read()) */
  private readonly readBuf = Buffer.allocUnsafeSlow(64 * 1024);

  constructor(
    private readonly spool: SpoolDir,
    private readonly lookup: (name: string) => { fn: TaskFn; kind: TaskKind } | undefined,
    private readonly opts: RunnerOptions,
    private readonly log: Logger,
    private readonly signal: AbortSignal,
    private readonly onChange: () => void,
  ) {
    this.mine = path.join(spool.running, this.pidName);
    this.currentFile = path.join(this.mine, CURRENT_FILE);
    this.debug = log.isLevelEnabled('debug');
  }

  private poke = (_ev?: string, name?: string | Buffer | null, d?: string): void => {
    if (name && d) {
      if (this.dirty) return; // a rescan is due anyway
      // an event also fires when a task leaves (taken, completed) or is put back: only arrivals matter
      const n = String(name);
      if (this.takenNames.delete(n) || !fs.existsSync(path.join(d, n))) return;
    }
    this.dirty = true;
    const w = this.wake;
    if (w) { this.wake = null; w(); }
  };

  private watch(d: string, onEvent: (ev: string, name: string | Buffer | null) => void = (ev, name) => this.poke(ev, name, d)): void {
    if (this.watchers.has(d)) return;
    try {
      const w = fs.watch(d, { persistent: false }, onEvent);
      w.on('error', () => { this.watchers.delete(d); });
      this.watchers.set(d, w);
    } catch { /* no inotify: the scan interval still finds new tasks */ }
  }

  /** Run until the signal aborts (after the current task) or --spooler-max-tasks is reached. */
  async run(): Promise<'stopped' | 'recycle'> {
    fs.mkdirSync(this.mine, { recursive: true, mode: 0o750 });
    this.recover(true);
    this.spool.countFree();
    fs.writeFileSync(path.join(this.mine, OWNER_FILE), `${procStart(process.pid) ?? ''}\n`);
    this.housekeeping();
    this.watch(this.spool.dir);
    // a spooler process appearing (its running/<pid>/): one running alone must hand over
    this.watch(this.spool.running, () => { if (this.currentFd !== null) this.poke(); });
    this.signal.addEventListener('abort', () => this.poke(), { once: true });
    let mode: Mode = 'claim';
    try {
      for (;;) {
        if (this.signal.aborted) return 'stopped';
        const now = Date.now();
        if (now - this.lastRecover > (mode === 'wait' ? 5 * WAIT_MS : 1000)) { this.recover(false); this.spool.countFree(); }
        const t0 = performance.now();
        this.dirty = false;
        if (this.takenNames.size > 10_000) this.takenNames.clear();
        mode = this.mode();
        const list = mode === 'wait' ? [] : this.spool.listQueued(now, (d) => this.watch(d));
        this.metaIds = this.spool.metaIds();
        const scanMs = performance.now() - t0;
        let nextAt = mode === 'wait' ? Date.now() + WAIT_MS : Infinity;
        let ran = 0;
        const batchStart = performance.now();
        for (let i = 0; i < list.length; i++) {
          const t = list[i]!;
          if (this.signal.aborted) return 'stopped';
          if (t.state === 'scheduled') { nextAt = Math.min(nextAt, t.runAt); continue; }
          const skip = this.skipUntil.get(t.id);
          if (skip !== undefined) {
            if (skip > Date.now()) { nextAt = Math.min(nextAt, skip); continue; }
            this.skipUntil.delete(t.id);
          }
          if (mode === 'alone' && performance.now() - this.modeAt > ALONE_CHECK_MS && (mode = this.mode()) === 'wait') break;
          let file = t.file;
          if (mode === 'claim') {
            file = path.join(this.mine, t.id);
            try { fs.renameSync(t.file, file); } catch { continue; } // another process took it
          }
          else if (this.named[this.namedPos] !== t) this.name(list, i);
          this.takenNames.add(t.id);
          const pending = this.execute(t, file);
          if (pending) await pending;
          this.namedPos++;
          ran++;
          if (this.opts.maxTasks > 0 && this.done + this.failed + this.retried >= this.opts.maxTasks) {
            this.log.info(`maximum number of tasks reached (${this.opts.maxTasks}) recycling ...`);
            return 'recycle';
          }
          // a new task arrived: rescan (for its priority) when this batch has run long enough
          if (this.dirty && performance.now() - batchStart > Math.max(100, 10 * scanMs)) break;
        }
        this.unname();
        if (ran > 0 || this.dirty) continue;
        // idle: sleep until a new file, the next scheduled task, the scan interval or the stop signal
        const wait = Math.max(0, Math.min(this.opts.frequencyMs, nextAt - Date.now()));
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => { this.wake = null; resolve(); }, wait);
          this.wake = () => { clearTimeout(timer); resolve(); };
        });
      }
    } finally {
      for (const w of this.watchers.values()) w.close();
      this.watchers.clear();
      this.leaveAlone();
      try { fs.rmSync(path.join(this.mine, OWNER_FILE), { force: true }); fs.rmdirSync(this.mine); } catch { /* a task is still in it: recovered later */ }
    }
  }

  /** Decide how to take the tasks of the next scan. A process is alone when running/ holds no other
   *  process's directory; it then runs each task in place, named in running/<pid>/.current. The
   *  handshake that keeps two processes from running one task:
   *   * every process creates running/<pid>/ before it first decides, and keeps it while it lives (a dead
   *     one's is removed only by recover(), after its tasks were put back);
   *   * to become alone, a process creates .current, then lists running/ again: another process there
   *     means it is not alone (it removes .current). So of two processes starting together at least one
   *     sees the other: the later lister sees the earlier's directory;
   *   * a process that is not alone takes no task while another's .current exists ('wait'): that process
   *     may be running tasks in place; it sees the newcomer's directory at its next check (between tasks,
   *     at least every ALONE_CHECK_MS, and at once when idle through the watch on running/), removes its
   *     .current and claims tasks by rename from then on, like everyone else;
   *   * a process that dies while alone leaves .current naming the task it was running (the first named
   *     still in the queue): recover() claims that task and counts the interrupted run, then removes the
   *     directory.
   *  Directories of dead processes count as others until recovered: that costs speed, never safety. */
  private mode(): Mode {
    this.modeAt = performance.now();
    let others = this.others();
    if (others.length === 0 && this.currentFd === null) {
      try { this.currentFd = fs.openSync(this.currentFile, 'w', 0o600); } catch { return 'claim'; }
      others = this.others();
    }
    if (others.length === 0) return 'alone';
    this.leaveAlone();
    for (const o of others) if (fs.existsSync(path.join(this.spool.running, o, CURRENT_FILE))) return 'wait';
    return 'claim';
  }

  /** the directories of the other spooler processes in running/ (live, or dead and not yet recovered) */
  private others(): string[] {
    let names: string[];
    try { names = fs.readdirSync(this.spool.running); } catch { return ['?']; } // unknown: not alone
    return names.filter((n) => n !== this.pidName && /^\d+$/.test(n));
  }

  private leaveAlone(): void {
    if (this.currentFd === null) return;
    try { fs.closeSync(this.currentFd); } catch { /* closed */ }
    this.currentFd = null;
    this.named = [];
    try { fs.unlinkSync(this.currentFile); } catch { /* gone */ }
  }

  /** Name in .current the tasks about to run in place, `t` first, then those after it in `list` that
   *  the loop will run (queued, not set aside): one pwrite for up to NAMED_MAX tasks. The loop runs them
   *  in this order, and each either leaves the queue (completed, failed/, corrupt/) or is dropped from
   *  the names (unname) before the next runs: so the first named task still in the queue is the one
   *  running, or the next to run (see recoverCurrent). */
  private name(list: TaskEntry[], from: number): void {
    const now = Date.now();
    const named = [list[from]!];
    let bytes = 0;
    for (let i = from + 1; i < list.length && named.length < NAMED_MAX && bytes < NAMED_BYTES; i++) {
      const n = list[i]!;
      if (n.state !== 'queued' || (this.skipUntil.get(n.id) ?? 0) > now) continue;
      named.push(n);
      bytes += n.id.length + 12;
    }
    this.writeNames(named);
  }

  /** .current names no task any more (between scans), or no longer the one running now (it stays in
   *  the queue: retried, forever, set aside), only those after it. */
  private unname(id?: string): void {
    if (this.currentFd === null || this.named.length === 0) return;
    if (id === undefined) { this.writeNames([]); return; }
    if (this.named[this.namedPos]?.id !== id) return;
    this.writeNames(this.named.slice(this.namedPos + 1));
    this.namedPos = -1; // the loop moves on to [0]
  }

  private writeNames(named: TaskEntry[]): void {
    let text = '';
    for (const n of named) text += `${n.rel ?? path.relative(this.spool.dir, n.file)}\n`;
    fs.writeSync(this.currentFd!, `${text}\n`, 0); // an empty line ends the list (older, longer contents may follow)
    this.named = named;
    this.namedPos = 0;
  }

  /** Remove what crashes leave behind: temp files of writes that never completed (never acknowledged,
   *  so never promised to anyone) and bookkeeping of tasks that no longer exist. */
  housekeeping(): void {
    const now = Date.now();
    try {
      for (const n of fs.readdirSync(this.spool.tmp)) {
        const f = path.join(this.spool.tmp, n);
        try { if (now - fs.statSync(f).ctimeMs > 3600_000) { fs.unlinkSync(f); this.log.info({ file: f }, `removed ${f}: an enqueue interrupted more than an hour ago`); } } catch { /* gone */ }
      }
    } catch { /* no tmp dir */ }
    try {
      const metas = fs.readdirSync(this.spool.meta).filter((n) => n.endsWith('.json'));
      if (!metas.length) return;
      const live = new Set(this.spool.listAll().map((t) => t.id));
      for (const n of metas) {
        const f = path.join(this.spool.meta, n);
        try { if (!live.has(n.slice(0, -5)) && now - fs.statSync(f).mtimeMs > 60_000) fs.unlinkSync(f); } catch { /* gone */ }
      }
    } catch { /* no meta dir */ }
  }

  /** Put the tasks dead processes were running back into the queue (each run counts as an attempt):
   *  those claimed into their running/<pid>/, and those named by their .current (run in place). */
  recover(startup: boolean): void {
    this.lastRecover = Date.now();
    // first the journal: after a machine restart it puts back the files of acknowledged tasks
    const replayed = this.spool.recoverJournals();
    if (replayed.length) this.log.warn({ tasks: replayed.length }, `the machine restarted before ${replayed.length} task file${replayed.length === 1 ? ' was' : 's were'} on disk: restored from ${this.spool.journalDir}`);
    let owners: string[];
    try { owners = fs.readdirSync(this.spool.running); } catch { return; }
    for (const o of owners) {
      if (!/^\d+$/.test(o)) continue;
      const pid = Number(o);
      const own = pid === process.pid;
      const d = path.join(this.spool.running, o);
      if (own ? !startup : ownerAlive(d, pid)) continue;
      let all: string[];
      try { all = fs.readdirSync(d); } catch { continue; }
      for (const n of all) if (n.startsWith(CURRENT_FILE)) this.recoverCurrent(path.join(d, n), pid);
      for (const n of all.filter(isTaskName)) {
        const claimed = path.join(this.mine, n);
        if (!own) { try { fs.renameSync(path.join(d, n), claimed); } catch { continue; } }
        this.log.warn({ task: n, pid }, `task ${n} was interrupted (spooler process ${pid} stopped while running it): running it again`);
        this.interrupted(n, claimed, pid);
      }
      if (!own) { try { fs.rmSync(path.join(d, OWNER_FILE), { force: true }); fs.rmdirSync(d); } catch { /* another process is recovering it too */ } }
    }
  }

  /** A .current file (or one a recovering process took and did not finish with) of the dead process
   *  `pid`: take it (one process wins), then claim the task that was running, if still queued, and count
   *  the interrupted run. */
  private recoverCurrent(file: string, pid: number): void {
    const taken = path.join(this.mine, `${CURRENT_FILE}-of-${pid}`);
    try { fs.renameSync(file, taken); } catch { return; } // another process is recovering it
    const named = readCurrent(taken);
    try { fs.unlinkSync(taken); } catch { /* gone */ }
    // the first named task still in the queue was running (those before it completed; see name())
    for (const cur of named) {
      const claimed = path.join(this.mine, cur.id);
      try { fs.renameSync(path.join(this.spool.dir, cur.rel), claimed); } catch { continue; } // completed (or removed)
      this.log.warn({ task: cur.id, pid }, `task ${cur.id} was interrupted (spooler process ${pid} stopped while running it): running it again`);
      this.interrupted(cur.id, claimed, pid);
      return;
    }
  }

  private interrupted(id: string, claimed: string, pid: number): void {
    let p: Packet;
    try { p = decodePacket(fs.readFileSync(claimed)); } catch (e) { this.moveCorrupt(id, claimed, e as Error); return; }
    const meta = this.spool.readMeta(id) ?? { attempts: 0 };
    meta.attempts++;
    meta.lastError = `interrupted: spooler process ${pid} stopped while running it`;
    meta.lastAttemptAt = Date.now();
    // the first interruption re-runs at once; repeated ones (a task that kills its process) back off
    this.settle(id, claimed, p, meta, meta.attempts <= 1 ? 0 : this.backoff(meta.attempts));
  }

  private backoff(attempts: number): number {
    return Math.min(MAX_BACKOFF, this.opts.retryDelayMs * 2 ** Math.max(0, attempts - 1));
  }

  private moveCorrupt(id: string, file: string, err: Error): void {
    const dest = path.join(this.spool.corrupt, id);
    try { fs.renameSync(file, dest); } catch { try { fs.unlinkSync(file); } catch { /* gone */ } }
    this.spool.removeMeta(id);
    this.log.error({ task: id, file: dest }, `corrupt spool file ${id} moved to ${dest}: ${err.message}`);
  }

  /** Requeue after a failure (or fail it for good once retries are exhausted). */
  private settle(id: string, claimed: string, p: Packet, meta: Meta, delayMs: number): void {
    if (meta.attempts > this.opts.maxRetries) {
      meta.failedAt = Date.now();
      delete meta.nextRunAt;
      this.spool.writeMeta(id, meta);
      try { fs.renameSync(claimed, path.join(this.spool.failed, id)); } catch { /* gone */ }
      this.failed++;
      this.log.error({ task: id, attempts: meta.attempts, error: meta.lastError }, `task ${id} failed ${meta.attempts} time${meta.attempts > 1 ? 's' : ''}, giving up (moved to failed/): ${meta.lastError}`);
      return;
    }
    const next = Date.now() + delayMs;
    meta.nextRunAt = next;
    this.spool.writeMeta(id, meta);
    const prio = p.vars.get('priority');
    const q = this.spool.queueDir(prio !== undefined && /^\d{1,10}$/.test(prio) ? prio : null);
    try {
      fs.utimesSync(claimed, next / 1000, next / 1000);
      const dest = path.join(q, id);
      if (dest !== claimed) { // else run in place: it stays
        try { fs.mkdirSync(q, { mode: 0o750 }); } catch { /* exists */ }
        fs.renameSync(claimed, dest);
      }
    } catch (e) {
      this.log.error({ task: id }, `cannot requeue task ${id}: ${(e as Error).message}; it stays in ${claimed} and is recovered after a restart`);
    }
    this.retried++;
  }

  /** Run a task from `file`: its file in running/<pid>/, or where it lies in the queue (t.file) when this
   *  process is alone. Returns a promise only when the task function returned one (a synchronous task
   *  completes before execute returns). */
  private execute(t: TaskEntry, file: string): Promise<void> | undefined {
    const buf = this.read(file);
    if (buf === null) return; // gone: removed by hand
    const id = t.id;
    let p: Packet;
    let args: Record<string, unknown>;
    try {
      p = decodePacket(buf);
      if (p.body && buf.buffer === this.readBuf.buffer) p.body = Buffer.from(p.body); // the buffer is reused
      args = varsToArgs(p, id);
    } catch (e) {
      this.unreadable(t, file, e as Error);
      return;
    }
    const name = p.vars.get('ud_spool_func') ?? '';
    const meta = this.metaIds.has(id) ? this.spool.readMeta(id) : null;
    const run: Run = { t, file, inPlace: file === t.file, p, name, kind: 'spool', meta, attempt: (meta?.attempts ?? 0) + 1, started: performance.now() };
    const entry = this.lookup(name);
    this.current = id;
    this.onChange();
    if (!entry) {
      this.finish(run, name
        ? `unable to find the spooler function \`${name}\`: load its module into the spooler process with --import FILE or --spooler-import FILE`
        : 'the task names no function (no ud_spool_func var): it was not written by spool()');
      return;
    }
    const ret = p.vars.get('ud_spool_ret');
    run.kind = ret === RET_SPOOL ? 'spool' : ret === RET_FOREVER ? 'forever' : ret === undefined ? entry.kind : 'raw';
    const at = p.vars.get('at');
    const prio = p.vars.get('priority');
    const ctx = new Context(id, name, run.attempt, this.spool.dir, prio !== undefined ? Number(prio) : null, at !== undefined ? Number(at) : null, this.signal, this.log);
    let r: unknown;
    try {
      r = entry.fn(args, ctx);
    } catch (e) {
      this.threw(run, e);
      return;
    }
    if (isThenable(r)) return Promise.resolve(r).then((v) => this.finish(run, judge(run.kind, v)), (e: unknown) => this.threw(run, e));
    this.finish(run, judge(run.kind, r));
  }

  /** The bytes of a task file, or null when it is gone: one read into a buffer kept for the purpose
   *  (most task files are small; a larger one is read whole into its own). */
  private read(file: string): Buffer | null {
    let fd: number;
    try { fd = fs.openSync(file, fs.constants.O_RDONLY); } catch { return null; }
    try {
      const n = fs.readSync(fd, this.readBuf, 0, this.readBuf.length, 0);
      return n < this.readBuf.length ? this.readBuf.subarray(0, n) : fs.readFileSync(fd);
    } catch {
      return null;
    } finally {
      fs.closeSync(fd);
    }
  }

  /** A file that is no uwsgi spool packet: moved to corrupt/, unless it may still be being written. */
  private unreadable(t: TaskEntry, file: string, e: Error): void {
    // a file someone else (e.g. uWSGI) is still writing: give it a few seconds before calling it corrupt
    if (e instanceof CorruptSpoolFile && Math.abs(Date.now() - t.runAt) < 3000) {
      try {
        if (file !== t.file) fs.renameSync(file, t.file);
        else this.unname(t.id);
        this.skipUntil.set(t.id, Date.now() + 3000);
        return;
      } catch { /* fall through */ }
    }
    this.moveCorrupt(t.id, file, e);
  }

  private threw(run: Run, e: unknown): void {
    const err = e instanceof Error ? e : new Error(String(e));
    this.finish(run, `${err.name === 'Error' ? '' : err.name + ': '}${err.message || 'threw without a message'}`, err);
  }

  /** After the task function: `error` null when it succeeded, else why it is retried. */
  private finish(run: Run, error: string | null, thrown?: Error): void {
    this.current = null;
    const { t, file, name, meta } = run;
    const id = t.id;
    if (error === null && run.kind !== 'forever') {
      // completed: out of the queue for good (its file is reused by a later enqueue, or deleted)
      this.spool.recycle(file, t.nlink ?? 0, FREE_KEEP);
      if (meta) this.spool.removeMeta(id);
      this.done++;
      if (this.debug) {
        const secs = ((performance.now() - run.started) / 1000).toFixed(3);
        this.log.debug({ task: id, fn: name, seconds: Number(secs) }, `done with task ${id} after ${secs} seconds`);
      }
    } else if (error === null) {
      // @spoolforever: run again at the next scan
      if (run.inPlace) this.unname(id);
      if (meta) this.spool.removeMeta(id);
      const next = Date.now() + this.opts.frequencyMs;
      try { fs.utimesSync(file, next / 1000, next / 1000); if (!run.inPlace) fs.renameSync(file, t.file); } catch { /* gone */ }
      this.done++;
    } else {
      const attempt = run.attempt;
      const m: Meta = { ...(meta ?? { attempts: 0 }), attempts: attempt, lastError: error, lastAttemptAt: Date.now() };
      const delay = this.backoff(attempt);
      if (run.inPlace) this.unname(id);
      if (attempt <= this.opts.maxRetries) this.log.warn({ task: id, fn: name, attempt, error, ...(thrown ? { err: thrown } : {}) }, `task ${id} (${name || '?'}) failed (attempt ${attempt} of ${this.opts.maxRetries + 1}): ${error}; retrying in ${(delay / 1000).toFixed(1)} s`);
      this.settle(id, file, run.p, m, delay);
    }
    this.onChange();
  }

  report(): RunnerReport {
    return { done: this.done, failed: this.failed, retried: this.retried, running: this.current };
  }
}
