// The cache plugin end to end: the seed's example, the API's semantics (in a single process and through the
// master's IPC), full caches, LRU, exact expiry, counters, cross-worker visibility and configuration errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { freePort, httpGet, runUwcore, startUwcore, tmpDir, writeFile, type Running } from '../helpers/server.js';
import { call, writeCacheApp } from './cache-app.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const SEED_APP = `import { cache } from 'uwcore';

// The JavaScript twin of the seed's uwsgi_module.py
export async function application(env, start_response) {
  const data = 'Hello World';
  await cache('mycache').set('return_data', data);
  const status = '200 OK';
  const response_headers = [
    ['Content-Type', 'text/plain'],
    ['Content-Length', String(data.length)],
  ];
  start_response(status, response_headers);
  return [await cache('mycache').get('return_data')];
}
`;

test('the seed\'s Low Level API example: ini with processes 2, threads 2, master, cache2 = name=mycache,items=100 answers Hello World', async () => {
  const dir = tmpDir();
  writeFile(path.join(dir, 'uwsgi_module.js'), SEED_APP);
  const port = await freePort();
  writeFile(path.join(dir, 'uwsgi.ini'), `[uwsgi]\nhttp = 127.0.0.1:${port}\nwsgi-file = uwsgi_module.js\nprocesses = 2\nthreads = 2\nmaster = true\ncache2 = name=mycache,items=100\n`);
  const s = await startUwcore(['uwsgi.ini'], { cwd: dir });
  try {
    assert.match(s.output(), /cache \\?"mycache\\?" ready: up to 100 items/);
    for (let i = 0; i < 6; i++) {
      const r = await httpGet(port, '/');
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-type'], 'text/plain');
      assert.equal(r.headers['content-length'], '11');
      assert.equal(r.body.toString(), 'Hello World');
    }
  } finally {
    assert.equal(await s.stop(), 0);
  }
});

const CACHES = [
  '--cache2', 'name=main,items=100,keysize=16,blocksize=300',
  '--cache2', 'name=small,items=3',
  '--cache2', 'name=lru,items=3,purge_lru=1',
  '--cache2', 'name=ttl,items=10,expires=1',
  '--cache2', 'max_items=10,name=math,math_initial=10',
  '--cache2', 'name=lazy,items=10,lazy_expire=true',
  '--cache-expire-freq', '0.1',
];

for (const mode of ['single process', 'master + 2 workers', 'master + 2 workers over the core rpc'] as const) {
  test(`the API (${mode}): set/get/add/update/del/exists/keys/clear, errors, full, LRU, expiry, counters`, async (t) => {
    const app = writeCacheApp();
    const port = await freePort();
    const extra = mode === 'single process' ? [] : ['--processes', '2'];
    // without a usable TMPDIR the master cannot create its private socket: workers fall back to the core rpc
    const env = mode.endsWith('rpc') ? { TMPDIR: '/nonexistent/uwcore-test' } : {};
    const s: Running = await startUwcore(['--http', `127.0.0.1:${port}`, '--app', app, '--disable-logging', ...extra, ...CACHES], { env });
    if (mode.endsWith('rpc')) assert.match(s.output(), /workers reach the caches through the slower core rpc/);
    else assert.doesNotMatch(s.output(), /slower core rpc/);
    const j = async (q: string) => {
      const r = await call(port, q);
      assert.equal(r.status, 200, `${q}: ${JSON.stringify(r.json)}`);
      return r.json.r;
    };
    try {
      await t.test('basic calls; the first --cache2 is the default cache', async () => {
        assert.equal((await call(port, '/get?k=nope')).json.v, null);
        assert.equal(await j('/set?k=a&v=hello'), true);
        assert.equal((await call(port, '/get?k=a')).json.v, 'hello');
        assert.equal((await call(port, '/get?k=a&c=main')).json.v, 'hello');
        assert.equal(await j('/set?k=a&v=over'), true, 'set overwrites');
        assert.equal((await call(port, '/get?k=a')).json.v, 'over');
        assert.equal(await j('/add?k=a&v=nope'), false, 'add does not overwrite');
        assert.equal((await call(port, '/get?k=a')).json.v, 'over');
        assert.equal(await j('/add?k=b&v=new'), true);
        assert.equal(await j('/update?k=b&v=upd'), true);
        assert.equal((await call(port, '/get?k=b')).json.v, 'upd');
        assert.equal(await j('/set?k=e&v='), true, 'an empty value is a value');
        assert.equal((await call(port, '/get?k=e')).json.v, '');
        assert.equal(await j('/exists?k=a'), true);
        assert.equal(await j('/exists?k=zz'), false);
        assert.deepEqual((await j('/keys') as string[]).sort(), ['a', 'b', 'e']);
        assert.equal(await j('/del?k=a'), true);
        assert.equal(await j('/del?k=a'), false);
        assert.equal((await call(port, '/get?k=a')).json.v, null);
        assert.equal(await j(`/set?k=${encodeURIComponent('é✓')}&v=${encodeURIComponent('ünï')}`), true, 'UTF-8 keys and values');
        assert.equal((await call(port, `/get?k=${encodeURIComponent('é✓')}`)).json.v, 'ünï');
        assert.equal(await j('/clear'), true);
        assert.deepEqual(await j('/keys'), []);
        const st = await j('/stats') as Record<string, number>;
        assert.equal(st.name, 'main');
        assert.equal(st.items, 0);
        assert.equal(st.max_items, 100);
        assert.ok(st.hits >= 6 && st.miss >= 2, JSON.stringify(st));
      });

      await t.test('values are bytes: every byte value survives, and the caller\'s Buffers are not shared with the cache', async () => {
        const r = (await call(port, '/binary?k=bin')).json;
        assert.deepEqual({ ...r, pid: 0 }, { pid: 0, stored: true, same1: true, same2: true, u8: true, u8back: [1, 2, 3] });
      });

      await t.test('calls from one process apply in the order they are made', async () => {
        assert.deepEqual(await j('/ordered?k=o'), [true, 'first', true, 'second']);
      });

      await t.test('oversized keys and values, bad arguments and unknown caches reject with UW_ERR_ codes; warnings are rate-limited', async () => {
        const before = s.output();
        for (let i = 0; i < 15; i++) {
          const r = await call(port, `/set?k=${'k'.repeat(17)}&v=x`);
          assert.equal(r.status, 500);
          assert.equal(r.json.code, 'UW_ERR_CACHE_KEY');
          assert.match(String(r.json.message), /longer than keysize \(16 bytes\)/);
        }
        // the key limit is in bytes: 6 × 3-byte characters = 18 bytes > 16
        assert.equal((await call(port, `/get?k=${encodeURIComponent('✓'.repeat(6))}`)).json.code, 'UW_ERR_CACHE_KEY');
        assert.equal((await call(port, `/set?k=${encodeURIComponent('✓'.repeat(5))}&v=x`)).json.r, true);
        for (let i = 0; i < 15; i++) {
          const r = await call(port, '/big?k=big&size=301');
          assert.equal(r.json.code, 'UW_ERR_CACHE_VALUE_TOO_LARGE');
        }
        assert.equal((await call(port, '/big?k=big&size=300')).json.r, true, 'blocksize itself fits');
        const u = await call(port, '/get?k=a&c=nope');
        assert.equal(u.json.code, 'UW_ERR_CACHE_UNKNOWN');
        assert.match(String(u.json.message), /unknown cache "nope": the caches are "main", "small"/);
        assert.equal((await call(port, '/set?k=a&v=1&ex=-1')).json.code, 'UW_ERR_CACHE_BAD_ARGUMENT');
        assert.equal((await call(port, '/inc?k=n&by=1.5')).json.code, 'UW_ERR_CACHE_BAD_ARGUMENT');
        assert.equal((await call(port, '/get?k=')).json.code, 'UW_ERR_CACHE_KEY');
        await sleep(100);
        // at most one line per process (each worker detects these itself), however many calls
        const out = s.output().slice(before.length).split('\n');
        for (const re of [/longer than keysize/, /larger than blocksize/]) {
          const lines = out.filter((l) => re.test(l));
          assert.ok(lines.length >= 1, `no warning for ${re}`);
          const pids = lines.map((l) => JSON.parse(l).pid);
          assert.equal(new Set(pids).size, pids.length, lines.join('\n'));
        }
      });

      await t.test('a full cache refuses new keys (false), still updates existing ones, and warns once', async () => {
        const before = s.output();
        for (const k of ['x', 'y', 'z']) assert.equal(await j(`/set?k=${k}&v=1&c=small`), true);
        for (let i = 0; i < 20; i++) assert.equal(await j(`/set?k=w${i}&v=1&c=small`), false);
        assert.equal(await j('/add?k=w&v=1&c=small'), false);
        assert.equal(await j('/set?k=x&v=2&c=small'), true, 'an existing key can still be updated');
        assert.equal((await call(port, '/get?k=x&c=small')).json.v, '2');
        assert.equal(await j('/inc?k=newcounter&c=small'), null, 'inc of a new key in a full cache');
        const st = await j('/stats?c=small') as Record<string, number>;
        assert.equal(st.items, 3, 'holds exactly items keys');
        assert.equal(st.full, 22);
        assert.equal(await j('/del?k=y&c=small'), true);
        assert.equal(await j('/set?k=w&v=1&c=small'), true, 'room again after a delete');
        await sleep(100);
        const lines = s.output().slice(before.length).split('\n').filter((l) => /cache \\?"small\\?" is full/.test(l));
        assert.equal(lines.length, 1, lines.join('\n'));
        assert.match(lines[0]!, /"level":40/);
      });

      await t.test('purge_lru evicts the least recently used item (get and set touch, exists does not)', async () => {
        for (const k of ['a', 'b', 'c']) assert.equal(await j(`/set?k=${k}&v=${k}&c=lru`), true);
        assert.equal((await call(port, '/get?k=a&c=lru')).json.v, 'a');
        assert.equal(await j('/set?k=d&v=d&c=lru'), true);
        assert.deepEqual(await j('/keys?c=lru'), ['c', 'a', 'd']);
        assert.equal(await j('/exists?k=c&c=lru'), true);
        assert.equal(await j('/set?k=a&v=a2&c=lru'), true);
        assert.equal(await j('/set?k=e&v=e&c=lru'), true);
        assert.deepEqual(await j('/keys?c=lru'), ['d', 'a', 'e']);
        const st = await j('/stats?c=lru') as Record<string, number>;
        assert.equal(st.evictions, 2);
        assert.equal(st.full, 0);
        assert.equal(st.items, 3);
      });

      await t.test('expiry is exact: an item is never returned once expired; the sweeper frees the memory', async () => {
        const t0 = Date.now();
        assert.equal(await j('/set?k=soon&v=1&ex=1'), true);
        const t1 = Date.now();
        assert.equal(await j('/set?k=forever&v=1&ex=0'), true);
        assert.equal(await j('/set?k=d1&v=1&c=ttl'), true, 'the cache default expires=1');
        assert.equal(await j('/set?k=d0&v=1&c=ttl&ex=0'), true, 'expires=0 overrides the default: never');
        assert.equal(await j('/set?k=lz&v=1&c=lazy&ex=0.5'), true);
        let seenAfter = 0;
        let seenBefore = 0;
        for (;;) {
          const sent = Date.now();
          const v = (await call(port, '/get?k=soon')).json.v;
          if (v !== null) {
            assert.ok(sent < t1 + 1000, `an expired item was returned ${sent - t1} ms after its set completed`);
            seenBefore++;
          } else {
            assert.ok(sent >= t0 + 1000 - 5, `the item vanished early (${sent - t0} ms)`);
            if (++seenAfter >= 2) break;
          }
          await sleep(40);
        }
        assert.ok(seenBefore >= 1);
        assert.equal(await j('/exists?k=soon'), false);
        assert.ok(!(await j('/keys') as string[]).includes('soon'));
        assert.equal((await call(port, '/get?k=forever')).json.v, '1');
        assert.equal((await call(port, '/get?k=d0&c=ttl')).json.v, '1');
        assert.equal((await call(port, '/get?k=lz&c=lazy')).json.v, null);
        // the sweeper (--cache-expire-freq 0.1) removed d1 without anyone reading it
        let st = await j('/stats?c=ttl') as Record<string, number>;
        for (let i = 0; i < 20 && st.items !== 1; i++) { await sleep(100); st = await j('/stats?c=ttl') as Record<string, number>; }
        assert.equal(st.items, 1);
        assert.equal(st.expired, 1);
        assert.equal((await call(port, '/get?k=d1&c=ttl')).json.v, null);
        // an expired key counts as absent for add, and its slot is reused
        assert.equal(await j('/add?k=soon&v=again'), true);
      });

      await t.test('inc/dec/num: 64-bit counters starting at math_initial', async () => {
        assert.equal(await j('/num?k=n&c=math'), 0);
        assert.equal(await j('/inc?k=n&c=math'), 11);
        assert.equal(await j('/inc?k=n&by=5&c=math'), 16);
        assert.equal(await j('/dec?k=n&by=20&c=math'), -4);
        assert.equal(await j('/dec?k=n&c=math'), -5);
        assert.equal(await j('/num?k=n&c=math'), -5);
        assert.equal(await j('/inc?k=n2&by=-3&c=math'), 7);
        assert.equal(await j('/set?k=s&v=text&c=math'), true);
        const r = await call(port, '/inc?k=s&c=math');
        assert.equal(r.json.code, 'UW_ERR_CACHE_NOT_A_NUMBER');
        assert.equal((await call(port, '/num?k=s&c=math')).json.code, 'UW_ERR_CACHE_NOT_A_NUMBER');
      });
    } finally {
      assert.equal(await s.stop(), 0);
    }
  });
}

test('a value set through one worker is visible through another as soon as set resolves (different pids)', async () => {
  const app = writeCacheApp();
  const port = await freePort();
  const s = await startUwcore(['--http', `127.0.0.1:${port}`, '--app', app, '--disable-logging', '--processes', '2', '--cache2', 'name=shared,items=10']);
  try {
    const pids = new Set<number>();
    for (let round = 0; round < 30; round++) {
      const set = await call(port, `/set?k=r${round}&v=v${round}`);
      assert.equal(set.json.r, true);
      // keep the writer busy so that the next connection is accepted by the other worker
      const spin = call(port, '/spin?ms=300');
      await sleep(60);
      const got = await call(port, `/get?k=r${round}`);
      const spun = await spin;
      pids.add(set.json.pid);
      pids.add(got.json.pid);
      if (got.json.pid !== set.json.pid) {
        assert.equal(got.json.v, `v${round}`, 'read through the other worker');
        assert.notEqual(spun.json.pid, got.json.pid);
        return;
      }
    }
    assert.fail(`never reached a second worker (pids seen: ${[...pids].join(', ')})`);
  } finally {
    assert.equal(await s.stop(), 0);
  }
});

test('--cache N creates a cache named default; a server without a cache says how to add one', async () => {
  const app = writeCacheApp();
  const port = await freePort();
  const s = await startUwcore(['--http', `127.0.0.1:${port}`, '--app', app, '--cache', '5', '--cache-blocksize', '8']);
  try {
    const st = (await call(port, '/stats')).json.r as Record<string, number>;
    assert.equal(st.name, 'default');
    assert.equal(st.max_items, 5);
    assert.equal(st.blocksize, 8);
    assert.equal((await call(port, '/big?k=x&size=9')).json.code, 'UW_ERR_CACHE_VALUE_TOO_LARGE');
  } finally {
    await s.stop();
  }
  const port2 = await freePort();
  const s2 = await startUwcore(['--http', `127.0.0.1:${port2}`, '--app', app, '--plugins', 'cache']);
  try {
    const r = await call(port2, '/get?k=a');
    assert.equal(r.json.code, 'UW_ERR_CACHE_NONE');
    assert.match(String(r.json.message), /--cache2 name=NAME,items=N/);
  } finally {
    await s2.stop();
  }
});

test('bad --cache2 values stop startup with one clear line (exit 2)', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['--cache2', 'items=10'], /needs a name: --cache2 name=NAME,items=N/],
    [['--cache2', 'name=a'], /cache "a" needs a maximum number of items: add items=N/],
    [['--cache2', 'name=a,items=0'], /items=0 is not an integer between 1 and/],
    [['--cache2', 'name=a,items=10,colour=blue'], /unknown key "colour"; the keys are name, items/],
    [['--cache2', 'name=a,items=10,blocksize=big'], /blocksize=big is not a size/],
    [['--cache2', 'name=a,items=10,purge_lru=maybe'], /purge_lru=maybe is not a boolean/],
    [['--cache2', 'name=a,items=10,bitmap=1'], /"bitmap" is a uWSGI cache feature uwcore does not offer/],
    [['--cache2', 'name=a,items=10', '--cache2', 'name=a,items=5'], /a cache named "a" is already defined/],
    [['--cache2', 'name=a,items=10,items=5'], /key "items" is given twice/],
    [['--cache-store', '/tmp/x'], /--cache-store persists the cache created by --cache N/],
    [['--cache', '0'], /--cache/],
    [['--cache-blocksize', '1k'], /--cache-blocksize sizes the cache created by --cache N/],
  ];
  await Promise.all(cases.map(async ([args, re]) => {
    const port = await freePort();
    const r = await runUwcore(['--http', `127.0.0.1:${port}`, ...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /^uwcore: UW_ERR_CONFIG_BAD_VALUE/);
    assert.match(lines[0]!, re);
  }));
  // uWSGI's aliases and spellings, and its layout keys (accepted with one warning)
  const port = await freePort();
  const s = await startUwcore(['--http', `127.0.0.1:${port}`, '--cache2', 'name=u,maxitems=7,key_size=64,lru=1,lazy=1,storesync=2,hashsize=100,math-initial=3']);
  try {
    assert.match(s.output(), /cache \\?"u\\?" ready: up to 7 items .*keys up to 64 bytes.*least recently used purged/);
    assert.match(s.output(), /key \\?"hashsize\\?" is not needed by uwcore/);
  } finally {
    await s.stop();
  }
  assert.ok(fs.existsSync(tmpDir()));
});
