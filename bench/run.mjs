#!/usr/bin/env node
// uwcore benchmark suite: every scenario against uwcore and its baselines (bare node:http, node:cluster, a
// raw net floor, uWSGI, gunicorn), one server at a time on loopback, same load for all, warm-up first,
// rounds interleaved (A B C, C B A, A B C …), median and spread. Writes bench/results/<date>.json and .md.
//   npm run bench
//   npm run bench -- --only hello,static --duration 10
//   node bench/run.mjs --help
import { execSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, cpuSeconds, fillSpool, freePort, probeEnv, processTree, rssKiB, runLoad, sleep, startNginx, startSampler, waitReady, watchDrain } from './lib.mjs';
import { scenarios } from './scenarios.mjs';

const HELP = `Usage: node bench/run.mjs [options]   (npm run bench -- [options])
  --only LIST         scenario ids, comma-separated; an item that is no id selects every id starting with it
                      (static = static-1m, static-range)
  --servers LIST      only these server names (e.g. uwcore,node-http)
  --duration S        measured seconds per round and server (default 3)
  --warmup S          warm-up seconds after a server starts (default 3; 0 = none); throughput scenarios
                      start each server once and freeze it (SIGSTOP) while the others run
  --rounds N          interleaved rounds (default 3)
  --threads N         load generator threads (default 1)
  --connections N     concurrent connections (default 32)
  --loadgen wrk|node  force the load generator (default: wrk when installed, else bench/loadgen.mjs)
  --out DIR           where results go (default bench/results)
  --baselines         run a scenario's baselines even when uwcore cannot run it (checks the baselines)
  --list              list the scenarios and exit
Scenarios: ${scenarios.map((s) => s.id).join(', ')}`;

function parseArgs(argv) {
  const o = { only: null, servers: null, duration: 3, warmup: 3, rounds: 3, threads: 1, connections: 32, loadgen: null, out: path.join(ROOT, 'bench/results'), list: false, baselines: false };
  const num = (name, v, min) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min) { process.stderr.write(`bench: --${name} needs a number >= ${min}, got ${JSON.stringify(v)}\n`); process.exit(2); }
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const [k, inline] = a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const val = () => inline ?? argv[++i];
    switch (k) {
      case '--only': o.only = val().split(',').map((s) => s.trim()).filter(Boolean); break;
      case '--servers': o.servers = val().split(',').map((s) => s.trim()).filter(Boolean); break;
      case '--duration': o.duration = Math.round(num('duration', val(), 1)); break;
      case '--warmup': o.warmup = Math.round(num('warmup', val(), 0)); break;
      case '--rounds': o.rounds = Math.round(num('rounds', val(), 1)); break;
      case '--threads': o.threads = Math.round(num('threads', val(), 1)); break;
      case '--connections': o.connections = Math.round(num('connections', val(), 1)); break;
      case '--loadgen': o.loadgen = val(); if (!['wrk', 'node'].includes(o.loadgen)) { process.stderr.write('bench: --loadgen is wrk or node\n'); process.exit(2); } break;
      case '--out': o.out = path.resolve(val()); break;
      case '--list': o.list = true; break;
      case '--baselines': o.baselines = true; break;
      case '-h': case '--help': process.stdout.write(HELP + '\n'); process.exit(0); break;
      default: process.stderr.write(`bench: unknown argument ${a}\n${HELP}\n`); process.exit(2);
    }
  }
  if (o.connections < o.threads) o.connections = o.threads;
  return o;
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const n = s.length; return n === 0 ? null : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2; };
const r1 = (x) => (x == null ? null : Math.round(x * 10) / 10);
const r2 = (x) => (x == null ? null : Math.round(x * 100) / 100);
const log = (s) => process.stderr.write(s + '\n');

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.list) {
    for (const s of scenarios) process.stdout.write(`${s.id.padEnd(14)} ${s.title}  [${s.servers.map((x) => x.name).join(', ')}]\n`);
    return;
  }
  const env = probeEnv();
  const tool = opts.loadgen ?? (env.wrk ? 'wrk' : 'node');
  if (tool === 'wrk' && !env.wrk) { log('bench: --loadgen wrk but wrk is not installed (npm run bench:setup)'); process.exit(2); }
  // an --only item selects the scenario with that id, else every scenario whose id starts with "item-"
  const selected = scenarios.filter((s) => !opts.only || opts.only.some((o) => s.id === o || (!scenarios.some((x) => x.id === o) && s.id.startsWith(o + '-'))));
  if (selected.length === 0) { log(`bench: no scenario matches --only ${opts.only.join(',')}; known: ${scenarios.map((s) => s.id).join(', ')}`); process.exit(2); }

  const started = new Date();
  const t0 = performance.now();
  const staticDir = fs.mkdtempSync(path.join(os.tmpdir(), 'uwcore-bench-static-'));
  fs.writeFileSync(path.join(staticDir, 'file-1m.bin'), Buffer.alloc(1 << 20, 'a'));
  const tmpDirs = [staticDir];
  const meta = {
    date: started.toISOString(),
    command: `npm run bench${process.argv.length > 2 ? ' -- ' + process.argv.slice(2).join(' ') : ''}`,
    commit: gitCommit(),
    node: process.version,
    machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? 'unknown', memGiB: r1(os.totalmem() / 2 ** 30), kernel: os.release(), loadavg: os.loadavg().map(r2) },
    loadgen: tool === 'wrk' ? `wrk (${env.wrkVersion}), ${opts.threads} thread(s), ${opts.connections} connections` : `bench/loadgen.mjs (node), ${opts.connections} connections`,
    uwsgiProtocolLoadgen: tool === 'wrk' ? `wrk with bench/wrk-uwsgi.lua (raw uwsgi packets, new connection per request), ${opts.threads} thread(s), ${opts.connections} connections` : `bench/loadgen.mjs (raw uwsgi packets, new connection per request), ${opts.connections} connections`,
    uwsgi: env.uwsgiVersion, nginx: env.nginxVersion, gunicorn: env.gunicorn ? 'installed' : null,
    settings: { duration: opts.duration, warmup: opts.warmup, rounds: opts.rounds, threads: opts.threads, connections: opts.connections },
    notes: [
      `The load generator and the servers share the same ${os.cpus().length} cores (loopback); absolute numbers are noise, ratios measured in the same run are the signal.`,
      'Servers run one at a time (the others are frozen with SIGSTOP); rounds are interleaved (A B C, C B A, …) so drift hits every server alike.',
      'Access logging is off for every server (uwcore --disable-logging, uWSGI --disable-logging).',
    ],
  };
  log(`bench: ${selected.length} scenario(s), ${opts.rounds} round(s) × ${opts.duration}s (+${opts.warmup}s warm-up), load: ${meta.loadgen}`);

  const results = [];
  try {
    for (const sc of selected) results.push(await runScenario(sc, opts, env, tool, { staticDir, tmpDirs }));
  } finally {
    for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
  }
  meta.elapsedS = r1((performance.now() - t0) / 1000);
  meta.machine.loadavgEnd = os.loadavg().map(r2);
  const doc = { meta, scenarios: results };
  fs.mkdirSync(opts.out, { recursive: true });
  const stamp = started.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
  const jsonFile = path.join(opts.out, `${stamp}.json`);
  fs.writeFileSync(jsonFile, JSON.stringify(doc, null, 2) + '\n');
  const md = renderMarkdown(doc);
  fs.writeFileSync(path.join(opts.out, `${stamp}.md`), md);
  process.stdout.write(md);
  log(`bench: done in ${meta.elapsedS}s; results in ${path.relative(process.cwd(), jsonFile)} (+ .md)`);
}

function gitCommit() {
  try { return execSync('git rev-parse --short HEAD', { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim(); } catch { return null; }
}

async function runScenario(sc, opts, env, tool, shared) {
  const out = { id: sc.id, title: sc.title, kind: sc.load.kind, target: sc.target, servers: [], skipped: null };
  let servers = sc.servers.filter((s) => !opts.servers || opts.servers.includes(s.name));
  for (const s of sc.servers) {
    if (!servers.includes(s)) continue;
    const why = s.skip(env);
    if (why) out.servers.push({ name: s.name, type: s.type, skipped: why });
  }
  servers = servers.filter((s) => !out.servers.some((x) => x.name === s.name && x.skipped));
  if (sc.load.nginx && !env.nginx) out.skipped = 'nginx is not installed (npm run bench:setup)';
  // the scenario measures the server named `uwcore`; its other uwcore variants (uwcore-hello …) are references
  else if (!servers.some((s) => s.name === 'uwcore') && !opts.baselines) out.skipped = out.servers.find((s) => s.name === 'uwcore')?.skipped ?? 'the uwcore server is not selected (--servers)';
  if (out.skipped) { log(`- ${sc.id}: skipped: ${out.skipped}`); return out; }
  log(`- ${sc.id}: ${sc.title} [${servers.map((s) => s.name).join(', ')}]`);

  const entries = servers.map((s) => ({ spec: s, result: { name: s.name, type: s.type, command: null, rounds: [], failures: [] } }));
  let nginx = null;
  let backendPort = null;
  if (sc.load.nginx) {
    backendPort = await freePort();
    const np = await freePort();
    nginx = await startNginx(np, backendPort);
    nginx.port = np;
  }
  // Throughput scenarios keep every server's process alive for the whole scenario, frozen (SIGSTOP on its
  // process group) while the others run: each is started and warmed up once — uwcore's larger JS path needs
  // 3-4 s of load before the JIT settles (measured: 785 → 3,400 req/s over six 1 s runs on --http-socket,
  // bare node:http 2,000 → 3,500) — and every round measures warm servers. Startup, idle RSS, reload and
  // nginx scenarios start a fresh server per round (nginx proxies to one backend port).
  const persistent = ['http', 'http-close', 'uwsgi'].includes(sc.load.kind) && !sc.load.nginx;
  const live = new Map();
  try {
    if (persistent) {
      for (const e of entries) {
        try {
          const srv = await startServer(sc, e.spec, shared, { nginx, backendPort });
          e.result.command = srv.command;
          if (opts.warmup > 0) await runLoad({ ...loadFor(sc, opts, tool, srv.loadPort), seconds: opts.warmup });
          freeze(srv, true);
          live.set(e, srv);
        } catch (err) {
          e.result.command ??= err.command ?? null;
          e.result.failures.push(`${e.spec.name}: ${err.message}`);
          log(`    ${e.spec.name}: failed to start: ${err.message.split('\n')[0]}`);
        }
      }
    }
    for (let r = 0; r < opts.rounds; r++) {
      const order = r % 2 === 0 ? entries : [...entries].reverse();
      for (const e of order) {
        let m;
        if (persistent) {
          const srv = live.get(e);
          if (!srv) continue;
          freeze(srv, false);
          try { m = { data: await loadRound(sc, srv, opts, tool) }; } catch (err) { m = { error: `${e.spec.name}: ${err.message}` }; }
          freeze(srv, true);
        } else {
          m = await measure(sc, e.spec, opts, tool, shared, { nginx, backendPort });
          e.result.command ??= m.command;
        }
        if (m.error) { e.result.failures.push(m.error); log(`    ${e.spec.name}: round ${r + 1} failed: ${m.error.split('\n')[0]}`); continue; }
        e.result.rounds.push(m.data);
        log(`    ${e.spec.name.padEnd(16)} round ${r + 1}: ${describeRound(sc, m.data)}`);
      }
    }
  } finally {
    for (const srv of live.values()) { freeze(srv, false); await srv.h.stop(); }
    if (nginx) await nginx.stop();
  }
  for (const e of entries) {
    e.result.summary = summarize(sc, e.result.rounds);
    out.servers.push(e.result);
  }
  out.servers.sort((a, b) => sc.servers.findIndex((s) => s.name === a.name) - sc.servers.findIndex((s) => s.name === b.name));
  computeRatios(sc, out);
  return out;
}

function describeRound(sc, d) {
  if (sc.load.kind === 'startup') return `${r1(d.ms)} ms to first response`;
  if (sc.load.kind === 'idle-rss') return `${r1(d.perWorkerKiB / 1024)} MiB per worker, ${r1(d.totalKiB / 1024)} MiB total (${d.processes} processes)`;
  if (sc.load.kind === 'drain') return `${Math.round(d.tasksPerS)} tasks/s (${d.tasks} tasks in ${Math.round(d.ms)} ms), spooler CPU ${d.cpuMsPer1k} ms per 1k tasks`;
  return `${Math.round(d.rps)} req/s, p50 ${r2(d.p50Ms)} ms, p99 ${r2(d.p99Ms)} ms, errors ${d.errors}, RSS ${r1(d.rssPeakKiB / 1024)} MiB`;
}

/** Start one server and wait for its first answer (and nginx's, in front of it). */
async function startServer(sc, spec, shared, { nginx, backendPort }) {
  const spoolDir = fs.mkdtempSync(path.join(os.tmpdir(), 'uwcore-bench-spool-'));
  shared.tmpDirs.push(spoolDir);
  const port = backendPort ?? await freePort();
  const ctx = { port, staticDir: shared.staticDir, spoolDir };
  const command = spec.describe(ctx).replace(shared.staticDir, '$STATIC').replace(spoolDir, '$SPOOL');
  const probeKind = sc.load.kind === 'uwsgi' || sc.load.nginx ? 'uwsgi' : 'http';
  if (sc.load.kind === 'drain') fillSpool(spoolDir, sc.load.tasks);
  const h = spec.spawn(ctx);
  let drained = null;
  if (sc.load.kind === 'drain') {
    // the spooler starts on the full directory at once; count the CPU of that one process (both servers
    // log "... spooler on dir DIR with pid N"), not the rest of the server starting up meanwhile
    let pid = null;
    const cpu = () => {
      pid ??= Number(/spooler on dir \S+ with pid (\d+)/.exec(h.output())?.[1]) || null;
      return pid ? cpuSeconds(pid) : processTree(h.pid).reduce((a, p) => a + cpuSeconds(p), 0);
    };
    drained = watchDrain(spoolDir, sc.load.tasks, cpu);
    drained.catch(() => undefined);
  }
  try {
    const ready = await waitReady(h, port, probeKind, sc.load.path);
    const loadPort = nginx ? nginx.port : port;
    if (sc.load.kind !== 'startup') {
      if (ready.status < 200 || ready.status >= 400) throw new Error(`answers ${ready.status} to GET ${sc.load.path}: the scenario would measure an error page`);
      if (nginx) {
        const st = await waitReady(nginx, loadPort, 'http', sc.load.path);
        if (st.status >= 400) throw new Error(`nginx answers ${st.status} in front of this server`);
      }
    }
    return { h, command, ready, loadPort, drained };
  } catch (e) {
    await h.stop();
    throw Object.assign(e, { command });
  }
}

function loadFor(sc, opts, tool, loadPort) {
  return { tool, kind: sc.load.kind === 'reload' ? 'http' : sc.load.kind, port: loadPort, path: sc.load.path, threads: opts.threads, connections: opts.connections, method: sc.load.method, bodySize: sc.load.bodySize, headers: sc.load.headers };
}

/** One measured load run against a running server, sampling its processes through /proc. */
async function loadRound(sc, srv, opts, tool) {
  const { h } = srv;
  const sampler = startSampler(h.pid);
  let hup = null;
  if (sc.load.kind === 'reload') hup = setTimeout(() => { try { process.kill(h.pid, 'SIGHUP'); } catch { /* gone */ } }, opts.duration * 300);
  const res = await runLoad({ ...loadFor(sc, opts, tool, srv.loadPort), seconds: opts.duration });
  if (hup) clearTimeout(hup);
  const s = sampler.stop();
  if (!h.alive()) throw new Error(`the server died during the run:\n${h.output().trim().split('\n').slice(-8).join('\n')}`);
  return { ...res, load1: loadavg1(), rssPeakKiB: s.rssPeakKiB, rssMedianKiB: s.rssMedianKiB, cpuSeconds: r2(s.cpuSeconds), cpuMsPer1k: res.requests ? r2((s.cpuSeconds * 1e6) / res.requests) : null };
}

/** Freeze (SIGSTOP) or thaw (SIGCONT) a server's whole process group. */
function freeze(srv, on) {
  try { process.kill(-srv.h.pid, on ? 'SIGSTOP' : 'SIGCONT'); } catch { /* gone */ }
}

/** One server, one round, from scratch: start, ready, warm up, measure, stop (startup, idle RSS, reload, nginx). */
async function measure(sc, spec, opts, tool, shared, where) {
  let srv;
  try {
    srv = await startServer(sc, spec, shared, where);
  } catch (e) {
    return { command: e.command, error: `${spec.name}: ${e.message}` };
  }
  const { h, command, ready } = srv;
  try {
    if (sc.load.kind === 'startup') return { command, data: { ms: ready.ms, status: ready.status } };
    if (sc.load.kind === 'drain') {
      const d = await srv.drained;
      const ms = d.lastMs - d.firstMs;
      const n = sc.load.tasks;
      return { command, data: { tasks: n, ms, tasksPerS: ((n - 1) * 1000) / ms, cpuSeconds: r2(d.cpuSeconds), cpuMsPer1k: r2((d.cpuSeconds * 1e6) / n) } };
    }
    if (sc.load.kind === 'idle-rss') {
      await sleep(1000);
      const tree = processTree(h.pid);
      const rss = tree.map(rssKiB);
      const workers = rss.slice(1).filter((x) => x > 0);
      const total = rss.reduce((a, b) => a + b, 0);
      return { command, data: { totalKiB: total, perWorkerKiB: workers.length ? workers.reduce((a, b) => a + b, 0) / workers.length : total, masterKiB: rss[0], processes: tree.length } };
    }
    if (opts.warmup > 0) await runLoad({ ...loadFor(sc, opts, tool, srv.loadPort), seconds: opts.warmup });
    return { command, data: await loadRound(sc, srv, opts, tool) };
  } catch (e) {
    return { command, error: `${spec.name}: ${e.message}` };
  } finally {
    await h.stop();
  }
}

/** The 1-minute load average right now: how busy the shared machine was during a round. */
function loadavg1() {
  try { return Number(fs.readFileSync('/proc/loadavg', 'latin1').split(' ')[0]); } catch { return null; }
}

function summarize(sc, rounds) {
  if (rounds.length === 0) return null;
  if (sc.load.kind === 'startup') {
    const ms = rounds.map((x) => x.ms);
    return { value: r1(median(ms)), min: r1(Math.min(...ms)), max: r1(Math.max(...ms)), unit: 'ms', spreadPct: r1(((Math.max(...ms) - Math.min(...ms)) / median(ms)) * 100) };
  }
  if (sc.load.kind === 'idle-rss') {
    const w = rounds.map((x) => x.perWorkerKiB / 1024);
    return { value: r1(median(w)), min: r1(Math.min(...w)), max: r1(Math.max(...w)), unit: 'MiB', totalMiB: r1(median(rounds.map((x) => x.totalKiB / 1024))), masterMiB: r1(median(rounds.map((x) => x.masterKiB / 1024))), processes: rounds[0].processes, spreadPct: r1(((Math.max(...w) - Math.min(...w)) / median(w)) * 100) };
  }
  if (sc.load.kind === 'drain') {
    const v = rounds.map((x) => x.tasksPerS);
    return { value: Math.round(median(v)), min: Math.round(Math.min(...v)), max: Math.round(Math.max(...v)), unit: 'tasks/s', tasks: rounds[0].tasks, spreadPct: r1(((Math.max(...v) - Math.min(...v)) / median(v)) * 100), cpuMsPer1k: r2(median(rounds.map((x) => x.cpuMsPer1k))) };
  }
  const rps = rounds.map((x) => x.rps);
  const med = median(rps);
  return {
    value: Math.round(med), unit: 'req/s', min: Math.round(Math.min(...rps)), max: Math.round(Math.max(...rps)),
    spreadPct: r1(((Math.max(...rps) - Math.min(...rps)) / med) * 100),
    p50Ms: r2(median(rounds.map((x) => x.p50Ms))), p99Ms: r2(median(rounds.map((x) => x.p99Ms))),
    errors: rounds.reduce((a, x) => a + x.errors, 0), requests: rounds.reduce((a, x) => a + x.requests, 0),
    rssPeakMiB: r1(median(rounds.map((x) => x.rssPeakKiB / 1024))),
    cpuMsPer1k: r2(median(rounds.map((x) => x.cpuMsPer1k).filter((x) => x != null))),
    load1: r2(median(rounds.map((x) => x.load1).filter((x) => x != null))),
  };
}

function computeRatios(sc, out) {
  const lower = sc.target?.lowerIsBetter === true;
  const ok = out.servers.filter((s) => s.summary);
  for (const s of ok) {
    if (s.type !== 'uwcore') continue;
    s.ratios = {};
    s.cpuRatios = {};
    for (const b of ok) {
      if (b === s || b.name.startsWith('uwcore')) continue;
      s.ratios[b.name] = r2(lower ? b.summary.value / s.summary.value : s.summary.value / b.summary.value);
      // CPU efficiency: the baseline's server CPU per request ÷ uwcore's (≥ 1: uwcore is cheaper per request).
      // Less sensitive than req/s to other work on the machine, since it counts only the server's own CPU.
      if (b.summary.cpuMsPer1k && s.summary.cpuMsPer1k) s.cpuRatios[b.name] = r2(b.summary.cpuMsPer1k / s.summary.cpuMsPer1k);
    }
    // the other uwcore variants of the scenario (e.g. routes vs none) as information
    for (const b of ok) if (b !== s && b.type === 'uwcore') s.ratios[b.name] = r2(lower ? b.summary.value / s.summary.value : s.summary.value / b.summary.value);
  }
  const u = ok.find((s) => s.name === 'uwcore');
  const t = sc.target;
  if (!t) return;
  const base = ok.find((s) => s.name === t.baseline);
  const errorsOk = !u || u.summary.errors === undefined || u.summary.errors === 0;
  if (!u) { out.verdict = { met: null, note: 'uwcore did not run' }; return; }
  if (sc.load.kind === 'reload') {
    out.verdict = { met: errorsOk, note: `uwcore: ${u.summary.errors} failed request(s) during a SIGHUP reload${base ? `; ${base.name}: ${base.summary.errors}` : ''}` };
    return;
  }
  if (!base) { out.verdict = { met: null, note: `baseline ${t.baseline} did not run` }; return; }
  const ratio = u.ratios[t.baseline];
  const min = lower ? 1.0 : t.min;
  const met = ratio >= min && errorsOk;
  out.verdict = { met, ratio, min, baseline: t.baseline, note: `${ratio} × ${t.baseline} (target ≥ ${min}${lower ? ', lower is better: baseline ÷ uwcore' : ''})${errorsOk ? '' : `; ${u.summary.errors} errors`}` };
}

// ---------------------------------------------------------------------------------------------

function renderMarkdown(doc) {
  const m = doc.meta;
  const L = [];
  L.push(`## Benchmark run ${m.date}`, '');
  L.push(`- Command: \`${m.command}\` (commit ${m.commit ?? 'unknown'}), ${m.elapsedS} s in total`);
  L.push(`- Machine: ${m.machine.cpus} × ${m.machine.cpuModel}, ${m.machine.memGiB} GiB, Linux ${m.machine.kernel}; load average at start ${m.machine.loadavg.join(' ')}${m.machine.loadavgEnd ? `, at the end ${m.machine.loadavgEnd.join(' ')}` : ''} (other work on the machine)`);
  L.push(`- Node ${m.node}; uWSGI ${m.uwsgi ?? 'not installed'}; nginx ${m.nginx ?? 'not installed'}; gunicorn ${m.gunicorn ?? 'not installed'}`);
  L.push(`- Load: ${m.loadgen}; uwsgi protocol: ${m.uwsgiProtocolLoadgen}`);
  L.push(`- Each figure: median of ${m.settings.rounds} interleaved rounds of ${m.settings.duration} s; spread = ±(max − min) ÷ 2 ÷ median. Throughput scenarios start each server once, warm it up for ${m.settings.warmup} s and freeze it (SIGSTOP) while the other servers run; startup, idle-RSS, reload and nginx scenarios start a fresh server per round (with the same warm-up); drain scenarios start a fresh server per round on a spool directory the bench has filled, and time its spooler from the first task taken to the last (tasks/s = (tasks − 1) ÷ that time; CPU: that spooler process's, over the same span)`);
  L.push('- Ratio column: uwcore ÷ baseline in req/s; in parentheses the CPU-efficiency ratio, baseline ÷ uwcore in server CPU time per request (≥ 1: uwcore spends less CPU per request). RSS: peak sum over the server\'s processes, sampled from /proc every 250 ms; CPU: utime + stime of those processes over the measured run');
  for (const n of m.notes) L.push(`- ${n}`);
  L.push('');
  const thr = doc.scenarios.filter((s) => !s.skipped && !['startup', 'idle-rss', 'drain'].includes(s.kind));
  if (thr.length) {
    L.push('| scenario | server | req/s (median) | spread | p50 ms | p99 ms | errors | RSS under load MiB | CPU ms / 1k req | uwcore ratio: req/s (CPU per req) |');
    L.push('|---|---|--:|--:|--:|--:|--:|--:|--:|---|');
    for (const sc of thr) {
      for (const s of sc.servers) {
        if (s.skipped) { L.push(`| ${sc.id} | ${s.name} | skipped: ${s.skipped} | | | | | | | |`); continue; }
        const x = s.summary;
        if (!x) { L.push(`| ${sc.id} | ${s.name} | failed: ${(s.failures[0] ?? '').split('\n')[0].replace(/\|/g, '/')} | | | | | | | |`); continue; }
        const ratios = s.ratios ? Object.entries(s.ratios).map(([k, v]) => `${v} × ${k}${s.cpuRatios?.[k] != null ? ` (${s.cpuRatios[k]})` : ''}`).join(', ') : '';
        L.push(`| ${sc.id} | ${s.name} | ${x.value} | ±${r1(x.spreadPct / 2)}% | ${x.p50Ms} | ${x.p99Ms} | ${x.errors} | ${x.rssPeakMiB} | ${x.cpuMsPer1k} | ${ratios} |`);
      }
    }
    L.push('');
  }
  const drains = doc.scenarios.filter((s) => !s.skipped && s.kind === 'drain');
  if (drains.length) {
    L.push('| scenario | server | tasks/s (median) | spread | tasks per round | spooler CPU ms / 1k tasks | uwcore ratio: tasks/s (CPU per task) |');
    L.push('|---|---|--:|--:|--:|--:|---|');
    for (const sc of drains) {
      for (const s of sc.servers) {
        if (s.skipped || !s.summary) { L.push(`| ${sc.id} | ${s.name} | ${s.skipped ? 'skipped: ' + s.skipped : `failed: ${(s.failures[0] ?? '').split('\n')[0].replace(/\|/g, '/')}`} | | | | |`); continue; }
        const x = s.summary;
        const ratios = s.ratios ? Object.entries(s.ratios).map(([k, v]) => `${v} × ${k}${s.cpuRatios?.[k] != null ? ` (${s.cpuRatios[k]})` : ''}`).join(', ') : '';
        L.push(`| ${sc.id} | ${s.name} | ${x.value} | ±${r1(x.spreadPct / 2)}% | ${x.tasks} | ${x.cpuMsPer1k} | ${ratios} |`);
      }
    }
    L.push('');
  }
  const other = doc.scenarios.filter((s) => !s.skipped && ['startup', 'idle-rss'].includes(s.kind));
  if (other.length) {
    L.push('| scenario | server | median | min – max | detail | uwcore ratio (baseline ÷ uwcore) |');
    L.push('|---|---|--:|--:|---|---|');
    for (const sc of other) {
      for (const s of sc.servers) {
        if (s.skipped || !s.summary) { L.push(`| ${sc.id} | ${s.name} | ${s.skipped ? 'skipped: ' + s.skipped : 'failed'} | | | |`); continue; }
        const x = s.summary;
        const detail = sc.kind === 'idle-rss' ? `${x.totalMiB} MiB total, master ${x.masterMiB} MiB, ${x.processes} processes` : '';
        const ratios = s.ratios ? Object.entries(s.ratios).map(([k, v]) => `${v} × ${k}`).join(', ') : '';
        L.push(`| ${sc.id} | ${s.name} | ${x.value} ${x.unit} | ${x.min} – ${x.max} | ${detail} | ${ratios} |`);
      }
    }
    L.push('');
  }
  L.push('### Targets', '');
  for (const sc of doc.scenarios) {
    if (sc.skipped) { L.push(`- ${sc.id}: not run — ${sc.skipped}`); continue; }
    const v = sc.verdict;
    if (!v) continue;
    L.push(`- ${sc.id}: ${v.met === true ? '**met**' : v.met === false ? '**not met**' : 'n/a'} — ${v.note}`);
  }
  L.push('');
  const cmds = [];
  for (const sc of doc.scenarios) for (const s of sc.servers) if (s.command) cmds.push(`- ${sc.id} / ${s.name}: \`${s.command}\``);
  if (cmds.length) L.push('<details><summary>Server command lines</summary>', '', ...cmds, '', '</details>', '');
  return L.join('\n');
}

main().catch((e) => { process.stderr.write(`bench: ${e.stack ?? e}\n`); process.exit(1); });
