// Persistence: store=FILE survives a graceful restart and a kill -9 of the whole server (up to the last
// sync); a store written with another configuration is refused, or rebuilt with store_delete.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { freePort, runUwcore, startUwcore, tmpDir } from '../helpers/server.js';
import { call, writeCacheApp } from './cache-app.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function workerPids(output: string): number[] {
  return [...output.matchAll(/spawned uwcore worker \d+ \(pid: (\d+)/g)].map((m) => Number(m[1]));
}

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

test('store=FILE: items survive a graceful restart and a kill -9 of every process (up to the last sync)', async () => {
  const app = writeCacheApp();
  const dir = tmpDir();
  const file = path.join(dir, 'sub', 'pages.cache');
  const cfg = `name=pages,items=20,store=${file},store_sync=0.2,purge_lru=1`;
  const start = async () => {
    const port = await freePort();
    const s = await startUwcore(['--http', `127.0.0.1:${port}`, '--app', app, '--disable-logging', '--processes', '2', '--cache2', cfg]);
    return { port, s };
  };

  // 1. a fresh file is created at startup
  let { port, s } = await start();
  try {
    assert.match(s.output(), /creating a new cache store file/);
    assert.ok(fs.existsSync(file));
    for (const k of ['a', 'b', 'c']) assert.equal((await call(port, `/set?k=${k}&v=${k}${k}`)).json.r, true);
    assert.equal((await call(port, '/set?k=short&v=x&ex=0.3')).json.r, true);
    assert.equal((await call(port, '/set?k=long&v=y&ex=3600')).json.r, true);
    assert.equal((await call(port, '/inc?k=n&by=41')).json.r, 41);
    assert.equal((await call(port, '/get?k=a')).json.v, 'aa'); // a becomes the most recently used
    assert.equal(await s.stop(), 0);
  } finally {
    await s.stop();
  }
  assert.match(s.output(), /items saved to/);
  await sleep(350); // `short` expires while the server is stopped

  // 2. graceful restart: everything back (LRU order too), except what expired meanwhile
  ({ port, s } = await start());
  try {
    assert.match(s.output(), /restored 5 items from .*pages\.cache \(1 expired while the server was stopped\)/);
    assert.deepEqual((await call(port, '/keys')).json.r, ['b', 'c', 'long', 'n', 'a']);
    assert.equal((await call(port, '/get?k=short')).json.v, null);
    assert.equal((await call(port, '/num?k=n')).json.r, 41);
    // 3. changes after a sync survive kill -9 of the master and every worker at once
    assert.equal((await call(port, '/set?k=d&v=dd')).json.r, true);
    assert.equal((await call(port, '/del?k=b')).json.r, true);
    assert.equal((await call(port, '/inc?k=n')).json.r, 42);
    await sleep(700); // > store_sync (0.2 s) plus a write
    const pids = [s.proc.pid!, ...workerPids(s.output())];
    for (const pid of pids) process.kill(pid, 'SIGKILL');
    await s.exited;
    for (let i = 0; i < 40 && pids.some(alive); i++) await sleep(50);
  } finally {
    await s.stop();
  }
  assert.deepEqual(fs.readdirSync(path.dirname(file)).filter((f) => f.endsWith('.tmp')), [], 'no temporary file left behind');

  ({ port, s } = await start());
  try {
    assert.match(s.output(), /restored 5 items/);
    assert.deepEqual(((await call(port, '/keys')).json.r as string[]).sort(), ['a', 'c', 'd', 'long', 'n']);
    assert.equal((await call(port, '/get?k=d')).json.v, 'dd');
    assert.equal((await call(port, '/num?k=n')).json.r, 42);
    const st = (await call(port, '/stats')).json.r as Record<string, unknown>;
    assert.equal(st.store, file);
  } finally {
    assert.equal(await s.stop(), 0);
  }
});

test('a store file written with another configuration is refused with what to do; store_delete rebuilds it', async () => {
  const dir = tmpDir();
  const file = path.join(dir, 'c.store');
  const port = await freePort();
  let s = await startUwcore(['--http', `127.0.0.1:${port}`, '--cache2', `name=c,items=10,store=${file}`]);
  await s.stop();
  const r = await runUwcore(['--http', `127.0.0.1:${port}`, '--cache2', `name=c,items=20,store=${file}`]);
  assert.equal(r.code, 1, r.stderr);
  const line = r.stderr.trim().split('\n');
  assert.equal(line.length, 1, r.stderr);
  assert.match(line[0]!, /^uwcore: UW_ERR_CACHE_STORE \[plugin cache\]: the store file .*c\.store was written by a cache with items=10,blocksize=65536,keysize=2048, but cache "c" is configured with items=20.*; start with the old configuration, delete the file, or add store_delete/);
  // a damaged file is refused too
  const bytes = fs.readFileSync(file);
  bytes[bytes.length - 6] ^= 0xff;
  fs.writeFileSync(file, bytes);
  const r2 = await runUwcore(['--http', `127.0.0.1:${port}`, '--cache2', `name=c,items=10,store=${file}`]);
  assert.equal(r2.code, 1);
  assert.match(r2.stderr, /is damaged \(checksum mismatch\); move it away, or add store_delete/);
  // store_delete: start empty, replace the file
  const app = writeCacheApp();
  s = await startUwcore(['--http', `127.0.0.1:${port}`, '--app', app, '--cache2', `name=c,items=20,store=${file},store_delete=1`]);
  try {
    assert.match(s.output(), /store_delete is set: starting with an empty cache/);
    assert.equal((await call(port, '/set?k=x&v=1')).json.r, true);
  } finally {
    assert.equal(await s.stop(), 0);
  }
  s = await startUwcore(['--http', `127.0.0.1:${port}`, '--app', app, '--cache2', `name=c,items=20,store=${file}`]);
  try {
    assert.match(s.output(), /restored 1 items/);
    assert.equal((await call(port, '/get?k=x')).json.v, '1');
  } finally {
    await s.stop();
  }
  // a store in a directory that cannot be written stops startup
  const ro = path.join(dir, 'ro');
  fs.mkdirSync(ro, { mode: 0o500 });
  if (process.getuid?.() !== 0) {
    const r3 = await runUwcore(['--http', `127.0.0.1:${port}`, '--cache2', `name=c,items=20,store=${path.join(ro, 'x.store')}`]);
    assert.equal(r3.code, 1);
    assert.match(r3.stderr, /cannot write the store file .*x\.store: EACCES; check that its directory exists and is writable/);
  }
});
