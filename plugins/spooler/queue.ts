// One spool directory on disk:
//   DIR/uwsgi_spoolfile_on_...        queued tasks (mtime = when they may run: `at`, or the next retry)
//   DIR/<P>/uwsgi_spoolfile_on_...    queued tasks with priority P (a number; lower runs first)
//   DIR/tmp/                          files being written (renamed into place once complete and fsynced)
//   DIR/running/<pid>/                tasks claimed by the spooler process <pid> (atomic rename), and
//                                     .current while <pid> is the only spooler process on DIR: the tasks
//                                     it runs where they lie in the queue (see Runner.mode, Runner.name)
//   DIR/failed/                       tasks that exhausted their retries
//   DIR/corrupt/                      files that are not valid spool packets, moved aside
//   DIR/meta/<id>.json                bookkeeping beside a task: attempts, last error, next run
//   DIR/free/                         files of completed tasks, kept for reuse: a writer renames one into
//                                     tmp/ and overwrites it instead of allocating a new inode (see enqueue)
//   DIR/journal/                      the enqueue journal: what makes a task durable (see journal.ts)
import fs from 'node:fs';
import path from 'node:path';
import { decodePacket, isTaskName, newTaskId, type Packet } from './format.js';
import { Journal, bootId, decodeRecords, encodeRecord, parseSegmentName, syncFsSync, type JournalRecord } from './journal.js';

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
  /** the file's path relative to DIR, and its number of links (queued tasks) */
  rel?: string;
  nlink?: number;
  priority: number | null;
  /** when it may run (ms since epoch) */
  runAt: number;
  /** the spooler process running it, and its directory running/<pid>/ */
  pid?: number;
  owner?: string;
  /** running where it lies in the queue, by a process alone on the directory; runAt is then only when
   *  .current last changed (before the task started; the same while it runs) */
  inPlace?: boolean;
}

/** writes up to this size are made synchronously (a page-cache copy); larger bodies go to the thread pool */
const SYNC_WRITE_MAX = 64 * 1024;

function fsCall<T>(f: (cb: (e: NodeJS.ErrnoException | null, v?: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => f((e, v) => (e ? reject(e) : resolve(v as T))));
}

function writeAllSync(fd: number, buf: Buffer, pos: number): void {
  for (let o = 0; o < buf.length;) o += fs.writeSync(fd, buf, o, buf.length - o, pos + o);
}

async function writeAll(fd: number, buf: Buffer, pos: number): Promise<void> {
  for (let o = 0; o < buf.length;) o += await fsCall<number>((cb) => fs.write(fd, buf, o, buf.length - o, pos + o, cb));
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
  readonly free: string;
  readonly journalDir: string;
  /** this process's journal; null: not decided yet; false: none (not Linux, no `sync -f`, or disabled) */
  private journal: Journal | false | null;
  private readonly syncs = new Map<string, DirSync>();
  /** names seen in free/ at the last look (other processes may have taken some since) */
  private freeNames: string[] = [];
  private freeLookedAt = -Infinity;
  /** priority directories whose entry this process has made durable */
  private readonly durableDirs = new Set<string>();

  constructor(readonly dir: string, opts: { journal?: boolean } = {}) {
    this.journal = opts.journal === false ? false : null;
    this.tmp = path.join(dir, 'tmp');
    this.running = path.join(dir, 'running');
    this.failed = path.join(dir, 'failed');
    this.corrupt = path.join(dir, 'corrupt');
    this.meta = path.join(dir, 'meta');
    this.free = path.join(dir, 'free');
    this.journalDir = path.join(dir, 'journal');
  }

  /** Create the directory tree (mode 0750) and check it can be used; throws a message naming the problem. */
  static prepare(dir: string, opts: { journal?: boolean } = {}): SpoolDir {
    const s = new SpoolDir(dir, opts);
    for (const d of [dir, s.tmp, s.running, s.failed, s.corrupt, s.meta, s.free, s.journalDir]) {
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

  /** Durably write a task (the packet, then `body` when given separately). Resolves to the id once the
   *  task is in place and durable.
   *
   *  The temp file is preferably a completed task's file taken from free/ (renamed into tmp/, an atomic
   *  claim: one writer wins) and overwritten: allocating and freeing an inode per task is most of the
   *  cost of a spool file on ext4 (measured: 0.2-1 ms of CPU per create on a busy directory, where the
   *  allocator skips recently deleted inodes). A file that has another link (only possible after a
   *  machine crash left a stale entry on a filesystem without a journal) is never reused.
   *
   *  Two ways to durability:
   *   * the journal (Linux, tasks up to 64 KiB): the file is written and renamed into place without any
   *     fsync, and a record of it is appended to this process's journal segment; the enqueues of a tick
   *     share one fdatasync of the segment (group commit), and a checkpoint about once a second (syncfs)
   *     retires the records. See journal.ts.
   *   * otherwise: temp file, fdatasync (fsync with `at`), rename into place, fsync of the directory
   *     (shared by the enqueues in flight: DirSync).
   *  The quick syscalls (rename, open, write, close) are made synchronously — each costs less than a trip
   *  through the thread pool; the slow ones (fsync, creating a new inode, a large body) go to the thread
   *  pool. */
  async enqueue(packet: Buffer, opts: { at?: number | undefined; priority?: number | null | undefined; body?: Buffer | null }): Promise<string> {
    const id = newTaskId();
    const tmp = path.join(this.tmp, id);
    const body = opts.body && opts.body.length ? opts.body : null;
    const size = packet.length + (body ? body.length : 0);
    const journal = size <= SYNC_WRITE_MAX ? this.openJournal() : false;
    let fd: number | null = null;
    let placed: string | null = null;
    try {
      const t = await this.openTemp(tmp);
      fd = t.fd;
      if (size <= SYNC_WRITE_MAX) {
        writeAllSync(fd, packet, 0);
        if (body) writeAllSync(fd, body, packet.length);
      } else {
        await writeAll(fd, packet, 0);
        if (body) await writeAll(fd, body, packet.length); // appended: a big body is never copied
      }
      if (t.oldSize !== null && t.oldSize !== size) fs.ftruncateSync(fd, size);
      if (opts.at !== undefined) fs.futimesSync(fd, opts.at / 1000, opts.at / 1000);
      const f = fd;
      if (!journal) {
        if (opts.at !== undefined) await fsCall<void>((cb) => fs.fsync(f, cb)); // the mtime is when the task may run: it must last
        // the contents and the size (fdatasync writes the inode when the size or the blocks changed; a
        // reused file of the same size needs only its data block written). The mtime may be lost in a
        // crash: the task then runs as early as an older mtime says, which is when it was due anyway.
        else await fsCall<void>((cb) => fs.fdatasync(f, cb));
      }
      fs.closeSync(fd);
      fd = null;
      const qdir = this.queueDir(opts.priority ?? null);
      if (qdir !== this.dir && !this.durableDirs.has(qdir)) {
        // a priority directory: its own entry must be durable too (whoever created it; with the journal,
        // the checkpoint or a replay takes care of it)
        try { fs.mkdirSync(qdir, { mode: 0o750 }); } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        }
        if (!journal) await this.dirSync(this.dir);
        this.durableDirs.add(qdir);
      }
      const dest = path.join(qdir, id);
      fs.renameSync(tmp, dest);
      placed = dest;
      if (journal) {
        const prio = opts.priority === undefined || opts.priority === null ? null : String(opts.priority);
        await journal.append(encodeRecord(id, prio, opts.at, body ? [packet, body] : [packet]));
      } else {
        await this.dirSync(qdir);
      }
      return id;
    } catch (e) {
      if (fd !== null) { try { fs.closeSync(fd); } catch { /* closed */ } }
      if (placed === null) { try { fs.unlinkSync(tmp); } catch { /* none */ } }
      else if (journal) { try { fs.unlinkSync(placed); } catch { /* claimed already: it runs */ } }
      throw e;
    }
  }

  /** The temp file of a task: a file taken from free/ (oldSize: its size), else a new one. */
  private async openTemp(tmp: string): Promise<{ fd: number; oldSize: number | null }> {
    if (this.claimFree(tmp)) {
      const fd = fs.openSync(tmp, 'r+');
      const st = fs.fstatSync(fd);
      if (st.nlink === 1) return { fd, oldSize: st.size };
      fs.closeSync(fd);
      fs.unlinkSync(tmp);
    }
    return { fd: await fsCall<number>((cb) => fs.open(tmp, 'wx', 0o600, cb)), oldSize: null };
  }

  /** This process's journal, opened on first use; false where there is none (not Linux, no `sync -f`). */
  private openJournal(): Journal | false {
    if (this.journal !== null) return this.journal;
    const boot = bootId();
    let ok = boot !== null;
    if (ok) {
      try {
        // an older layout: the directory is new, and its entry must be durable before a record counts
        if (fs.mkdirSync(this.journalDir, { recursive: true, mode: 0o750 }) !== undefined) {
          const dfd = fs.openSync(this.dir, 'r');
          try { fs.fsyncSync(dfd); } finally { fs.closeSync(dfd); }
        }
      } catch { ok = false; }
    }
    ok &&= syncFsSync(this.dir); // the checkpoint works here
    this.journal = ok ? new Journal(this.journalDir, this.dir, boot!, procStart(process.pid) ?? '') : false;
    return this.journal;
  }

  /** At shutdown: checkpoint this process's journal. */
  closeJournal(): void {
    if (this.journal) this.journal.close();
  }

  /** Journal segments left by writers that are gone (see journal.ts): those of an earlier boot are replayed
   *  (their tasks' files re-created or rewritten where they differ); then syncfs, and they are deleted.
   *  Returns the ids replayed. */
  recoverJournals(): string[] {
    const boot = bootId();
    const replayed: string[] = [];
    if (boot === null) return replayed;
    let names: string[];
    try { names = fs.readdirSync(this.journalDir); } catch { return replayed; }
    const retired: string[] = [];
    let owners: string[] | null = null;
    for (const name of names) {
      const seg = parseSegmentName(name);
      if (!seg) continue;
      const file = path.join(this.journalDir, name);
      if (seg.boot === boot) {
        // its writer's files are all in the page cache: only the checkpoint is missing
        if (!pidAlive(seg.pid) || (procStart(seg.pid) ?? seg.start) !== seg.start) retired.push(file);
        continue;
      }
      let buf: Buffer;
      try { buf = fs.readFileSync(file); } catch { continue; }
      owners ??= (() => { try { return fs.readdirSync(this.running).filter((o) => /^\d+$/.test(o)); } catch { return []; } })();
      for (const r of decodeRecords(buf)) if (this.replay(r, owners)) replayed.push(r.id);
      retired.push(file);
    }
    if (retired.length && syncFsSync(this.dir)) {
      for (const f of retired) { try { fs.unlinkSync(f); } catch { /* gone */ } }
    }
    return replayed;
  }

  /** Make a journal record's task file what the record says: wherever it is (queued, running, failed), or
   *  back in the queue. True when something had to be written. */
  private replay(r: JournalRecord, owners: string[]): boolean {
    if (!isTaskName(r.id)) return false;
    const q = this.queueDir(r.priority);
    const setTime = (fd: number) => { if (r.at !== undefined) fs.futimesSync(fd, r.at / 1000, r.at / 1000); };
    for (const f of [path.join(q, r.id), path.join(this.failed, r.id), ...owners.map((o) => path.join(this.running, o, r.id))]) {
      let cur: Buffer;
      try { cur = fs.readFileSync(f); } catch { continue; }
      const fd = fs.openSync(f, 'r+');
      try {
        setTime(fd);
        if (cur.equals(r.data)) return false;
        writeAllSync(fd, r.data, 0);
        fs.ftruncateSync(fd, r.data.length);
      } finally { fs.closeSync(fd); }
      return true;
    }
    try { fs.mkdirSync(q, { mode: 0o750 }); } catch { /* exists */ }
    const tmp = path.join(this.tmp, r.id);
    const fd = fs.openSync(tmp, 'w', 0o600);
    try { writeAllSync(fd, r.data, 0); setTime(fd); } finally { fs.closeSync(fd); }
    fs.renameSync(tmp, path.join(q, r.id));
    return true;
  }

  /** Take a file from free/ by renaming it to `dest`; false when there is none. */
  private claimFree(dest: string): boolean {
    for (;;) {
      let name = this.freeNames.pop();
      if (name === undefined) {
        // look again at most every few ms: with an empty free/ every enqueue would readdir for nothing
        const now = performance.now();
        if (now - this.freeLookedAt < 5) return false;
        this.freeLookedAt = now;
        try { this.freeNames = fs.readdirSync(this.free).filter(isTaskName); } catch { return false; }
        name = this.freeNames.pop();
        if (name === undefined) return false;
      }
      try {
        fs.renameSync(path.join(this.free, name), dest);
        return true;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e; // e.g. tmp/ is not a directory
        // taken by another writer: try the next
      }
    }
  }

  /** A completed task's file (claimed by this process, `nlink` links): keep it in free/ for a writer to
   *  reuse, up to `keep` files there; else delete it. Never fsynced: a crash before the change reaches the
   *  disk can bring the task back, which runs it again (at least once). */
  recycle(file: string, nlink: number, keep: number): void {
    // the count only grows here (writers take files without telling): count again when it says full,
    // at most every 100 ms
    if (this.freeCount >= keep && performance.now() - this.freeCountedAt > 100) this.countFree();
    if (nlink === 1 && this.freeCount < keep) {
      try {
        fs.renameSync(file, path.join(this.free, path.basename(file)));
        this.freeCount++;
        return;
      } catch { /* no free/ (an older layout): delete */ }
    }
    try { fs.unlinkSync(file); } catch { /* removed by hand */ }
  }

  /** how many files free/ holds (as counted by countFree, plus those recycled since) */
  freeCount = 0;
  private freeCountedAt = -Infinity;
  countFree(): number {
    this.freeCountedAt = performance.now();
    try { this.freeCount = fs.readdirSync(this.free).length; } catch { this.freeCount = 0; }
    return this.freeCount;
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
    return prioritiesOf(ents);
  }

  /** Queued task files (ready and scheduled), in run order: priority dirs ascending, then the top level.
   *  `onPriorityDir` is told each priority directory found. One readdir of the top level serves both. */
  listQueued(now = Date.now(), onPriorityDir?: (d: string) => void): TaskEntry[] {
    const out: TaskEntry[] = [];
    let top: fs.Dirent[];
    try { top = fs.readdirSync(this.dir, { withFileTypes: true }); } catch { return out; }
    const scan = (d: string, sub: string | null, prio: number | null, names: Iterable<string>) => {
      const part: TaskEntry[] = [];
      for (const n of names) {
        if (!isTaskName(n)) continue;
        const file = path.join(d, n);
        let st: fs.Stats;
        try { st = fs.statSync(file); } catch { continue; }
        if (!st.isFile()) continue;
        part.push({ id: n, state: st.mtimeMs > now ? 'scheduled' : 'queued', file, rel: sub === null ? n : `${sub}/${n}`, nlink: st.nlink, priority: prio, runAt: st.mtimeMs });
      }
      part.sort((a, b) => a.runAt - b.runAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      for (const t of part) out.push(t);
    };
    for (const p of prioritiesOf(top)) {
      const d = this.queueDir(p.name);
      onPriorityDir?.(d);
      let names: string[];
      try { names = fs.readdirSync(d); } catch { continue; }
      scan(d, p.name, p.n, names);
    }
    scan(this.dir, null, null, top.filter((e) => !e.isDirectory()).map((e) => e.name));
    return out;
  }

  /** The ids that have a bookkeeping file in meta/. */
  metaIds(): Set<string> {
    const ids = new Set<string>();
    try { for (const n of fs.readdirSync(this.meta)) if (n.endsWith('.json')) ids.add(n.slice(0, -5)); } catch { /* none */ }
    return ids;
  }

  /** Tasks running: claimed into running/<pid>/, or run in place by a process alone on the directory. */
  listRunning(): TaskEntry[] {
    let owners: string[];
    try { owners = fs.readdirSync(this.running); } catch { return []; }
    return owners.filter((o) => /^\d+$/.test(o)).flatMap((o) => this.runningIn(Number(o)));
  }

  /** The task(s) the spooler process `pid` runs: those claimed into its directory (runAt: their ctime,
   *  the claim), and the one it runs in place (see runningInPlace and `inPlace`). */
  runningIn(pid: number): TaskEntry[] {
    const out: TaskEntry[] = [];
    const owner = path.join(this.running, String(pid));
    let names: string[];
    try { names = fs.readdirSync(owner); } catch { return out; }
    for (const n of names) {
      let entry: TaskEntry;
      if (n === CURRENT_FILE) {
        const marker = path.join(owner, n);
        const cur = runningInPlace(this.dir, marker);
        if (!cur) continue;
        try {
          entry = { id: cur.id, state: 'running', file: path.join(this.dir, cur.rel), priority: cur.prio === null ? null : Number(cur.prio), runAt: fs.statSync(marker).mtimeMs, inPlace: true };
        } catch { continue; }
      } else {
        if (!isTaskName(n)) continue;
        const file = path.join(owner, n);
        try { entry = { id: n, state: 'running', file, priority: null, runAt: fs.statSync(file).ctimeMs }; } catch { continue; }
      }
      out.push({ ...entry, pid, owner });
    }
    return out;
  }

  /** Every task, each once: queued and scheduled, running, failed. */
  listAll(): TaskEntry[] {
    const running = this.listRunning();
    const ids = new Set(running.map((t) => t.id));
    return [...this.listQueued().filter((t) => !ids.has(t.id)), ...running, ...this.listFailed()];
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
    return this.listAll().find((t) => t.id === id) ?? null;
  }

  readPacket(file: string): Packet {
    return decodePacket(fs.readFileSync(file));
  }
}

/** The priority subdirectories (numeric names) among a directory's entries, lowest first. */
function prioritiesOf(ents: fs.Dirent[]): Array<{ name: string; n: number }> {
  return ents.filter((e) => e.isDirectory() && /^\d{1,10}$/.test(e.name)).map((e) => ({ name: e.name, n: Number(e.name) })).sort((a, b) => a.n - b.n || (a.name < b.name ? -1 : 1));
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

/** The file in running/<pid>/ that marks <pid> as the only spooler process on the directory, running each
 *  task where it lies in the queue. It names the tasks about to run, in order (their paths relative to DIR,
 *  one a line, an empty line ends the list): the first of them still in the queue is the one running (or
 *  the next to run). See Runner.name. */
export const CURRENT_FILE = '.current';

export interface NamedTask { rel: string; id: string; prio: string | null }

/** The tasks a `.current` file names, in order (none when it cannot be read; a line that is not a queued
 *  task's place ends the list). */
export function readCurrent(file: string): NamedTask[] {
  let text: string;
  try { text = fs.readFileSync(file, 'utf8'); } catch { return []; }
  const out: NamedTask[] = [];
  for (const line of text.split('\n')) {
    const m = /^(?:(\d{1,10})\/)?([^/]+)$/.exec(line);
    if (!m || !isTaskName(m[2]!)) break;
    out.push({ rel: line, id: m[2]!, prio: m[1] ?? null });
  }
  return out;
}

/** The task a process alone on the directory is running (or about to run): the first its `.current` names
 *  that is still in the queue; null when none is. */
export function runningInPlace(dir: string, currentFile: string): NamedTask | null {
  for (const t of readCurrent(currentFile)) {
    try { if (fs.statSync(path.join(dir, t.rel)).isFile()) return t; } catch { /* completed */ }
  }
  return null;
}

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
