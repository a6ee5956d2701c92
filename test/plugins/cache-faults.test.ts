// Faults: a worker killed with kill -9 in the middle of a burst of sets never wedges the cache (the other
// workers' calls keep completing); a worker flooding the cache slows only itself and the master's memory stays
// within items × (keysize + blocksize) plus a bounded overhead.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { freePort, startUwcore } from '../helpers/server.js';
import { call, writeCacheApp } from './cache-app.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function workerPids(output: string): number[] {
  return [...output.matchAll(/spawned uwcore worker \d+ \(pid: (\d+)/g)].map((m) => Number(m[1]));
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]);
}

test('kill -9 of a worker during a burst of sets: the other worker\'s calls keep completing, nothing is wedged or corrupted', async () => {
  const app = writeCacheApp();
  const port = await freePort();
  const s = await startUwcore(['--http', `127.0.0.1:${port}`, '--app', app, '--disable-logging', '--processes', '2', '--cache2', 'name=b,items=50000,blocksize=1k']);
  try {
    const [victim, survivor] = workerPids(s.output());
    assert.ok(victim && survivor);
    let killedAt = Infinity;
    let stop = false;
    const results: Array<{ sent: number; done: number; status: number; pid?: number; ok?: number; n?: number }> = [];
    const lane = async (l: number) => {
      for (let i = 0; !stop; i++) {
        const sent = Date.now();
        try {
          const r = await call(port, `/burst?n=400&size=200&mod=100&p=L${l}`);
          results.push({ sent, done: Date.now(), status: r.status, pid: r.json.pid, ok: r.json.ok as number, n: r.json.n as number });
        } catch {
          results.push({ sent, done: Date.now(), status: 0 });
        }
      }
    };
    const lanes = Array.from({ length: 6 }, (_, l) => lane(l));
    await sleep(400);
    killedAt = Date.now();
    process.kill(victim, 'SIGKILL');
    await s.waitFor(/respawned uwcore worker \d+ \(new pid: \d+\)/, 15_000);
    await sleep(500);
    stop = true;
    await Promise.all(lanes);

    const ok = results.filter((r) => r.status === 200);
    for (const r of ok) assert.equal(r.ok, r.n, 'every set of a completed burst resolved true');
    assert.ok(ok.some((r) => r.pid === victim && r.done < killedAt), 'the victim was serving bursts before the kill');
    assert.ok(ok.some((r) => r.pid === survivor && r.sent < killedAt && r.done > killedAt), 'a burst in flight on the other worker during the kill completed');
    const after = ok.filter((r) => r.sent > killedAt);
    assert.ok(after.filter((r) => r.pid === survivor).length >= 2, 'the other worker kept serving bursts after the kill');
    const failedLate = results.filter((r) => r.status !== 200 && r.sent > killedAt + 100);
    assert.deepEqual(failedLate, [], 'only requests already on the killed worker may fail');

    // the cache is consistent: stats agree with keys(), a set through any worker is read back
    const keys = (await call(port, '/keys?c=b')).json.r as string[];
    const st = (await call(port, '/stats?c=b')).json.r as Record<string, number>;
    assert.equal(st.items, keys.length);
    assert.ok(keys.length > 0);
    for (let i = 0; i < 6; i++) {
      assert.equal((await call(port, `/set?k=after${i}&v=${i}`)).json.r, true);
      assert.equal((await call(port, `/get?k=after${i}`)).json.v, String(i));
    }
  } finally {
    assert.equal(await s.stop(), 0);
  }
});

test('a worker flooding the cache slows only itself; the master stays within items × (keysize + blocksize) plus a bounded overhead', async () => {
  const app = writeCacheApp();
  const port = await freePort();
  const items = 64;
  const s = await startUwcore(['--http', `127.0.0.1:${port}`, '--app', app, '--disable-logging', '--processes', '2',
    '--cache2', `name=m,items=${items},blocksize=64k,purge_lru=1`, '--cache2', 'name=small,items=1000,blocksize=64']);
  try {
    const master = s.proc.pid!;
    assert.equal((await call(port, '/set?k=probe&v=1&c=small')).json.r, true);
    const rss0 = rssKiB(master);

    // 1. 100k small sets from one worker while the other answers cache reads
    const flood = call(port, '/burst?n=100000&size=16&mod=500&c=small&p=f');
    const lat: Array<{ pid: number; ms: number }> = [];
    let floodPid = 0;
    void flood.then((r) => { floodPid = r.json.pid; });
    while (floodPid === 0) {
      const t = performance.now();
      const r = await call(port, '/get?k=probe&c=small');
      assert.equal(r.json.v, '1');
      lat.push({ pid: r.json.pid, ms: performance.now() - t });
      await sleep(20);
    }
    const fr = (await flood).json;
    assert.equal(fr.ok, 100000);
    const others = lat.filter((l) => l.pid !== floodPid);
    if (others.length > 0) {
      const worst = Math.max(...others.map((l) => l.ms));
      assert.ok(worst < 1000, `a read through the other worker took ${worst.toFixed(0)} ms during the flood`);
      console.log(`# flood of 100000 sets: ${others.length} reads through the other worker, worst ${worst.toFixed(1)} ms`);
    }

    // 2. three floods of 2000 values of 64 KiB (128 MiB through the IPC each) into a 64-item cache
    const bound = items * (2048 + 65536);
    const rss: number[] = [];
    for (let f = 0; f < 3; f++) {
      const big = await call(port, `/burst?n=2000&size=65536&c=m&p=big${f}`);
      assert.equal(big.json.ok, 2000);
      const st = (await call(port, '/stats?c=m')).json.r as Record<string, number>;
      assert.equal(st.items, items);
      assert.equal(st.evictions, (f + 1) * 2000 - items);
      assert.ok(st.size <= bound, `size ${st.size} > ${bound}`);
      assert.equal(st.max_size, bound);
      await sleep(200);
      rss.push(rssKiB(master) * 1024);
    }
    const mib = (b: number) => (b / 2 ** 20).toFixed(1);
    console.log(`# master RSS ${mib(rss0 * 1024)} MiB at start, after each 128 MiB flood: ${rss.map(mib).join(', ')} MiB (cache bound ${mib(bound)} MiB)`);
    // the overhead (IPC buffers and garbage awaiting collection) is bounded: it does not grow with the volume
    assert.ok(rss[2]! - rss[0]! < 64 * 2 ** 20, `master RSS kept growing: ${rss.map(mib).join(', ')} MiB`);
    assert.ok(rss[2]! - rss0 * 1024 < bound + 192 * 2 ** 20, `master RSS grew by ${mib(rss[2]! - rss0 * 1024)} MiB`);
  } finally {
    assert.equal(await s.stop(), 0);
  }
});
