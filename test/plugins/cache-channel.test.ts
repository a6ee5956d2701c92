// The worker ↔ master socket channel in one process: a master-role server and a worker-role server that
// connects to it, every operation (including the router actions' value + Content-Type calls) and errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { Server } from '../../core/server.js';
import cachePlugin, { type CacheApi } from '../../plugins/cache/index.js';

const OWN = new Map([['cache', ['cache2', 'cache-expire-freq', 'cache-store-sync']]]);
const LP = [{ plugin: cachePlugin, origin: 'builtin' as const, file: '', requested: 'cache' }];

test('socket channel: every operation and error between a worker and the master', async () => {
  // a directory left by a master killed with kill -9 is removed by the next master
  const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
  const stale = path.join(os.tmpdir(), `uwcore-cachesock-${dead}-test`);
  fs.mkdirSync(stale, { recursive: true });
  const options: Record<string, unknown> = { cache2: ['name=a,items=4,keysize=8,blocksize=16,math_initial=5', 'name=b,items=2,purge_lru=1'] };
  const master = new Server({ options, root: pino({ level: 'silent' }), role: 'master', workerId: 0 });
  await master.setupPlugins(LP, OWN);
  master.hooks.configure.call(options); // the master tells workers where its socket is
  const file = options['__cache-socket'] as string;
  assert.equal(fs.existsSync(stale), false, 'the stale socket directory was removed');
  assert.ok(typeof file === 'string' && fs.statSync(file).isSocket(), 'the master listens on a UNIX socket');
  assert.equal(fs.statSync(file.slice(0, file.lastIndexOf('/'))).mode & 0o777, 0o700, 'in a private directory');
  const worker = new Server({ options: { ...options }, root: pino({ level: 'silent' }), role: 'worker', workerId: 1 });
  await worker.setupPlugins(LP, OWN);
  try {
    type Meta = { getMeta(k: string): Promise<unknown>; setMeta(k: string, v: Buffer, e: number | undefined, m: string | null): Promise<boolean> };
    const api = worker.apis.get('cache') as CacheApi;
    const a = api.cache();
    const b = api.cache('b') as ReturnType<CacheApi['cache']> & Meta;
    assert.deepEqual(api.names(), ['a', 'b']);
    // one turn of the event loop: everything goes in one frame, answered in order
    const r = await Promise.all([
      a.set('k1', 'v1'), a.get('k1'), a.add('k1', 'x'), a.exists('k1'), a.get('zz'), a.set('k2', Buffer.from([0, 1, 255]), { expires: 60 }),
      a.inc('n'), a.dec('n', 3), a.num('n'), a.keys(), a.del('k2'), a.del('k2'),
    ]);
    assert.deepEqual(r.map((x) => (Buffer.isBuffer(x) ? x.toString('hex') : x)), [true, '7631', false, true, null, true, 6, 3, 3, ['k1', 'k2', 'n'], true, false]);
    assert.equal(await a.set('k3', 'x'), true);
    assert.equal(await a.set('k4', 'x'), true);
    assert.equal(await a.set('k5', 'x'), false, 'full');
    assert.equal(await a.inc('k6'), null, 'full');
    await assert.rejects(a.num('k1'), { code: 'UW_ERR_CACHE_NOT_A_NUMBER' });
    await assert.rejects(a.set('123456789', 'x'), { code: 'UW_ERR_CACHE_KEY' });
    await assert.rejects(a.set('k', 'x'.repeat(17)), { code: 'UW_ERR_CACHE_VALUE_TOO_LARGE' });
    // value + Content-Type (router actions), over the wire
    assert.equal(await b.setMeta('/p', Buffer.from('<p>'), 30, 'text/html; charset=utf-8'), true);
    assert.equal(await b.setMeta('/q', Buffer.from('raw'), undefined, null), true);
    const [pv, pt, px] = await b.getMeta('/p') as [Buffer, string | null, number];
    assert.equal(pv.toString(), '<p>');
    assert.equal(pt, 'text/html; charset=utf-8');
    assert.ok(px > Date.now() + 25_000 && px <= Date.now() + 30_000);
    assert.deepEqual(((await b.getMeta('/q')) as unknown[]).slice(1), [null, 0]);
    assert.equal(await b.get('/p').then(String), '<p>');
    assert.equal(await b.set('/r', 'r'), true);
    assert.deepEqual(await b.keys(), ['/p', '/r'], 'LRU evicted /q');
    const st = await b.stats();
    assert.equal(st.evictions, 1);
    assert.equal(st.name, 'b');
    assert.equal(await a.clear(), true);
    assert.deepEqual(await a.keys(), []);
    // a large value comes back whole
    const big = Buffer.alloc(16, 7);
    assert.equal(await a.set('big', big), true);
    assert.ok((await a.get('big'))!.equals(big));
  } finally {
    await worker.runClose();
    await master.runClose();
  }
  assert.equal(fs.existsSync(file), false, 'the socket directory is removed at close');
});
