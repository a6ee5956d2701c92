// The enqueue journal (group commit): DIR/journal/ holds append-only segment files, one open segment per
// writing process. An enqueue writes its task file (tmp/, renamed into place: visible to the spooler, and
// safe from a kill -9 of every process: it is in the page cache) and appends a record of it — id,
// priority, `at`, the file's bytes — to its process's segment; every enqueue of the same tick shares one
// write and one fdatasync of the segment, and `.spool()` resolves once that fdatasync has completed. So a
// task costs no fsync of its own: after a machine crash the task files may be missing, stale or empty,
// and the journal puts them back.
//
// Segments are short-lived. About once a second a writer seals its segment (starts another) and runs
// syncfs on the filesystem (`sync -f DIR`): from then on every sealed record's file — or whatever became
// of it: claimed, completed, failed — is on disk, so the sealed segments are deleted. A writer that
// stops gracefully does the same before it exits; a writer that dies leaves its segments to the spooler.
//
// Recovery (the spooler, at startup and at each recovery scan), by the boot id in each segment's name:
//   * a segment written during the current boot by a process that has died: the page cache still holds
//     every file its records describe (a process crash loses nothing that was written), so it only needs
//     the syncfs; it is then deleted. Nothing is re-created: a task completed since is never run again.
//   * a segment of an earlier boot (the machine restarted before its writer checkpointed it): its records
//     are replayed — each task's file is looked for (queue, running/, failed/) and re-created where it is
//     missing or rewritten where its contents differ (a reused file whose new contents never reached the
//     disk) — then syncfs, then the segment is deleted. A task that completed in the last second before
//     the crash can run again: at least once, after a crash.
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { execFile, spawnSync } from 'node:child_process';

const MAGIC = 0x314a5755; // "UWJ1"
const HEADER = 12; // magic, length of the rest, crc32 of the rest
/** a segment is sealed after this long (or this size) and checkpointed */
export const SEAL_MS = 1000;
const SEAL_BYTES = 8 * 1024 * 1024;

export interface JournalRecord { id: string; priority: string | null; at: number | undefined; data: Buffer }

const CRC_TABLE = (() => {
  const t = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  return t;
})();

export function crc32(buf: Buffer, start = 0, end = buf.length): number {
  let c = -1;
  for (let i = start; i < end; i++) c = CRC_TABLE[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

/** One record: the header, then id, priority (as written, '' = none), `at` (ms, NaN = none), the file's bytes. */
export function encodeRecord(id: string, priority: string | null, at: number | undefined, parts: Buffer[]): Buffer {
  const idLen = Buffer.byteLength(id);
  const prio = priority ?? '';
  const prioLen = Buffer.byteLength(prio);
  let dataLen = 0;
  for (const p of parts) dataLen += p.length;
  const rest = 2 + idLen + 2 + prioLen + 8 + dataLen;
  const b = Buffer.allocUnsafe(HEADER + rest);
  b.writeUInt32LE(MAGIC, 0);
  b.writeUInt32LE(rest, 4);
  let o = HEADER;
  o = b.writeUInt16LE(idLen, o);
  o += b.write(id, o, 'utf8');
  o = b.writeUInt16LE(prioLen, o);
  o += b.write(prio, o, 'utf8');
  o = b.writeDoubleLE(at ?? NaN, o);
  for (const p of parts) o += p.copy(b, o);
  b.writeUInt32LE(crc32(b, HEADER), 8);
  return b;
}

/** The records of a segment, up to the first torn or damaged one (a write a crash interrupted: never acknowledged). */
export function decodeRecords(buf: Buffer): JournalRecord[] {
  const out: JournalRecord[] = [];
  let o = 0;
  while (o + HEADER <= buf.length) {
    if (buf.readUInt32LE(o) !== MAGIC) break;
    const rest = buf.readUInt32LE(o + 4);
    const end = o + HEADER + rest;
    if (rest < 12 || end > buf.length || crc32(buf, o + HEADER, end) !== buf.readUInt32LE(o + 8)) break;
    let p = o + HEADER;
    const idLen = buf.readUInt16LE(p); p += 2;
    const id = buf.toString('utf8', p, p + idLen); p += idLen;
    const prioLen = buf.readUInt16LE(p); p += 2;
    const prio = buf.toString('utf8', p, p + prioLen); p += prioLen;
    const at = buf.readDoubleLE(p); p += 8;
    out.push({ id, priority: prio === '' ? null : prio, at: Number.isNaN(at) ? undefined : at, data: buf.subarray(p, end) });
    o = end;
  }
  return out;
}

let boot: string | null | undefined;
/** This boot's id (Linux), or null where there is none: no journal then. */
export function bootId(): string | null {
  if (boot === undefined) {
    try { boot = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'latin1').trim().replace(/-/g, '') || null; } catch { boot = null; }
  }
  return boot;
}

/** syncfs(2) on the filesystem holding `dir` (Node has no binding: coreutils' `sync -f`). */
export function syncFsSync(dir: string): boolean {
  const r = spawnSync('sync', ['-f', dir], { stdio: 'ignore' });
  return r.status === 0;
}

export function syncFs(dir: string, cb: (ok: boolean) => void): void {
  try {
    execFile('sync', ['-f', dir], { windowsHide: true }, (e) => cb(!e));
  } catch { cb(false); }
}

/** A segment file's name: boot id, writer pid and start time, a random part, a sequence number. */
export function segmentName(bootId: string, pid: number, start: string, token: string, seq: number): string {
  return `${bootId}_${pid}_${start}_${token}_${seq}.log`;
}

export function parseSegmentName(name: string): { boot: string; pid: number; start: string } | null {
  const m = /^([0-9a-f]+)_(\d+)_(\d*)_[0-9a-f]+_\d+\.log$/.exec(name);
  return m ? { boot: m[1]!, pid: Number(m[2]), start: m[3]! } : null;
}

/** One process's journal in one spool directory. */
export class Journal {
  private fd: number | null = null;
  private file = '';
  private size = 0;
  private seq = 0;
  private readonly token = crypto.randomBytes(4).toString('hex');
  private pending: Buffer[] = [];
  private waiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  private flushing = false;
  private scheduled = false;
  private sealDue = false;
  private sealTimer: NodeJS.Timeout | null = null;
  /** sealed segments waiting for a checkpoint */
  private sealed: string[] = [];
  private checkpointing = false;
  private dirFd: number | null = null;

  constructor(private readonly dir: string, private readonly fsDir: string, private readonly boot: string, private readonly start: string) {}

  /** Resolves once the record is durable (shared fdatasync with the records of the same tick). */
  append(rec: Buffer): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.pending.push(rec);
      this.waiters.push({ resolve, reject });
      if (!this.flushing && !this.scheduled) { this.scheduled = true; setImmediate(this.flush); }
    });
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    if (this.flushing || this.pending.length === 0) return;
    const bufs = this.pending;
    const ws = this.waiters;
    this.pending = [];
    this.waiters = [];
    this.flushing = true;
    const done = (e: NodeJS.ErrnoException | null): void => {
      this.flushing = false;
      if (e) this.seal(); // a torn record ends the segment: later records go to a new one
      for (const w of ws) { if (e) w.reject(e); else w.resolve(); }
      if (this.sealDue) this.seal();
      if (this.pending.length) this.flush();
    };
    try {
      let created = false;
      if (this.fd === null) {
        this.file = path.join(this.dir, segmentName(this.boot, process.pid, this.start, this.token, ++this.seq));
        this.fd = fs.openSync(this.file, 'wx', 0o600);
        this.size = 0;
        created = true;
        this.sealTimer = setTimeout(() => { this.sealTimer = null; if (this.flushing) this.sealDue = true; else this.seal(); }, SEAL_MS);
        this.sealTimer.unref();
      }
      const buf = bufs.length === 1 ? bufs[0]! : Buffer.concat(bufs);
      const fd = this.fd;
      for (let o = 0; o < buf.length;) o += fs.writeSync(fd, buf, o, buf.length - o, this.size + o);
      this.size += buf.length;
      if (this.size >= SEAL_BYTES) this.sealDue = true;
      fs.fdatasync(fd, (e) => {
        if (e || !created) { done(e); return; }
        // a new segment: its directory entry must be durable too
        try { this.dirFd ??= fs.openSync(this.dir, 'r'); } catch (oe) { done(oe as NodeJS.ErrnoException); return; }
        fs.fsync(this.dirFd, done);
      });
    } catch (e) {
      done(e as NodeJS.ErrnoException);
    }
  };

  /** Close the current segment; checkpoint the sealed ones. */
  private seal(): void {
    this.sealDue = false;
    if (this.sealTimer) { clearTimeout(this.sealTimer); this.sealTimer = null; }
    if (this.fd !== null) {
      try { fs.closeSync(this.fd); } catch { /* closed */ }
      this.fd = null;
      this.sealed.push(this.file);
    }
    this.checkpoint();
  }

  private checkpoint(): void {
    if (this.checkpointing || this.sealed.length === 0) return;
    this.checkpointing = true;
    const files = this.sealed.splice(0);
    syncFs(this.fsDir, (ok) => {
      this.checkpointing = false;
      if (ok) { for (const f of files) { try { fs.unlinkSync(f); } catch { /* gone */ } } }
      else {
        // kept: tried again at the next seal; the spooler checkpoints them once this process is gone
        this.sealed.unshift(...files);
        return;
      }
      if (this.sealed.length) this.checkpoint();
    });
  }

  /** At shutdown: seal and checkpoint synchronously (records still being written are not waited for:
   *  their enqueues never resolve, and the spooler checkpoints what is left). */
  close(): void {
    if (this.sealTimer) { clearTimeout(this.sealTimer); this.sealTimer = null; }
    if (this.flushing) return; // the spooler checkpoints the segment once this process is gone
    if (this.fd !== null) { try { fs.closeSync(this.fd); } catch { /* closed */ } this.fd = null; this.sealed.push(this.file); }
    if (this.dirFd !== null) { try { fs.closeSync(this.dirFd); } catch { /* closed */ } this.dirFd = null; }
    if (this.sealed.length && !this.checkpointing && syncFsSync(this.fsDir)) {
      for (const f of this.sealed.splice(0)) { try { fs.unlinkSync(f); } catch { /* gone */ } }
    }
  }
}
