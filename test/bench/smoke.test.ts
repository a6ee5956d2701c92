// The bench harness produces well-formed results: one scenario, two servers, one 1-second round.
// No speed threshold: only that every field a reader relies on is there and consistent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, tmpDir } from '../helpers/server.js';

const RUN = path.join(ROOT, 'bench/run.mjs');

test('bench: one hello round against uwcore and bare node:http gives well-formed JSON and Markdown', () => {
  const out = tmpDir('uwcore-bench-smoke-');
  try {
    const r = spawnSync(process.execPath, [RUN, '--only', 'hello', '--servers', 'uwcore,node-http', '--duration', '1', '--warmup', '0', '--rounds', '1', '--connections', '4', '--out', out], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, `bench exited ${r.status}:\n${r.stderr}`);
    const files = fs.readdirSync(out);
    const json = files.find((f) => f.endsWith('.json'));
    assert.ok(json, `no JSON result in ${files.join(', ')}`);
    assert.ok(files.includes(json!.replace(/\.json$/, '.md')), 'no Markdown next to the JSON');
    const doc = JSON.parse(fs.readFileSync(path.join(out, json!), 'utf8'));
    assert.equal(doc.meta.node, process.version);
    assert.deepEqual(doc.meta.settings, { duration: 1, warmup: 0, rounds: 1, threads: 1, connections: 4 });
    assert.match(doc.meta.loadgen, /^(wrk|bench\/loadgen\.mjs)/);
    assert.equal(doc.scenarios.length, 1);
    const sc = doc.scenarios[0];
    assert.equal(sc.id, 'hello');
    assert.equal(sc.skipped, null);
    assert.deepEqual(sc.servers.map((s: { name: string }) => s.name), ['uwcore', 'node-http']);
    for (const s of sc.servers) {
      assert.deepEqual(s.failures, [], `${s.name} failed`);
      assert.equal(s.rounds.length, 1);
      const rd = s.rounds[0];
      assert.ok(rd.requests > 0, `${s.name}: no request answered`);
      for (const k of ['rps', 'p50Ms', 'p99Ms', 'seconds', 'rssPeakKiB', 'cpuSeconds']) assert.ok(Number.isFinite(rd[k]) && rd[k] >= 0, `${s.name}.${k} = ${rd[k]}`);
      assert.ok(rd.rssPeakKiB > 1024, `${s.name}: RSS under load was not sampled`);
      assert.equal(rd.errors, rd.errorDetail.connect + rd.errorDetail.read + rd.errorDetail.write + rd.errorDetail.timeout + rd.errorDetail.status);
      assert.equal(s.summary.value, Math.round(rd.rps));
      assert.ok(s.summary.p50Ms <= s.summary.p99Ms);
      assert.match(s.command, s.name === 'uwcore' ? /^uwcore --http 127\.0\.0\.1:\d+ / : /node-server\.mjs/);
    }
    const u = sc.servers[0];
    assert.equal(u.ratios['node-http'], Math.round((u.summary.value / sc.servers[1].summary.value) * 100) / 100);
    assert.equal(typeof sc.verdict.met, 'boolean');
    assert.match(r.stdout, /\| hello \| uwcore \| \d+ \|/);
    assert.match(r.stdout, /- hello: \*\*(met|not met)\*\*/);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});

test('bench: a bad argument is a usage error (exit 2), --list names every scenario', () => {
  const bad = spawnSync(process.execPath, [RUN, '--rounds', 'zero'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--rounds needs a number/);
  const none = spawnSync(process.execPath, [RUN, '--only', 'nosuch'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(none.status, 2);
  assert.match(none.stderr, /no scenario matches --only nosuch/);
  const list = spawnSync(process.execPath, [RUN, '--list'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(list.status, 0);
  for (const id of ['hello', 'hello-close', 'uwsgi-nginx', 'post-echo', 'static-range', 'cache', 'spool', 'routing', 'startup', 'idle-rss', 'reload']) assert.match(list.stdout, new RegExp(`^${id} `, 'm'));
});
