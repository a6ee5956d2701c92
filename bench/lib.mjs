// Bench machinery: server builders, process control (start, readiness, stop, RSS/CPU sampling through
// /proc), and the load runners (wrk, or bench/loadgen.mjs).
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const APPS = path.join(ROOT, 'bench/apps');
const CLK_TCK = 100; // Linux USER_HZ

// ---------------------------------------------------------------------------------------------
// environment probes (each runs once)

function which(bin) {
  for (const d of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    const p = path.join(d, bin);
    try { fs.accessSync(p, fs.constants.X_OK); return p; } catch { /* next */ }
  }
  for (const d of ['/usr/sbin', '/sbin']) {
    const p = path.join(d, bin);
    try { fs.accessSync(p, fs.constants.X_OK); return p; } catch { /* next */ }
  }
  return null;
}

let envCache = null;
/** What is installed, and which options this uwcore build knows (from `uwcore --help`). */
export function probeEnv() {
  if (envCache) return envCache;
  const help = spawnSync(process.execPath, [path.join(ROOT, 'bin/uwcore.js'), '--help'], { encoding: 'utf8', cwd: ROOT });
  const uwcoreOptions = new Set((help.stdout ?? '').match(/--[a-z0-9][a-z0-9-]*/g) ?? []);
  const wrk = which('wrk');
  const uwsgiBin = which('uwsgi');
  let uwsgiVersion = null;
  let uwsgiPython = false;
  if (uwsgiBin) {
    uwsgiVersion = spawnSync(uwsgiBin, ['--version'], { encoding: 'utf8' }).stdout?.trim() ?? null;
    uwsgiPython = fs.existsSync('/usr/lib/uwsgi/plugins/python3_plugin.so') || spawnSync(uwsgiBin, ['--plugin', 'python3', '--help'], { encoding: 'utf8' }).status === 0;
  }
  const gunicornBin = which('gunicorn');
  const nginxBin = which('nginx');
  envCache = {
    uwcoreOptions,
    uwcoreHelpOk: help.status === 0,
    wrk,
    wrkVersion: wrk ? (spawnSync(wrk, ['--version'], { encoding: 'utf8' }).stdout ?? '').split('\n')[0].trim() : null,
    uwsgi: uwsgiBin && uwsgiPython ? uwsgiBin : null,
    uwsgiNote: !uwsgiBin ? 'uwsgi is not installed (npm run bench:setup)' : !uwsgiPython ? 'uwsgi-plugin-python3 is not installed (npm run bench:setup)' : null,
    uwsgiVersion,
    gunicorn: gunicornBin,
    nginx: nginxBin,
    nginxVersion: nginxBin ? (spawnSync(nginxBin, ['-v'], { encoding: 'utf8' }).stderr ?? '').trim().replace(/^nginx version: /, '') : null,
  };
  return envCache;
}

export function uwsgiPluginAvailable(name) {
  return fs.existsSync(`/usr/lib/uwsgi/plugins/${name}_plugin.so`);
}

// ---------------------------------------------------------------------------------------------
// server builders

function fill(args, ctx) {
  return args.map((a) => a.replace('{addr}', `127.0.0.1:${ctx.port}`).replace('{static}', ctx.staticDir).replace('{spool}', ctx.spoolDir));
}

/** uwcore: `node bin/uwcore.js ARGS --disable-logging`. Skipped when an option is unknown to this build. */
export function uwcore(name, args) {
  return {
    name, type: 'uwcore', args,
    skip(env) {
      if (!env.uwcoreHelpOk) return 'bin/uwcore.js --help failed (run npm run build)';
      const unknown = [...new Set(args.filter((a) => a.startsWith('--') && !env.uwcoreOptions.has(a)))];
      return unknown.length ? `uwcore does not know ${unknown.join(', ')} yet (that plugin is not merged)` : null;
    },
    describe: (ctx) => `uwcore ${fill(args, ctx).join(' ')} --disable-logging`,
    spawn: (ctx) => spawnServer(process.execPath, [path.join(ROOT, 'bin/uwcore.js'), ...fill(args, ctx), '--disable-logging'], {}, 'SIGTERM'),
  };
}

/** Bare node:http (workers = 0) or a node:cluster of `workers`, answering the same bytes. */
export function node(name, mode, opts = {}) {
  const workers = opts.workers ?? 0;
  return {
    name, type: 'node', workers,
    skip: () => null,
    describe: () => `node bench/apps/node-server.mjs (BENCH_MODE=${mode}${workers ? `, node:cluster ${workers} workers` : ''})`,
    spawn: (ctx) => spawnServer(process.execPath, [path.join(APPS, 'node-server.mjs')], {
      BENCH_PORT: String(ctx.port), BENCH_MODE: mode, BENCH_WORKERS: String(workers),
      BENCH_FILE: opts.file ? path.join(ctx.staticDir, opts.file) : '',
    }, 'SIGTERM'),
  };
}

/** The raw `net` responder: Node's floor for new-connection-per-request work (HTTP requests or uwsgi packets). */
export function netFloor(name, protocol = 'http') {
  return {
    name, type: 'net',
    skip: () => null,
    describe: () => `node bench/apps/net-floor.mjs (raw net, ${protocol === 'uwsgi' ? 'uwsgi packet in, ' : ''}fixed answer, close)`,
    spawn: (ctx) => spawnServer(process.execPath, [path.join(APPS, 'net-floor.mjs')], { BENCH_PORT: String(ctx.port), BENCH_FLOOR: protocol }, 'SIGTERM'),
  };
}

/**
 * uWSGI (Debian) with the Python twin app; --tcp-nodelay like uwcore and node (without it, chunked responses
 * stall on delayed ACKs: 22 req/s); access log off. SIGINT stops it (SIGTERM means "reload" in uWSGI 2.0).
 */
export function uwsgi(name, args, opts = {}) {
  const plugins = ['python3', ...(opts.plugins ?? [])];
  const base = (ctx) => ['--plugin', plugins.join(','), '--wsgi-file', path.join(APPS, 'wsgi_apps.py'), '--disable-logging', '--listen', '1024', '--buffer-size', '65535', '--tcp-nodelay', ...fill(args, ctx)];
  return {
    name, type: 'uwsgi', args,
    skip(env) {
      if (!env.uwsgi) return env.uwsgiNote;
      const missing = (opts.plugins ?? []).filter((p) => !uwsgiPluginAvailable(p));
      return missing.length ? `uWSGI plugin(s) ${missing.join(', ')} not installed` : null;
    },
    describe: (ctx) => `uwsgi ${base(ctx).join(' ').replace(path.join(APPS, 'wsgi_apps.py'), 'bench/apps/wsgi_apps.py')}`,
    spawn: (ctx) => spawnServer(probeEnv().uwsgi, base(ctx), {}, 'SIGINT'),
  };
}

/** gunicorn sync workers for the hello world, where installed. */
export function gunicorn(name, callable) {
  return {
    name, type: 'gunicorn',
    skip: (env) => (env.gunicorn ? null : 'gunicorn is not installed (optional: apt-get install gunicorn)'),
    describe: (ctx) => `gunicorn -w 1 -k sync -b 127.0.0.1:${ctx.port} wsgi_apps:${callable}`,
    spawn: (ctx) => spawnServer(probeEnv().gunicorn, ['-w', '1', '-k', 'sync', '--backlog', '1024', '-b', `127.0.0.1:${ctx.port}`, '--chdir', APPS, `wsgi_apps:${callable}`], {}, 'SIGTERM'),
  };
}

// ---------------------------------------------------------------------------------------------
// processes

function spawnServer(cmd, args, env, stopSignal) {
  const t0 = performance.now();
  const proc = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  const keep = (d) => { out += d.toString(); if (out.length > 8192) out = out.slice(-8192); };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  proc.once('error', (e) => { out += `\nspawn failed: ${e.message}`; });
  return {
    proc, pid: proc.pid, t0, exited,
    output: () => out,
    alive: () => proc.exitCode === null && proc.signalCode === null,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        try { process.kill(proc.pid, stopSignal); } catch { /* gone */ }
        const t = setTimeout(() => { try { process.kill(-proc.pid, 'SIGKILL'); } catch { /* gone */ } }, 5000);
        await exited;
        clearTimeout(t);
      }
      // leftovers of this server's own process group (workers whose master died first)
      try { process.kill(-proc.pid, 'SIGKILL'); } catch { /* none */ }
    },
  };
}

/** A TCP port that was free a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

/** One request (HTTP or uwsgi packet) on a fresh connection; resolves with the status code or null. */
export function probe(port, kind, reqPath = '/') {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let buf = '';
    const done = (v) => { s.destroy(); resolve(v); };
    s.setTimeout(2000, () => done(null));
    s.on('error', () => done(null));
    s.on('connect', () => {
      if (kind === 'uwsgi') s.write(uwsgiPacket(reqPath, port));
      else s.write(`GET ${reqPath} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`);
    });
    s.on('data', (d) => {
      buf += d.toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(buf);
      if (m) done(Number(m[1]));
      else if (buf.length > 16) done(null);
    });
    s.on('end', () => done(null));
  });
}

function uwsgiPacket(reqPath, port) {
  const vars = { REQUEST_METHOD: 'GET', REQUEST_URI: reqPath, PATH_INFO: reqPath, QUERY_STRING: '', SERVER_PROTOCOL: 'HTTP/1.1', SERVER_NAME: 'localhost', SERVER_PORT: String(port), REMOTE_ADDR: '127.0.0.1', HTTP_HOST: 'localhost' };
  const parts = [];
  for (const [k, v] of Object.entries(vars)) {
    for (const x of [k, v]) { const b = Buffer.from(x); const h = Buffer.alloc(2); h.writeUInt16LE(b.length); parts.push(h, b); }
  }
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([0, body.length & 0xff, body.length >> 8, 0]), body]);
}

/** Poll until the server answers (any HTTP status); returns ms since spawn, or throws with its output. */
export async function waitReady(handle, port, kind, reqPath, timeoutMs = 20000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (!handle.alive()) throw new Error(`exited before answering:\n${handle.output().trim().split('\n').slice(-8).join('\n')}`);
    const st = await probe(port, kind, reqPath);
    if (st !== null) return { ms: performance.now() - handle.t0, status: st };
    if (Date.now() > end) throw new Error(`no answer within ${timeoutMs} ms:\n${handle.output().trim().split('\n').slice(-8).join('\n')}`);
    await sleep(5);
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The pid and every descendant (from /proc/<pid>/stat ppid fields). */
export function processTree(rootPid) {
  const children = new Map();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let stat;
    try { stat = fs.readFileSync(`/proc/${d}/stat`, 'latin1'); } catch { continue; }
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (!children.has(ppid)) children.set(ppid, []);
    children.get(ppid).push(Number(d));
  }
  const out = [rootPid];
  for (let i = 0; i < out.length; i++) for (const c of children.get(out[i]) ?? []) out.push(c);
  return out;
}

/** VmRSS in KiB of one process (0 when gone). */
export function rssKiB(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'latin1'));
    return m ? Number(m[1]) : 0;
  } catch { return 0; }
}

/** utime + stime in seconds of one process (0 when gone). */
export function cpuSeconds(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch { return 0; }
}

/** Samples the server's process tree while load runs: peak summed RSS and CPU seconds used. */
export function startSampler(rootPid, everyMs = 250) {
  const cpu0 = new Map();
  const cpuLast = new Map();
  let peak = 0;
  const samples = [];
  const tick = () => {
    let sum = 0;
    for (const p of processTree(rootPid)) {
      sum += rssKiB(p);
      const c = cpuSeconds(p);
      if (!cpu0.has(p)) cpu0.set(p, c);
      cpuLast.set(p, c);
    }
    samples.push(sum);
    if (sum > peak) peak = sum;
  };
  tick();
  const t = setInterval(tick, everyMs);
  return {
    stop() {
      clearInterval(t);
      tick();
      let cpu = 0;
      for (const [p, c] of cpuLast) cpu += c - (cpu0.get(p) ?? 0);
      const sorted = [...samples].sort((a, b) => a - b);
      return { rssPeakKiB: peak, rssMedianKiB: sorted[Math.floor(sorted.length / 2)] ?? 0, cpuSeconds: cpu };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// load

/** Run one load measurement; resolves with { requests, rps, p50Ms, p99Ms, errors, errorDetail, tool }. */
export function runLoad({ tool, kind, port, path: reqPath = '/', seconds, threads, connections, method, bodySize, headers = [] }) {
  let cmd;
  let args;
  const env = { ...process.env };
  if (kind === 'uwsgi' && tool === 'wrk') {
    // raw uwsgi packets through wrk (bench/wrk-uwsgi.lua): a new connection per request, at C speed
    cmd = probeEnv().wrk;
    args = ['-t', String(threads), '-c', String(connections), '-d', `${seconds}s`, '--timeout', '5s', '-s', path.join(ROOT, 'bench/wrk-uwsgi.lua'), `http://127.0.0.1:${port}/`];
    env.BENCH_WRK_REPORT = path.join(ROOT, 'bench/wrk-report.lua');
    env.BENCH_PATH = reqPath;
    env.BENCH_PORT = String(port);
  } else if (kind === 'uwsgi') {
    cmd = process.execPath;
    args = [path.join(ROOT, 'bench/loadgen.mjs'), 'uwsgi', '127.0.0.1', String(port), String(seconds), String(connections), reqPath];
  } else if (tool === 'wrk') {
    cmd = probeEnv().wrk;
    args = ['-t', String(threads), '-c', String(connections), '-d', `${seconds}s`, '--timeout', '5s', '-s', path.join(ROOT, 'bench/wrk-report.lua')];
    for (const h of headers) args.push('-H', h);
    if (kind === 'http-close') { args.push('-H', 'Connection: close'); env.BENCH_HTTP10 = '1'; }
    args.push(`http://127.0.0.1:${port}${reqPath}`);
    if (method) env.BENCH_METHOD = method;
    if (bodySize) env.BENCH_BODY_SIZE = String(bodySize);
  } else {
    cmd = process.execPath;
    args = [path.join(ROOT, 'bench/loadgen.mjs'), 'http', '127.0.0.1', String(port), String(seconds), String(connections), reqPath, kind === 'http-close' ? 'close' : 'keep', method ?? 'GET', String(bodySize ?? 0)];
    if (headers.length) env.BENCH_HEADERS = headers.join('\n');
  }
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    p.once('error', reject);
    p.once('exit', () => {
      const line = out.split('\n').find((l) => l.startsWith('BENCH_JSON '));
      if (!line) { reject(new Error(`load generator produced no result:\n${out.slice(-2000)}`)); return; }
      const r = JSON.parse(line.slice(11));
      const errorDetail = { connect: r.connect, read: r.read, write: r.write, timeout: r.timeout, status: r.status };
      resolve({
        tool: kind === 'uwsgi' ? (tool === 'wrk' ? 'wrk (uwsgi packets)' : 'loadgen.mjs (uwsgi packets)') : tool === 'wrk' ? 'wrk' : 'loadgen.mjs (http)',
        requests: r.requests,
        seconds: r.duration_us / 1e6,
        rps: r.requests / (r.duration_us / 1e6),
        p50Ms: r.p50_us / 1000,
        p99Ms: r.p99_us / 1000,
        errors: r.connect + r.read + r.write + r.timeout + r.status,
        errorDetail,
      });
    });
  });
}

// ---------------------------------------------------------------------------------------------
// spool directories (the drain scenario)

const SPOOL_PREFIX = 'uwsgi_spoolfile_on_';

/** One spool file in uWSGI's format: a uwsgi packet (modifier1 17, le16 vars size, modifier2 0) whose vars
 *  are le16-length-prefixed keys and values. Written here from the format's definition, not by uwcore. */
export function spoolPacket(vars) {
  const parts = [];
  for (const [k, v] of Object.entries(vars)) {
    for (const x of [k, v]) { const b = Buffer.from(x); const h = Buffer.alloc(2); h.writeUInt16LE(b.length); parts.push(h, b); }
  }
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([17, body.length & 0xff, body.length >> 8, 0]), body]);
}

/** Fill a spool directory with n no-op tasks (the function both servers know: uwcore's bench_noop task,
 *  uWSGI's uwsgi.spooler), as distinct files, oldest first. */
export function fillSpool(dir, n) {
  const pkt = spoolPacket({ n: '1', ud_spool_func: 'bench_noop', ud_spool_ret: '-2' });
  const host = os.hostname().replace(/[^A-Za-z0-9.-]/g, '-');
  const sec = Math.floor(Date.now() / 1000) - 1;
  for (let i = 0; i < n; i++) fs.writeFileSync(path.join(dir, `${SPOOL_PREFIX}${host}_${process.pid}_${i + 1}_${i}_${sec}_${String(i % 1e6).padStart(6, '0')}`), pkt, { mode: 0o600 });
}

/** Watch a pre-filled spool directory empty itself: every task leaving it (deleted by uWSGI's spooler,
 *  claimed by uwcore's) is an inotify event; a readdir every 200 ms backs the events up. Resolves with the
 *  times (performance.now()) the first and the last of the n tasks left and the CPU seconds `cpu()` counted
 *  between those two moments. */
export function watchDrain(dir, n, cpu, timeoutMs = 120_000) {
  return new Promise((resolve, reject) => {
    const gone = new Set();
    let first = null;
    let cpuFirst = 0;
    const finish = (err) => {
      w.close(); clearInterval(poll); clearTimeout(limit);
      if (err) reject(err);
      else resolve({ firstMs: first, lastMs: performance.now(), cpuSeconds: cpu() - cpuFirst });
    };
    const left = (name) => {
      if (!name.startsWith(SPOOL_PREFIX) || gone.has(name)) return;
      if (first === null) { first = performance.now(); cpuFirst = cpu(); }
      gone.add(name);
      if (gone.size === n) finish();
    };
    const w = fs.watch(dir, (ev, name) => { if (name && !fs.existsSync(path.join(dir, name))) left(String(name)); });
    const poll = setInterval(() => {
      let names;
      try { names = new Set(fs.readdirSync(dir)); } catch { return; }
      if (first === null && names.size >= n) return;
      // whatever the events missed (a full inotify queue): every name written and no longer there
      for (const f of written) if (!names.has(f)) left(f);
    }, 200);
    const written = fs.readdirSync(dir).filter((f) => f.startsWith(SPOOL_PREFIX));
    const limit = setTimeout(() => finish(new Error(`the spooler did not drain ${n} tasks within ${timeoutMs / 1000} s (${gone.size} done)`)), timeoutMs);
  });
}

// ---------------------------------------------------------------------------------------------
// nginx in front of a uwsgi socket

export async function startNginx(listenPort, backendPort) {
  const nginx = probeEnv().nginx;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uwcore-bench-nginx-'));
  for (const d of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) fs.mkdirSync(path.join(dir, d));
  const params = fs.existsSync('/etc/nginx/uwsgi_params') ? 'include /etc/nginx/uwsgi_params;' : [
    'QUERY_STRING $query_string', 'REQUEST_METHOD $request_method', 'CONTENT_TYPE $content_type', 'CONTENT_LENGTH $content_length',
    'REQUEST_URI $request_uri', 'PATH_INFO $document_uri', 'DOCUMENT_ROOT $document_root', 'SERVER_PROTOCOL $server_protocol',
    'REMOTE_ADDR $remote_addr', 'REMOTE_PORT $remote_port', 'SERVER_PORT $server_port', 'SERVER_NAME $server_name',
  ].map((l) => `uwsgi_param ${l};`).join(' ');
  const conf = `${process.getuid?.() === 0 ? 'user root;' : ''}
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  keepalive_requests 100000;
  server {
    listen 127.0.0.1:${listenPort} backlog=1024;
    location / { ${params} uwsgi_pass 127.0.0.1:${backendPort}; }
  }
}
`;
  fs.writeFileSync(path.join(dir, 'nginx.conf'), conf);
  const h = spawnServer(nginx, ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-g', 'daemon off;'], {}, 'SIGQUIT');
  // nginx answers 502 until the backend is up: any HTTP answer means nginx itself is ready
  await waitReady(h, listenPort, 'http', '/');
  return { ...h, dir, async stop() { await h.stop(); fs.rmSync(dir, { recursive: true, force: true }); } };
}
