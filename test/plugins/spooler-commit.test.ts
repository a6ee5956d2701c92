// The write path of a task (SpoolDir.enqueue) under concurrency: group commit and file reuse must keep
// the promise of .spool(): when it resolves, the task's file is complete, fsynced, renamed into place, and
// a directory fsync that started after that rename has completed. The order of the syscalls is recorded
// by wrapping the fs functions the plugin calls (they go through the `fs` module object).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { decodePacket, encodePacket, newTaskId } from '../../plugins/spooler/format.js';
import { SpoolDir } from '../../plugins/spooler/queue.js';
import { bootId, decodeRecords, encodeRecord, parseSegmentName } from '../../plugins/spooler/journal.js';
import { tmpDir } from '../helpers/server.js';

type Ev = { seq: number; op: string; file: string; phase?: 'start' | 'end'; ids?: string[] };

/** Record renames, fsyncs (start and end, by file) and opens while `body` runs. */
async function recording<T>(body: (events: Ev[]) => Promise<T>): Promise<{ out: T; events: Ev[] }> {
  const events: Ev[] = [];
  let seq = 0;
  const fdPath = new Map<number, string>();
  const orig = { open: fs.open, openSync: fs.openSync, fsync: fs.fsync, fdatasync: fs.fdatasync, renameSync: fs.renameSync, rename: fs.rename, writeSync: fs.writeSync };
  const m = fs as unknown as Record<string, unknown>;
  m.openSync = (p: fs.PathLike, ...a: unknown[]) => { const fd = (orig.openSync as (...x: unknown[]) => number)(p, ...a); fdPath.set(fd, String(p)); return fd; };
  m.open = (p: fs.PathLike, ...a: unknown[]) => {
    const cb = a.pop() as (e: Error | null, fd?: number) => void;
    (orig.open as (...x: unknown[]) => void)(p, ...a, (e: Error | null, fd?: number) => { if (!e) fdPath.set(fd!, String(p)); cb(e, fd); });
  };
  // fsync and fdatasync (contents and size) both count as making a file durable
  for (const name of ['fsync', 'fdatasync'] as const) {
    m[name] = (fd: number, cb: (e: Error | null) => void) => {
      const file = fdPath.get(fd) ?? `fd ${fd}`;
      events.push({ seq: seq++, op: 'fsync', file, phase: 'start' });
      orig[name](fd, (e) => { events.push({ seq: seq++, op: 'fsync', file, phase: 'end' }); cb(e); });
    };
  }
  m.renameSync = (a: fs.PathLike, b: fs.PathLike) => { orig.renameSync(a, b); events.push({ seq: seq++, op: 'rename', file: String(b) }); };
  // writes to a journal segment: which tasks' records they carry
  m.writeSync = (fd: number, buf: Buffer, off: number, len: number, pos: number) => {
    const n = (orig.writeSync as (...x: unknown[]) => number)(fd, buf, off, len, pos);
    const file = fdPath.get(fd) ?? '';
    if (file.includes(`${path.sep}journal${path.sep}`)) {
      assert.equal(n, len, 'a journal batch is written whole');
      events.push({ seq: seq++, op: 'journal', file, ids: decodeRecords(buf.subarray(off, off + n)).map((r) => r.id) });
    }
    return n;
  };
  try {
    const out = await body(events);
    return { out, events };
  } finally {
    Object.assign(m, orig);
  }
}

function check(events: Ev[], s: SpoolDir, id: string, qdir: string): void {
  const resolved = events.find((e) => e.op === 'resolved' && e.file === id);
  assert.ok(resolved, `${id} resolved`);
  const placed = events.find((e) => e.op === 'rename' && e.file === path.join(qdir, id));
  assert.ok(placed && placed.seq < resolved.seq, `${id}: renamed into ${qdir} before it resolved`);
  const tmp = path.join(s.tmp, id);
  const fileSynced = events.find((e) => e.op === 'fsync' && e.phase === 'end' && e.file === tmp);
  assert.ok(fileSynced && fileSynced.seq < placed.seq, `${id}: its file was fsynced before the rename`);
  // a directory fsync of qdir that started after the rename and ended before the resolve
  const starts = events.filter((e) => e.op === 'fsync' && e.file === qdir && e.phase === 'start' && e.seq > placed.seq && e.seq < resolved.seq);
  const ok = starts.some((st) => {
    const startsBefore = events.filter((e) => e.op === 'fsync' && e.file === qdir && e.phase === 'start' && e.seq <= st.seq).length;
    const end = events.filter((e) => e.op === 'fsync' && e.file === qdir && e.phase === 'end')[startsBefore - 1];
    return end !== undefined && end.seq < resolved.seq;
  });
  assert.ok(ok, `${id}: a directory fsync of ${qdir} started after its rename and completed before it resolved`);
}

test('without a journal: concurrent enqueues share directory fsyncs, and each resolves only once its task is durable', async () => {
  const dir = path.join(tmpDir('uwcore-spool-commit-'), 'q');
  const s = SpoolDir.prepare(dir, { journal: false });
  const N = 200;
  const packets = Array.from({ length: N }, (_, i) => encodePacket([['i', String(i)], ['ud_spool_func', 'f'], ['ud_spool_ret', '-2']]));
  const { out: ids, events } = await recording(async (events) => {
    return Promise.all(packets.map(async (p, i) => {
      const id = await s.enqueue(p, i % 10 === 0 ? { priority: 3 } : {});
      // at the moment it resolves: the file is in place, complete
      const q = i % 10 === 0 ? s.queueDir(3) : dir;
      assert.deepEqual(fs.readFileSync(path.join(q, id)), p);
      events.push({ seq: -1, op: 'resolved', file: id });
      return id;
    }));
  });
  // the order of the events is their place in the list
  let k = 0;
  const ordered = events.map((e) => ({ ...e, seq: k++ }));
  for (let i = 0; i < N; i++) check(ordered, s, ids[i]!, i % 10 === 0 ? s.queueDir(3) : dir);
  const dirSyncs = ordered.filter((e) => e.op === 'fsync' && e.file === dir && e.phase === 'start').length;
  assert.ok(dirSyncs < N * 0.9, `directory fsyncs are shared: ${dirSyncs} for ${N} tasks`);
  // the priority directory's own entry was made durable (an fsync of the top directory after its mkdir)
  assert.ok(ordered.some((e) => e.op === 'fsync' && e.file === dir), 'the top directory was fsynced');
  assert.equal(fs.readdirSync(s.tmp).length, 0, 'nothing is left in tmp/');
});

test('without a journal: a completed task\'s file is reused from free/: overwritten, truncated, durable like a new one', async () => {
  const dir = path.join(tmpDir('uwcore-spool-reuse-'), 'q');
  const s = SpoolDir.prepare(dir, { journal: false });
  // files of completed tasks, larger than the tasks that will reuse them
  const old = encodePacket([['old', 'x'.repeat(3000)], ['ud_spool_func', 'f']]);
  const olds: string[] = [];
  for (let i = 0; i < 20; i++) { const id = newTaskId(); fs.writeFileSync(path.join(s.free, id), old, { mode: 0o600 }); olds.push(id); }
  const inodes = new Set(olds.map((id) => fs.statSync(path.join(s.free, id)).ino));
  // one of them has a second link (a stale entry a machine crash can leave on a filesystem without a
  // journal): it must not be overwritten
  const linked = path.join(path.dirname(dir), 'other-link');
  fs.linkSync(path.join(s.free, olds[0]!), linked);
  const at = Math.floor(Date.now() / 1000) + 3600;
  const packets = Array.from({ length: 30 }, (_, i) => encodePacket([['i', String(i)], ['ud_spool_func', 'f'], ['ud_spool_ret', '-2']]));
  const { out: ids, events } = await recording(async (events) => Promise.all(packets.map(async (p, i) => {
    const id = await s.enqueue(p, i === 5 ? { at: at * 1000 } : {});
    events.push({ seq: -1, op: 'resolved', file: id });
    return id;
  })));
  let k = 0;
  const ordered = events.map((e) => ({ ...e, seq: k++ }));
  let reused = 0;
  for (let i = 0; i < ids.length; i++) {
    const f = path.join(dir, ids[i]!);
    const st = fs.statSync(f);
    if (inodes.has(st.ino)) reused++;
    assert.equal(st.size, packets[i]!.length, 'a reused file is truncated to the new task');
    assert.deepEqual(decodePacket(fs.readFileSync(f)).vars.get('i'), String(i));
    assert.equal(st.mode & 0o777, 0o600);
    if (i === 5) assert.equal(Math.round(st.mtimeMs / 1000), at, '`at` is the mtime of a reused file too');
    check(ordered, s, ids[i]!, dir);
  }
  assert.equal(reused, 19, 'every free file with a single link was reused');
  assert.deepEqual(fs.readFileSync(linked), old, 'a file with another link is never overwritten');
  assert.equal(fs.readdirSync(s.free).length, 0);
  assert.equal(fs.readdirSync(s.tmp).length, 0);
});

test('the spooler keeps completed files in free/ (at most its cap) instead of deleting them', () => {
  const dir = path.join(tmpDir('uwcore-spool-recycle-'), 'q');
  const s = SpoolDir.prepare(dir);
  s.countFree();
  const mk = () => { const f = path.join(s.running, newTaskId()); fs.writeFileSync(f, 'x'); return f; };
  const a = mk();
  s.recycle(a, 1, 2);
  assert.ok(fs.existsSync(path.join(s.free, path.basename(a))));
  const b = mk();
  fs.linkSync(b, `${b}-link`);
  s.recycle(b, 2, 2);
  assert.ok(!fs.existsSync(b) && !fs.existsSync(path.join(s.free, path.basename(b))), 'a file with another link is deleted');
  const c = mk();
  s.recycle(c, 1, 2);
  const d = mk();
  s.recycle(d, 1, 2);
  assert.ok(!fs.existsSync(d) && !fs.existsSync(path.join(s.free, path.basename(d))), 'over the cap: deleted');
  assert.equal(s.countFree(), 2);
});

/** The journal's promise: when .spool() resolves, the task's file is in place and a record of it (its
 *  exact bytes) was written to a journal segment before an fdatasync of that segment that completed. */
function checkJournaled(events: Ev[], id: string, file: string): void {
  const resolved = events.find((e) => e.op === 'resolved' && e.file === id);
  assert.ok(resolved, `${id} resolved`);
  const placed = events.find((e) => e.op === 'rename' && e.file === file);
  assert.ok(placed && placed.seq < resolved.seq, `${id}: renamed into place before it resolved`);
  const w = events.find((e) => e.op === 'journal' && e.ids!.includes(id));
  assert.ok(w && w.seq < resolved.seq, `${id}: its record was written to the journal before it resolved`);
  const starts = events.filter((e) => e.op === 'fsync' && e.phase === 'start' && e.file === w.file);
  const ends = events.filter((e) => e.op === 'fsync' && e.phase === 'end' && e.file === w.file);
  const k = starts.findIndex((st) => st.seq > w.seq);
  assert.ok(k >= 0 && ends[k] && ends[k].seq < resolved.seq, `${id}: an fdatasync of ${path.basename(w.file)} started after its record was written and completed before it resolved`);
}

test('journal: concurrent enqueues share one fdatasync per batch; each resolves once its record is durable', { skip: bootId() === null && 'no boot id (not Linux)' }, async () => {
  const dir = path.join(tmpDir('uwcore-spool-journal-'), 'q');
  const s = SpoolDir.prepare(dir);
  const N = 300;
  const at = Math.floor(Date.now() / 1000) + 3600;
  const packets = Array.from({ length: N }, (_, i) => encodePacket([['i', String(i)], ['ud_spool_func', 'f'], ['ud_spool_ret', '-2']]));
  const body = Buffer.from('a body');
  // three waves: a batch, then batches formed while an fdatasync is in flight
  const { out: ids, events } = await recording(async (events) => {
    const out: Array<Promise<string>> = [];
    for (let i = 0; i < N; i++) {
      if (i === 100 || i === 200) await new Promise((r) => setImmediate(r));
      out.push(s.enqueue(packets[i]!, i % 10 === 0 ? { priority: 3 } : i === 7 ? { at: at * 1000, body } : {}).then((id) => {
        events.push({ seq: -1, op: 'resolved', file: id });
        return id;
      }));
    }
    return Promise.all(out);
  });
  let k = 0;
  const ordered = events.map((e) => ({ ...e, seq: k++ }));
  for (let i = 0; i < N; i++) {
    const q = i % 10 === 0 ? s.queueDir(3) : dir;
    checkJournaled(ordered, ids[i]!, path.join(q, ids[i]!));
    assert.deepEqual(fs.readFileSync(path.join(q, ids[i]!)), i === 7 ? Buffer.concat([packets[i]!, body]) : packets[i]);
  }
  const fsyncs = ordered.filter((e) => e.op === 'fsync' && e.phase === 'start');
  assert.ok(fsyncs.length <= 10, `a few fsyncs for ${N} tasks (${fsyncs.length}), none per task`);
  assert.ok(fsyncs.every((e) => e.file.startsWith(s.journalDir)), `only the journal is fsynced: ${fsyncs.map((e) => e.file).join(' ')}`);
  // the records replay to exactly the files: id, priority, `at`, bytes
  const segs = fs.readdirSync(s.journalDir);
  assert.ok(segs.length >= 1 && segs.every((n) => parseSegmentName(n)?.pid === process.pid));
  const recs = segs.flatMap((n) => decodeRecords(fs.readFileSync(path.join(s.journalDir, n))));
  assert.equal(recs.length, N);
  const r7 = recs.find((r) => r.id === ids[7])!;
  assert.equal(r7.at, at * 1000);
  assert.deepEqual(r7.data, Buffer.concat([packets[7]!, body]));
  assert.equal(recs.find((r) => r.id === ids[10])!.priority, '3');
  // a checkpoint (syncfs) retires the segments within about a second; closing retires the rest
  await new Promise((r) => setTimeout(r, 1500));
  assert.deepEqual(fs.readdirSync(s.journalDir), [], 'sealed and checkpointed');
  await s.enqueue(packets[0]!, {});
  assert.equal(fs.readdirSync(s.journalDir).length, 1);
  s.closeJournal();
  assert.deepEqual(fs.readdirSync(s.journalDir), [], 'closing checkpoints');
  assert.equal(fs.readdirSync(s.tmp).length, 0);
});

test('journal recovery: a dead writer of this boot is checkpointed, nothing re-created; after a machine restart the records are replayed', { skip: bootId() === null && 'no boot id (not Linux)' }, () => {
  const dir = path.join(tmpDir('uwcore-spool-replay-'), 'q');
  const s = SpoolDir.prepare(dir);
  const pkt = (i: number) => encodePacket([['i', String(i)], ['ud_spool_func', 'f'], ['ud_spool_ret', '-2']]);
  const ids = Array.from({ length: 6 }, () => newTaskId());
  const at = (Math.floor(Date.now() / 1000) + 600) * 1000;
  const seg = (boot: string, pid: number) => {
    const recs = ids.map((id, i) => encodeRecord(id, i === 1 ? '5' : null, i === 2 ? at : undefined, [pkt(i)]));
    // a torn record at the end (a batch whose fdatasync never completed: never acknowledged)
    const torn = encodeRecord(newTaskId(), null, undefined, [pkt(99)]).subarray(0, 30);
    const f = path.join(s.journalDir, `${boot}_${pid}_123_abcd_1.log`);
    fs.writeFileSync(f, Buffer.concat([...recs, torn]));
    return f;
  };
  const dead = 2 ** 22 + 12345; // above pid_max's default: no such process
  // 1. the same boot, a writer that died: its tasks' files are in the page cache, some completed since
  fs.writeFileSync(path.join(dir, ids[0]!), pkt(0));
  const f1 = seg(bootId()!, dead);
  assert.deepEqual(s.recoverJournals(), []);
  assert.ok(!fs.existsSync(f1), 'checkpointed and deleted');
  assert.deepEqual(fs.readdirSync(dir).filter((n) => n.startsWith('uwsgi_')), [ids[0]], 'completed tasks are not re-created');
  // a live writer's segment (this process) is left alone
  const live = path.join(s.journalDir, `${bootId()}_${process.pid}_${fs.readFileSync(`/proc/${process.pid}/stat`, 'latin1').split(') ')[1]!.split(' ')[19]}_abcd_1.log`);
  fs.writeFileSync(live, encodeRecord(newTaskId(), null, undefined, [pkt(7)]));
  s.recoverJournals();
  assert.ok(fs.existsSync(live), 'a live writer\'s segment is kept');
  fs.unlinkSync(live);
  // 2. an earlier boot: what a machine crash leaves of the same tasks
  //    0: in place, intact; 1: missing (priority 5); 2: missing, with `at`; 3: a reused file whose new
  //    contents never reached the disk (an old task's bytes under the new name); 4: claimed by a spooler
  //    (running/<pid>/), empty; 5: failed/, intact
  fs.writeFileSync(path.join(dir, ids[3]!), pkt(42));
  fs.mkdirSync(path.join(s.running, '4242'));
  fs.writeFileSync(path.join(s.running, '4242', ids[4]!), '');
  fs.writeFileSync(path.join(s.failed, ids[5]!), pkt(5));
  const f2 = seg('0123456789abcdef0123456789abcdef', dead);
  const replayed = s.recoverJournals();
  assert.deepEqual(replayed.sort(), [ids[1], ids[2], ids[3], ids[4]].sort());
  assert.ok(!fs.existsSync(f2));
  assert.deepEqual(fs.readFileSync(path.join(dir, ids[0]!)), pkt(0));
  assert.deepEqual(fs.readFileSync(path.join(s.queueDir('5'), ids[1]!)), pkt(1));
  assert.deepEqual(fs.readFileSync(path.join(dir, ids[2]!)), pkt(2));
  assert.equal(fs.statSync(path.join(dir, ids[2]!)).mtimeMs, at, '`at` is restored as the mtime');
  assert.deepEqual(fs.readFileSync(path.join(dir, ids[3]!)), pkt(3), 'stale contents are rewritten');
  assert.deepEqual(fs.readFileSync(path.join(s.running, '4242', ids[4]!)), pkt(4), 'rewritten where it is');
  assert.ok(!fs.existsSync(path.join(dir, ids[4]!)) && !fs.existsSync(path.join(dir, ids[5]!)), 'no second copy of a running or failed task');
  assert.equal(fs.readdirSync(s.tmp).length, 0);
});
