// One spool directory on disk:
//   DIR/uwsgi_spoolfile_on_...        queued tasks (mtime = when they may run: `at`, or the next retry)
//   DIR/<P>/uwsgi_spoolfile_on_...    queued tasks with priority P (a number; lower runs first)
//   DIR/tmp/                          files being written (renamed into place once complete and fsynced)
//   DIR/running/<pid>/                tasks claimed by the spooler process <pid> (atomic rename)
//   DIR/failed/                       tasks that exhausted their retries
//   DIR/corrupt/                      files that are not valid spool packets, moved aside
//   DIR/meta/<id>.json                bookkeeping beside a task: attempts, last error, next run
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { decodePacket, isTaskName, newTaskId, type Packet } from './format.js';

export interface Meta {
  attempts: number;
  lastError?: string;
  lastAttemptAt?: number;
  nextRunAt?: number;
  failedAt?: number;
}

export type TaskState = 'queued' | 'scheduled' | 'running' | 'failed';

export interface TaskEntry {
  id: string;
  state: TaskState;
  file: string;
  priority: number | null;
  /** when it may run (ms since epoch) */
  runAt: number;
  /** the spooler process running it */
  pid?: number;
}

/** fsync a directory, coalescing concurrent requests (group commit): each caller waits for a sync that
 *  started after its own rename. */
class DirSync {
  private fd: number | null = null;
  private running: Promise<void> | null = null;
  private queued: Promise<void> | null = null;
  constructor(private readonly dir: string) {}
  private async once(): Promise<void> {
    if (this.fd === null) this.fd = fs.openSync(this.dir, 'r');
    const fd = this.fd;
    await new Promise<void>((resolve, reject) => fs.fsync(fd, (e) => (e ? reject(e) : resolve())));
  }
  sync(): Promise<void> {
    if (!this.running) {
      this.running = this.once().finally(() => { this.running = null; });
      return this.running;
    }
    if (!this.queued) {
      this.queued = this.running.catch(() => undefined).then(() => {
        this.queued = null;
        this.running = this.once().finally(() => { this.running = null; });
        return this.running;
      });
    }
    return this.queued;
  }
}

export class SpoolDir {
  readonly tmp: string;
  readonly running: string;
  readonly failed: string;
  readonly corrupt: string;
  readonly meta: string;
  private readonly syncs = new Map<string, DirSync>();

  constructor(readonly dir: string) {
    this.tmp = path.join(dir, 'tmp');
    this.running = path.join(dir, 'running');
    this.failed = path.join(dir, 'failed');
    this.corrupt = path.join(dir, 'corrupt');
    this.meta = path.join(dir, 'meta');
  }

  /** Create the directory tree (mode 0750) and check it can be used; throws a message naming the problem. */
  static prepare(dir: string): SpoolDir {
    const s = new SpoolDir(dir);
    for (const d of [dir, s.tmp, s.running, s.failed, s.corrupt, s.meta]) {
      try {
        fs.mkdirSync(d, { recursive: true, mode: 0o750 });
      } catch (e) {
        throw new Error(`cannot create ${d}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
      let st: fs.Stats;
      try { st = fs.statSync(d); } catch (e) { throw new Error(`cannot use ${d}: ${(e as NodeJS.ErrnoException).code}`); }
      if (!st.isDirectory()) throw new Error(`${d} exists and is not a directory`);
      try { fs.accessSync(d, fs.constants.R_OK | fs.constants.W_OK | fs.constants.X_OK); } catch {
        throw new Error(`${d} cannot be written by this user (uid ${process.getuid?.() ?? '?'}): it needs read, write and search permission`);
      }
    }
    return s;
  }

  dirSync(d: string): Promise<void> {
    let s = this.syncs.get(d);
    if (!s) { s = new DirSync(d); this.syncs.set(d, s); }
    return s.sync();
  }

  /** where tasks of a priority wait (a priority var as written, e.g. uWSGI's "007", names its directory) */
  queueDir(priority: number | string | null): string {
    return priority === null ? this.dir : path.join(this.dir, String(priority));
  }

  /** Durably write a task (the packet, then `body` when given separately): temp file, fsync, rename into
   *  place, fsync the directory. Resolves to the id. */
  async enqueue(packet: Buffer, opts: { at?: number | undefined; priority?: number | null | undefined; body?: Buffer | null }): Promise<string> {
    const id = newTaskId();
    const tmp = path.join(this.tmp, id);
    const fh = await fsp.open(tmp, 'wx', 0o600);
    try {
      try {
        await fh.writeFile(packet);
        if (opts.body && opts.body.length) await fh.writeFile(opts.body); // appended: a big body is never copied
        if (opts.at !== undefined) await fh.utimes(opts.at / 1000, opts.at / 1000);
        await fh.sync();
      } finally {
        await fh.close();
      }
      const qdir = this.queueDir(opts.priority ?? null);
      if (qdir !== this.dir) {
        try { await fsp.mkdir(qdir, { mode: 0o750 }); await this.dirSync(this.dir); } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        }
      }
      await fsp.rename(tmp, path.join(qdir, id));
      await this.dirSync(qdir);
      return id;
    } catch (e) {
      await fsp.unlink(tmp).catch(() => undefined);
      throw e;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // bookkeeping

  metaFile(id: string): string { return path.join(this.meta, `${id}.json`); }

  readMeta(id: string): Meta | null {
    try { return JSON.parse(fs.readFileSync(this.metaFile(id), 'utf8')) as Meta; } catch { return null; }
  }

  writeMeta(id: string, m: Meta): void {
    const f = this.metaFile(id);
    const t = `${f}.${process.pid}.tmp`;
    fs.writeFileSync(t, JSON.stringify(m), { mode: 0o600 });
    fs.renameSync(t, f);
  }

  removeMeta(id: string): void {
    try { fs.unlinkSync(this.metaFile(id)); } catch { /* none */ }
  }

  // ---------------------------------------------------------------------------------------------
  // listing

  /** Priority subdirectories present (numeric names), lowest first. */
  priorities(): Array<{ name: string; n: number }> {
    let ents: fs.Dirent[];
    try { ents = fs.readdirSync(this.dir, { withFileTypes: true }); } catch { return []; }
    return ents.filter((e) => e.isDirectory() && /^\d{1,10}$/.test(e.name)).map((e) => ({ name: e.name, n: Number(e.name) })).sort((a, b) => a.n - b.n || (a.name < b.name ? -1 : 1));
  }

  /** Queued task files (ready and scheduled), in run order: priority dirs ascending, then the top level. */
  listQueued(now = Date.now()): TaskEntry[] {
    const out: TaskEntry[] = [];
    const scan = (d: string, prio: number | null) => {
      const part: TaskEntry[] = [];
      let names: string[];
      try { names = fs.readdirSync(d); } catch { return; }
      for (const n of names) {
        if (!isTaskName(n)) continue;
        const file = path.join(d, n);
        let st: fs.Stats;
        try { st = fs.statSync(file); } catch { continue; }
        if (!st.isFile()) continue;
        part.push({ id: n, state: st.mtimeMs > now ? 'scheduled' : 'queued', file, priority: prio, runAt: st.mtimeMs });
      }
      part.sort((a, b) => a.runAt - b.runAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      out.push(...part);
    };
    for (const p of this.priorities()) scan(this.queueDir(p.name), p.n);
    scan(this.dir, null);
    return out;
  }

  listRunning(): TaskEntry[] {
    const out: TaskEntry[] = [];
    let owners: string[];
    try { owners = fs.readdirSync(this.running); } catch { return out; }
    for (const o of owners) {
      if (!/^\d+$/.test(o)) continue;
      let names: string[];
      try { names = fs.readdirSync(path.join(this.running, o)); } catch { continue; }
      for (const n of names) {
        if (!isTaskName(n)) continue;
        const file = path.join(this.running, o, n);
        let st: fs.Stats;
        try { st = fs.statSync(file); } catch { continue; }
        out.push({ id: n, state: 'running', file, priority: null, runAt: st.ctimeMs, pid: Number(o) });
      }
    }
    return out;
  }

  listFailed(): TaskEntry[] {
    let names: string[];
    try { names = fs.readdirSync(this.failed); } catch { return []; }
    return names.filter(isTaskName).map((n) => ({ id: n, state: 'failed' as const, file: path.join(this.failed, n), priority: null, runAt: 0 }));
  }

  /** Count queued files without stat() (for stats). */
  countQueued(): number {
    let n = 0;
    const count = (d: string) => { try { for (const f of fs.readdirSync(d)) if (isTaskName(f)) n++; } catch { /* gone */ } };
    count(this.dir);
    for (const p of this.priorities()) count(this.queueDir(p.name));
    return n;
  }

  countFailed(): number {
    try { return fs.readdirSync(this.failed).filter(isTaskName).length; } catch { return 0; }
  }

  /** Find a task by id in any area. */
  find(id: string): TaskEntry | null {
    if (!isTaskName(id)) return null;
    const all = [...this.listQueued(), ...this.listRunning(), ...this.listFailed()];
    return all.find((t) => t.id === id) ?? null;
  }

  readPacket(file: string): Packet {
    return decodePacket(fs.readFileSync(file));
  }
}

/** A process's start time (clock ticks since boot, /proc/PID/stat field 22), or null where unknown. */
export function procStart(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch { return null; }
}

/** The file in running/<pid>/ recording which process (pid + start time) owns the directory. */
export const OWNER_FILE = '.owner';

/** Is the process that owns running/<pid>/ still alive? A reused pid (another start time) is not. */
export function ownerAlive(runningDir: string, pid: number): boolean {
  if (!pidAlive(pid)) return false;
  let recorded: string | null = null;
  try { recorded = fs.readFileSync(path.join(runningDir, OWNER_FILE), 'utf8').trim() || null; } catch { /* older layout */ }
  const now = procStart(pid);
  return recorded === null || now === null || recorded === now;
}

/** Is this pid a live process that could be a uwcore spooler? (a reused pid of another program is not) */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try { process.kill(pid, 0); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  try {
    const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'latin1');
    if (cmd.length && !/uwcore|node/.test(cmd)) return false;
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    const st = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (st === 'Z' || st === 'X') return false;
  } catch { /* not Linux, or gone */ }
  return true;
}
