// Unit tests of the spool file format (uWSGI's packet, byte for byte), the args encoding, and the
// master side of the plugin (service registration, stats section) with a stand-in PluginApi.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { CorruptSpoolFile, argsToVars, decodePacket, encodePacket, newTaskId, varsToArgs } from '../../plugins/spooler/format.js';
import { SpoolDir } from '../../plugins/spooler/queue.js';
import plugin from '../../plugins/spooler/index.js';
import { tmpDir } from '../helpers/server.js';

test('encodes exactly the bytes uWSGI writes', () => {
  // [R] uwsgi.spool({b'action': b'retry', b'num': b'42'}) in uWSGI 2.0.21
  const uwsgi = Buffer.from('\x11\x18\x00\x00\x06\x00action\x05\x00retry\x03\x00num\x02\x0042', 'latin1');
  assert.deepEqual(encodePacket([['action', 'retry'], ['num', '42']]), uwsgi);
  const p = decodePacket(uwsgi);
  assert.deepEqual([...p.vars], [['action', 'retry'], ['num', '42']]);
  assert.equal(p.body, null);
});

test('the body follows the vars block; utf-8 keys and values round-trip', () => {
  const body = Buffer.from([0, 1, 2, 255]);
  const buf = encodePacket([['ключ', 'значение ✓'], ['uwcore_body_size', '4']], body);
  const p = decodePacket(buf);
  assert.equal(p.vars.get('ключ'), 'значение ✓');
  assert.deepEqual(p.body, body);
});

test('truncated and foreign files are refused as corrupt', () => {
  const good = encodePacket([['a', 'b'], ['uwcore_body_size', '3']], Buffer.from('xyz'));
  for (const bad of [Buffer.alloc(0), Buffer.from([17, 0]), Buffer.from([0, 0, 0, 0]), good.subarray(0, 8), good.subarray(0, good.length - 1), Buffer.from([17, 3, 0, 0, 9, 0, 97])]) {
    assert.throws(() => decodePacket(bad), CorruptSpoolFile, bad.toString('hex'));
  }
});

test('args: strings as they are, other JSON values encoded and decoded faithfully', () => {
  const { vars, json } = argsToVars({ s: 'x', n: 42, b: false, o: { a: [1, null] }, skip: undefined });
  assert.deepEqual(vars, [['s', 'x'], ['n', '42'], ['b', 'false'], ['o', '{"a":[1,null]}']]);
  assert.deepEqual(json, ['n', 'b', 'o']);
  const p = decodePacket(encodePacket([...vars, ['ud_spool_func', 'f'], ['uwcore_json', JSON.stringify(json)]]));
  assert.deepEqual(varsToArgs(p, 'ID'), { s: 'x', n: 42, b: false, o: { a: [1, null] }, spooler_task_name: 'ID' });
  assert.throws(() => argsToVars({ at: '1' }), /reserved: give it as an option/);
  assert.throws(() => argsToVars({ ud_spool_func: '1' }), /reserved for the spooler/);
  assert.throws(() => argsToVars({ b: Buffer.from('x') }), /pass bytes as `body`/);
  assert.throws(() => argsToVars({ big: 1n }), /bigint/);
  assert.throws(() => encodePacket([['k', 'x'.repeat(40_000)], ['l', 'y'.repeat(40_000)]]), /vars block holds at most 65535 bytes/);
});

test('task ids follow uWSGI\'s spool file names and are unique', () => {
  const ids = new Set(Array.from({ length: 1000 }, () => newTaskId()));
  assert.equal(ids.size, 1000);
  for (const id of [...ids].slice(0, 3)) assert.match(id, new RegExp(`^uwsgi_spoolfile_on_[A-Za-z0-9.-]+_${process.pid}_\\d+_\\d+_\\d+_\\d{6}$`));
});

test('enqueue writes a durable file in place and leaves nothing in tmp/', async () => {
  const dir = path.join(tmpDir('uwcore-spool-unit-'), 'q');
  const s = SpoolDir.prepare(dir);
  const ids = await Promise.all(Array.from({ length: 20 }, (_, i) => s.enqueue(encodePacket([['i', String(i)]]), { priority: i % 2 ? 3 : null })));
  assert.equal(new Set(ids).size, 20);
  assert.deepEqual(fs.readdirSync(s.tmp), []);
  const q = s.listQueued();
  assert.equal(q.length, 20);
  assert.deepEqual(q.slice(0, 10).map((t) => t.priority), Array(10).fill(3));
  assert.equal(s.countQueued(), 20);
});

test('master side: one service process per dir × --spooler-processes; stats add spoolers[]', async () => {
  const base = tmpDir('uwcore-spool-stats-');
  const dirs = [path.join(base, 'a'), path.join(base, 'b')];
  const taps: Record<string, (doc: Record<string, unknown>) => Record<string, unknown>> = {};
  const rpc: Record<string, (p: unknown) => unknown> = {};
  const services: Record<string, { count: number; title: string }> = {};
  const noop = () => undefined;
  const log = { info: noop, warn: noop, error: noop, debug: noop, trace: noop, fatal: noop, child: () => log, level: 'info', isLevelEnabled: () => false };
  const api = {
    options: { spooler: dirs, 'spooler-processes': 2, 'spooler-frequency': 30, 'spooler-retry-delay': 5, 'spooler-max-retries': 10, 'spooler-harakiri': 0, 'spooler-max-tasks': 0, 'spooler-import': [] },
    config: {}, log, process: 'master', workerId: 0,
    hooks: { stats: { tap: (_n: string, fn: (doc: Record<string, unknown>) => Record<string, unknown>) => { taps.stats = fn; } } },
    services: { register: (n: string, spec: { count: number; title: string }) => { services[n] = spec; } },
    rpc: { handle: (m: string, fn: (p: unknown) => unknown) => { rpc[m] = fn; }, call: async () => null },
    onClose: noop,
    error: (code: string, message: string) => Object.assign(new Error(message), { code, plugin: 'spooler' }),
  };
  const out = await plugin.setup!(api as never) as { dirs: readonly string[] };
  assert.deepEqual(out.dirs, dirs);
  assert.equal(services.spooler!.count, 4);
  for (const d of dirs) assert.equal(fs.statSync(d).mode & 0o777, 0o750);
  rpc.hello!({ index: 1, pid: 111, names: ['send_email'] });
  rpc.hello!({ index: 3, pid: 333, names: [] });
  rpc.progress!({ index: 1, pid: 111, delta: { done: 5, failed: 1, retried: 2, running: 'uwsgi_spoolfile_on_x' } });
  rpc.hello!({ index: 1, pid: 112, names: ['send_email'] }); // respawned
  rpc.progress!({ index: 1, pid: 112, delta: { done: 2, failed: 0, retried: 0, running: null } });
  const s = new SpoolDir(dirs[0]!);
  await s.enqueue(encodePacket([['k', 'v']]), {});
  fs.writeFileSync(path.join(s.failed, 'uwsgi_spoolfile_on_dead'), '');
  const doc = taps.stats!({ version: 'x' });
  const sp = doc.spoolers as Array<Record<string, unknown>>;
  assert.equal(sp.length, 4);
  assert.deepEqual(sp.map((x) => [x.dir, x.pid]), [[dirs[0], 112], [dirs[0], 0], [dirs[1], 333], [dirs[1], 0]]);
  assert.deepEqual({ tasks: sp[0]!.tasks, queued: sp[0]!.queued, failed: sp[0]!.failed, respawns: sp[0]!.respawns, running: sp[0]!.running }, { tasks: 7, queued: 1, failed: 1, respawns: 1, running: 0 });
  assert.deepEqual(rpc.names!({ dir: dirs[0] }), ['send_email']);
  assert.equal(rpc.names!({ dir: '/elsewhere' }), null);
});

test('priority directories are scanned lowest first, whatever their spelling (uWSGI writes them as given)', () => {
  const dir = path.join(tmpDir('uwcore-spool-prio-'), 'q');
  const s = SpoolDir.prepare(dir);
  const put = (sub: string, name: string) => {
    fs.mkdirSync(path.join(dir, sub), { recursive: true });
    fs.writeFileSync(path.join(dir, sub, name), encodePacket([['k', name]]));
  };
  put('', 'uwsgi_spoolfile_on_none');
  put('007', 'uwsgi_spoolfile_on_p7');
  put('2', 'uwsgi_spoolfile_on_p2');
  put('10', 'uwsgi_spoolfile_on_p10');
  put('tmp', 'uwsgi_spoolfile_on_in_tmp');
  assert.deepEqual(s.listQueued().map((t) => [t.id, t.priority]), [
    ['uwsgi_spoolfile_on_p2', 2], ['uwsgi_spoolfile_on_p7', 7], ['uwsgi_spoolfile_on_p10', 10], ['uwsgi_spoolfile_on_none', null],
  ]);
});
