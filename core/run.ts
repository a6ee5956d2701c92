// Process model: a single process (no master, one worker), or a master that forks workers with
// node:cluster (workers accept from the shared socket: SCHED_NONE), respawns them, replaces them one at a
// time on SIGHUP / --touch-reload / uwcore.reload() and when they reach a recycling limit (--max-requests,
// --reload-on-rss, --max-worker-lifetime), drains them on SIGTERM/SIGINT and serves --stats. Application
// threads (--threads, --harakiri) live in core/threads.ts. Shared state lives in the master, reached over IPC.
import { performance } from 'node:perf_hooks';
import cluster, { type Worker as ClusterWorker } from 'node:cluster';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type pino from 'pino';
import { Codes, UwError, formatFatal } from './errors.js';
import { createRootLogger, flushLogs } from './logger.js';
import { importPlugin, type LoadedPlugin, type Origin } from './plugins.js';
import { CPU_COUNT, Server, describeAddress } from './server.js';
import { installRuntime } from './runtime.js';
import { ServiceSupervisor, loadImports, runService, type ServiceBoot } from './services.js';
import { VERSION } from './version.js';
import type { LoadedConfig } from './config/index.js';
import { deepFreeze } from './config/resolve.js';
import { dropPrivileges, resolveIds } from './privileges.js';
import { emptyCounters, procMemory, startStatsServer, statsDocument, type WorkerCounters, type WorkerRow } from './stats.js';
import { ThreadPool, type ThreadBoot } from './threads.js';

/** The boot message a worker or service process receives from the master. */
type BootMessage = ServiceBoot;

function logSetup(options: Record<string, unknown>) {
  return { level: options['log-level'] as string, logto: options.logto as string | undefined };
}

function applyProcessEnv(options: Record<string, unknown>): void {
  for (const kv of (options.env as string[]) ?? []) {
    const i = kv.indexOf('=');
    if (i <= 0) throw new UwError(Codes.CONFIG_BAD_VALUE, `invalid value ${JSON.stringify(kv)} for option --env: expected KEY=VALUE`, { exitCode: 2 });
    process.env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  const dir = options.chdir as string | undefined;
  if (dir) {
    try { process.chdir(dir); } catch (e) {
      throw new UwError(Codes.CONFIG_BAD_VALUE, `cannot change directory to ${dir} (--chdir): ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { exitCode: 1 });
    }
  }
}

function fatalExit(err: unknown, log?: pino.Logger): never {
  const line = formatFatal(err);
  if (log) {
    const e = err as UwError;
    log.fatal({ code: e?.code, plugin: e?.plugin, hook: e?.hook }, line.replace(/^uwcore: /, ''));
    flushLogs();
  }
  process.stderr.write(line + '\n');
  process.exit((err as UwError)?.exitCode ?? 1);
}

/** Remove a UNIX socket file left by a dead server; refuse if something still answers on it. */
async function prepareUnixSocket(p: string): Promise<void> {
  if (p.startsWith('\0')) return;
  let st: fs.Stats;
  try { st = fs.lstatSync(p); } catch { fs.mkdirSync(path.dirname(p), { recursive: true }); return; }
  if (!st.isSocket()) throw new UwError(Codes.LISTEN, `cannot listen on ${p}: a file that is not a socket is in the way`);
  const alive = await new Promise<boolean>((resolve) => {
    const s = net.connect(p);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
  if (alive) throw new UwError(Codes.LISTEN_IN_USE, `address ${p} is already in use by a running server; stop it or choose another path`);
  fs.unlinkSync(p);
}

function unixPaths(server: Server): string[] {
  return server.declared.filter((d) => d.info.address.kind === 'unix').map((d) => (d.info.address as { path: string }).path).filter((p) => !p.startsWith('\0'));
}

function chmodSockets(server: Server): void {
  const mode = server.options['chmod-socket'] as string | undefined;
  if (!mode) return;
  for (const p of unixPaths(server)) {
    try { fs.chmodSync(p, parseInt(mode, 8)); } catch (e) { server.log.warn(`cannot chmod ${p}: ${(e as Error).message}`); }
  }
}

function writePidfile(options: Record<string, unknown>): (() => void) {
  const f = options.pidfile as string | undefined;
  if (!f) return () => undefined;
  try { fs.writeFileSync(f, `${process.pid}\n`); } catch (e) {
    throw new UwError(Codes.CONFIG_BAD_VALUE, `cannot write pidfile ${f} (--pidfile): ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return () => { try { if (fs.readFileSync(f, 'utf8').trim() === String(process.pid)) fs.unlinkSync(f); } catch { /* gone */ } };
}

function mode(options: Record<string, unknown>, master: boolean): string {
  const p = options.processes as number;
  const t = options.threads as number;
  const kind = p > 1 ? (t > 1 ? 'preforking+threaded' : 'preforking') : t > 1 ? 'threaded' : 'single process';
  return `${kind}${master ? ' with master' : ''}`;
}

function banner(log: pino.Logger, server: Server, cfg: { options: Record<string, unknown>; plugins: LoadedPlugin[] }, master: boolean): void {
  const o = cfg.options;
  log.info({ version: VERSION, node: process.version, cores: CPU_COUNT, cwd: process.cwd() }, `*** Starting uwcore ${VERSION} (node ${process.version}) pid ${process.pid}, ${CPU_COUNT} cores ***`);
  server.declared.forEach((d, i) => log.info({ socket: i, option: d.info.option, protocol: d.info.protocol, address: describeAddress(d.info.address) }, `socket ${i} (--${d.info.option}) bound to ${d.info.address.kind === 'unix' ? 'UNIX address' : 'TCP address'} ${describeAddress(d.info.address)}`));
  if (server.declared.length === 0) log.warn('no socket configured: nothing will be served (add --http :8000, --http-socket or --uwsgi-socket)');
  log.info({ mode: mode(o, master), processes: o.processes, threads: o.threads }, `*** Operational MODE: ${mode(o, master)}: ${o.processes} process${(o.processes as number) > 1 ? 'es' : ''} x ${o.threads} thread${(o.threads as number) > 1 ? 's' : ''} ***`);
  log.info({ plugins: cfg.plugins.map((p) => `${p.plugin.name}@${p.plugin.version}`) }, `plugins: ${cfg.plugins.map((p) => `${p.plugin.name} ${p.plugin.version} (${p.origin})`).join(', ') || 'none'}`);
}

function appLine(log: pino.Logger, server: Server, options: Record<string, unknown>): void {
  if (server.app) log.info({ app: server.appDescription }, `application ${server.appDescription} ready`);
  else if (!options['need-app']) log.warn('no application mounted: every request gets 404 (start with --app FILE or --module NAME; --need-app makes this fatal)');
}

function needApp(server: Server): void {
  if (!server.app && server.options['need-app']) {
    throw new UwError(Codes.APP_NONE, 'no application could be loaded and --need-app is set; give --app FILE (alias --wsgi-file) or --module NAME');
  }
}

/** The configure waterfall may edit the options (in place or by returning a new object); then they are frozen. */
function configure(server: Server, options: Record<string, unknown>): void {
  const out = server.hooks.configure.call(options) as Record<string, unknown> | undefined;
  if (out && out !== options) Object.assign(options, out);
  deepFreeze(options);
}

function installSlot(server: Server, reload: () => void): void {
  installRuntime({ workerId: server.workerId, requests: () => server.requests, reload, plugin: (n) => server.apis.get(n) });
}

/**
 * Load the application: on this event loop (the fast path), or in --threads application threads (also with
 * --harakiri, so that a stuck request can be killed while the worker keeps serving).
 */
async function mountApplication(server: Server, boot: Omit<ThreadBoot, 'coreId'>): Promise<ThreadPool | null> {
  const threads = server.options.threads as number;
  const harakiri = server.options.harakiri as number;
  if (threads <= 1 && !(harakiri > 0)) {
    await server.loadApplication(process.cwd());
    return null;
  }
  const pool = new ThreadPool(server, boot, threads, harakiri);
  await pool.start();
  if (pool.appDescription !== null) {
    server.app = pool.handler;
    server.appDescription = `${pool.appDescription} in ${threads} thread${threads > 1 ? 's' : ''}`;
  }
  server.closers.unshift({ plugin: 'core', fn: () => pool.close() });
  return pool;
}

/** Per-worker counters for the stats server (requests and exceptions are the Server's own). */
function trackCounters(server: Server, pool: ThreadPool | null): () => WorkerCounters {
  let tx = 0;
  let rt = 0;
  server.onRequestDone = (ctx) => { tx += ctx.bytesSent; rt += performance.now() - ctx.startTime; };
  return () => ({
    requests: server.requests, exceptions: server.exceptions, inflight: server.inflight, tx, rt: Math.round(rt * 1000) / 1000,
    harakiri: pool?.harakiriCount ?? 0, accepting: !server.draining, cores: pool ? pool.stats() : [],
  });
}

/**
 * Stop serving: responses from now on carry Connection: close; keep-alive clients in the middle of a
 * conversation get a moment to receive one (so that they do not race the closing of an idle connection),
 * then the listeners close and in-flight requests finish (up to mercy).
 */
async function drainAndStop(server: Server, mercyMs: number, drainingSince = 0): Promise<void> {
  if (!server.draining || drainingSince === 0) drainingSince = Date.now();
  server.draining = true;
  const open = server.handles.reduce((n, h) => n + h.connections(), 0);
  const wait = Math.min(mercyMs, 500 - (Date.now() - drainingSince));
  if (open > server.inflight && wait > 0) await new Promise((r) => setTimeout(r, wait));
  await server.stop(mercyMs);
}

// ---------------------------------------------------------------------------------------------
// single process

export async function runSingle(cfg: LoadedConfig): Promise<void> {
  const { options } = cfg;
  const root = createRootLogger(logSetup(options));
  for (const w of cfg.warnings) root.warn(w);
  let server: Server | undefined;
  try {
    const ids = resolveIds(options);
    applyProcessEnv(options);
    process.title = 'uwcore';
    server = new Server({ options, root, role: 'single', workerId: 1 });
    installSlot(server, () => root.warn('uwcore.reload() needs --master: a single process cannot replace itself'));
    await server.setupPlugins(cfg.plugins, cfg.pluginOptions);
    configure(server, options);
    for (const p of unixPaths(server)) await prepareUnixSocket(p);
    banner(root, server, cfg, false);
    await server.hooks.masterStart.promise();
    await server.hooks.workerStart.promise();
    await loadImports(options);
    await mountApplication(server, {
      options, master: false, workerId: 1,
      plugins: cfg.plugins.map((p) => ({ file: p.file, origin: p.origin, requested: p.requested })),
      pluginOptions: [...cfg.pluginOptions],
    });
    needApp(server);
    server.seal();
    await server.openListeners();
    chmodSockets(server);
    const removePid = writePidfile(options);
    dropPrivileges(ids, root);
    appLine(root, server, options);
    await server.hooks.ready.promise();
    root.info({}, `uwcore is ready (pid: ${process.pid}, single process)`);
    let stopping = false;
    const stop = async (sig: string) => {
      if (stopping) { root.warn(`${sig} again: stopping now`); flushLogs(); process.exit(1); }
      stopping = true;
      root.info(`${sig} received: stopping gracefully (finishing in-flight requests, up to ${options['reload-mercy']} s)`);
      await drainAndStop(server!, (options['reload-mercy'] as number) * 1000);
      removePid();
      for (const p of unixPaths(server!)) { try { fs.unlinkSync(p); } catch { /* gone */ } }
      root.info('goodbye to uwcore');
      flushLogs();
      process.exit(0);
    };
    process.on('SIGTERM', () => void stop('SIGTERM'));
    process.on('SIGINT', () => void stop('SIGINT'));
    process.on('SIGQUIT', () => { root.warn('SIGQUIT received: stopping now'); flushLogs(); process.exit(1); });
    process.on('SIGHUP', () => root.warn('SIGHUP received: a graceful reload needs --master; ignored'));
  } catch (e) {
    fatalExit(e, root);
  }
}

// ---------------------------------------------------------------------------------------------
// master

interface Slot {
  id: number;
  worker: ClusterWorker | null;
  spawnedAt: number;
  respawns: number;
  fastDeaths: number;
  /** a replacement (reload, recycle, respawn) is being started: nothing else may start one */
  busy: boolean;
  /** counters of the slot's exited processes (carried over, as uWSGI does) */
  base: WorkerCounters;
  /** last counters reported by each running process of the slot (the current one and any still draining) */
  procs: Map<ClusterWorker, WorkerCounters>;
  lastRequests: number;
  /** after a failed replacement, recycling waits until then */
  retryAt: number;
}

type FromWorker = { t?: string; line?: string; code?: string; reason?: string; id?: number; c?: WorkerCounters; k?: string; a?: unknown };

function addCounters(a: WorkerCounters, b: WorkerCounters): WorkerCounters {
  return {
    requests: a.requests + b.requests, exceptions: a.exceptions + b.exceptions, inflight: a.inflight + b.inflight, tx: a.tx + b.tx, rt: a.rt + b.rt,
    harakiri: a.harakiri + b.harakiri, accepting: b.accepting, cores: b.cores,
  };
}

export async function runMaster(cfg: LoadedConfig, entryArgv: string[]): Promise<void> {
  void entryArgv;
  const { options } = cfg;
  const root = createRootLogger(logSetup(options));
  for (const w of cfg.warnings) root.warn(w);
  const server = new Server({ options, root, role: 'master', workerId: 0 });
  const count = options.processes as number;
  const slots: Slot[] = Array.from({ length: count }, (_, i) => ({
    id: i + 1, worker: null, spawnedAt: 0, respawns: 0, fastDeaths: 0, busy: false, base: emptyCounters(), procs: new Map(), lastRequests: 0, retryAt: 0,
  }));
  let state: 'starting' | 'running' | 'reloading' | 'stopping' = 'starting';
  let removePid = () => undefined as void;
  const expectedExit = new WeakSet<ClusterWorker>();
  const workerMercy = (options['worker-reload-mercy'] as number) * 1000;
  const minLifetime = (options['min-worker-lifetime'] as number) * 1000;
  let ids: ReturnType<typeof resolveIds> = null;
  let statsServer: net.Server | null = null;
  const statsAddr = options.stats as import('../sdk/index.js').Address | undefined;

  try {
    ids = resolveIds(options);
    applyProcessEnv(options);
    process.title = 'uwcore master';
    installSlot(server, () => process.kill(process.pid, 'SIGHUP'));
    await server.setupPlugins(cfg.plugins, cfg.pluginOptions);
    configure(server, options);
    server.compileRoutes(false); // a bad route rule stops startup here, before any worker is spawned
    for (const p of unixPaths(server)) await prepareUnixSocket(p);
    if (statsAddr?.kind === 'unix') await prepareUnixSocket(statsAddr.path);
    banner(root, server, cfg, true);
    await server.hooks.masterStart.promise();
    removePid = writePidfile(options);
  } catch (e) {
    fatalExit(e, root);
  }

  const boot: Omit<BootMessage, 'workerId'> = {
    t: 'uw:boot', options, role: 'worker',
    plugins: cfg.plugins.map((p) => ({ file: p.file, origin: p.origin, requested: p.requested })),
    pluginOptions: [...cfg.pluginOptions],
  };
  const services = new ServiceSupervisor({ server, root, boot, options });
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  // a bundled build (uwcore build) forks its own file, whose entry runs runWorker() in a cluster worker
  const workerExec = (globalThis as { __UWCORE_EMBEDDED__?: { workerExec?: string } }).__UWCORE_EMBEDDED__?.workerExec;
  cluster.setupPrimary({ exec: workerExec ?? fileURLToPath(new URL('./worker-main.js', import.meta.url)), serialization: 'advanced', args: [] });

  const send = (w: ClusterWorker, msg: unknown): boolean => {
    if (!w.isConnected()) return false;
    try { w.send(msg as never); return true; } catch { return false; }
  };

  // stats: ask a worker for its counters (answers within 1 s, else its last report is used)
  let statsSeq = 0;
  const statsWaiters = new Map<number, (c: WorkerCounters | null) => void>();
  const askCounters = (slot: Slot, w: ClusterWorker): Promise<void> => {
    const id = ++statsSeq;
    return new Promise((resolve) => {
      const t = setTimeout(() => { statsWaiters.delete(id); resolve(); }, 1000);
      statsWaiters.set(id, (c) => { clearTimeout(t); if (c && slot.procs.has(w)) slot.procs.set(w, c); resolve(); });
      if (!send(w, { t: 'uw:stats?', id })) { clearTimeout(t); statsWaiters.delete(id); resolve(); }
    });
  };
  const slotCounters = (slot: Slot): WorkerCounters => {
    let c = slot.base;
    for (const p of slot.procs.values()) c = addCounters(c, p);
    return { ...c, cores: (slot.worker && slot.procs.get(slot.worker)?.cores) || [], accepting: !!slot.worker && (slot.procs.get(slot.worker)?.accepting ?? true) };
  };

  const onMessage = (slot: Slot, w: ClusterWorker, msg: FromWorker) => {
    switch (msg.t) {
      case 'uw:rpc':
        server.rpcServe(msg.k!, msg.a, { workerId: slot.id, pid: w.process.pid ?? 0 }).then(
          (v) => send(w, { t: 'uw:rpc:res', id: msg.id, ok: true, v }),
          (e: Error & { code?: string; plugin?: string }) => send(w, { t: 'uw:rpc:res', id: msg.id, ok: false, e: { message: e?.message, code: e?.code, plugin: e?.plugin } }),
        );
        return;
      case 'uw:stats':
        statsWaiters.get(msg.id!)?.(msg.c ?? null);
        statsWaiters.delete(msg.id!);
        return;
      case 'uw:final':
        // a worker that exits gracefully hands its last counters over to its successors
        if (msg.c && slot.procs.has(w)) slot.procs.set(w, msg.c);
        return;
      case 'uw:recycle':
        if (slot.worker === w) void replaceSlot(slot, msg.reason ?? 'recycling');
        return;
      default:
    }
  };

  /** Fork a worker for a slot; resolves when it is ready, rejects with its fatal line. */
  const spawn = (slot: Slot): Promise<ClusterWorker> => new Promise((resolve, reject) => {
    const w = cluster.fork({ UWCORE__WORKER_ID: String(slot.id) });
    let ready = false;
    slot.procs.set(w, emptyCounters());
    w.once('exit', () => {
      const c = slot.procs.get(w);
      if (c) slot.base = addCounters(slot.base, { ...c, inflight: 0 });
      slot.procs.delete(w);
    });
    w.on('error', (e) => root.warn({ worker: slot.id, err: e }, `worker ${slot.id} (pid: ${w.process.pid}) IPC error: ${e.message}`));
    w.on('message', (msg: FromWorker) => {
      if (msg?.t === 'uw:hello') { send(w, { ...boot, workerId: slot.id } satisfies BootMessage); return; }
      if (msg?.t === 'uw:ready') { ready = true; resolve(w); return; }
      if (msg?.t === 'uw:fatal') { expectedExit.add(w); reject(Object.assign(new Error(msg.line), { code: msg.code, fatalLine: msg.line })); return; }
      if (msg !== null && typeof msg === 'object') onMessage(slot, w, msg);
    });
    w.once('exit', (code, signal) => {
      if (!ready) reject(Object.assign(new Error(`worker ${slot.id} exited during startup (${signal ? `signal ${signal}` : `code ${code}`})`), { code: Codes.WORKER_START }));
    });
  });

  const attach = (slot: Slot, w: ClusterWorker) => {
    slot.worker = w;
    slot.spawnedAt = Date.now();
    w.once('exit', (code, signal) => {
      if (slot.worker !== w) return; // replaced
      slot.worker = null;
      if (state === 'stopping' || expectedExit.has(w)) return;
      const cause = signal ? `killed by signal ${signal}` : `exited with code ${code}`;
      if (slot.busy) { root.error({ worker: slot.id, pid: w.process.pid, code, signal }, `worker ${slot.id} (pid: ${w.process.pid}) died, ${cause}; its replacement is starting`); return; }
      const lived = Date.now() - slot.spawnedAt;
      slot.fastDeaths = lived < 2000 ? slot.fastDeaths + 1 : 0;
      const delay = slot.fastDeaths >= 3 ? Math.min(30_000, 500 * 2 ** (slot.fastDeaths - 3)) : 0;
      root.error({ worker: slot.id, pid: w.process.pid, code, signal }, `worker ${slot.id} (pid: ${w.process.pid}) died, ${cause}: respawning${delay ? ` in ${delay / 1000} s (it keeps dying right after starting)` : ''}`);
      slot.busy = true;
      setTimeout(() => respawn(slot), delay); // not unref: with no worker left, this timer keeps the master alive
    });
  };

  const respawn = (slot: Slot): void => {
    if (state === 'stopping') { slot.busy = false; return; }
    spawn(slot).then((w) => {
      slot.busy = false;
      if ((state as string) === 'stopping') { send(w, { t: 'uw:stop', mercy: 0 }) || w.process.kill('SIGKILL'); return; }
      slot.respawns++;
      attach(slot, w);
      root.info({ worker: slot.id, pid: w.process.pid }, `respawned uwcore worker ${slot.id} (new pid: ${w.process.pid})`);
    }, (e: Error & { fatalLine?: string }) => {
      slot.fastDeaths++;
      const delay = Math.min(30_000, 500 * 2 ** Math.min(6, slot.fastDeaths));
      root.error({ worker: slot.id }, `worker ${slot.id} failed to start: ${e.fatalLine ?? e.message}; trying again in ${delay / 1000} s`);
      setTimeout(() => respawn(slot), delay); // not unref: with no worker left, this timer keeps the master alive
    });
  };

  /** Ask a worker to finish its requests and exit; kill it when it takes longer than the mercy. */
  const retire = (slot: Slot, old: ClusterWorker, mercyMs: number) => {
    expectedExit.add(old);
    if (!send(old, { t: 'uw:stop', mercy: mercyMs / 1000 })) old.process.kill('SIGTERM');
    const killer = setTimeout(() => {
      root.warn({ worker: slot.id, pid: old.process.pid }, `worker ${slot.id} (pid: ${old.process.pid}) is taking too long to finish (--worker-reload-mercy ${mercyMs / 1000} s): killing it`);
      old.process.kill('SIGKILL');
    }, mercyMs + 2000);
    killer.unref();
    old.once('exit', () => clearTimeout(killer));
  };

  /** Replace one worker gracefully: the new one is ready before the old one stops accepting and drains. */
  const replaceSlot = async (slot: Slot, why: string): Promise<boolean> => {
    if (slot.busy || (state !== 'running' && state !== 'reloading')) return true;
    slot.busy = true;
    // the old worker answers with Connection: close while its replacement starts, so that keep-alive
    // clients move over before it stops accepting
    const current = slot.worker;
    if (current) send(current, { t: 'uw:drain' });
    let fresh: ClusterWorker;
    try {
      fresh = await spawn(slot);
    } catch (e) {
      const err = e as Error & { fatalLine?: string };
      slot.busy = false;
      if (current && slot.worker === current) send(current, { t: 'uw:undrain' });
      slot.retryAt = Date.now() + 30_000; // recycling checks wait before trying again
      root.error({ worker: slot.id }, `worker ${slot.id} could not be replaced (${why}): the new process failed to start (${err.fatalLine ?? err.message}); the running worker keeps serving`);
      if (slot.worker === null) { slot.busy = true; respawn(slot); }
      return false;
    }
    slot.busy = false;
    if ((state as string) === 'stopping') { send(fresh, { t: 'uw:stop', mercy: 0 }) || fresh.process.kill('SIGKILL'); return false; }
    const old = slot.worker;
    attach(slot, fresh);
    slot.respawns++;
    if (old) retire(slot, old, workerMercy);
    root.info({ worker: slot.id, pid: fresh.process.pid, old: old?.process.pid, reason: why }, `worker ${slot.id} replaced (${why}): new pid ${fresh.process.pid}${old ? `, pid ${old.process.pid} finishes its requests` : ''}`);
    return true;
  };

  // initial spawn: all at once; any fatal stops the server with its line
  try {
    const ws = await Promise.all(slots.map((s) => spawn(s)));
    ws.forEach((w, i) => attach(slots[i]!, w));
    if (statsAddr) {
      statsServer = await startStatsServer(statsAddr, {
        http: options['stats-http'] as boolean, minified: options['stats-minified'] as boolean, log: root,
        build: async () => {
          await Promise.all(slots.flatMap((s) => [...s.procs.keys()].map((w) => askCounters(s, w))));
          const rows: WorkerRow[] = slots.map((s) => {
            const c = slotCounters(s);
            const row = { id: s.id, pid: s.worker?.process.pid ?? 0, counters: c, delta: c.requests - s.lastRequests, spawnedAt: s.spawnedAt, respawns: s.respawns, alive: s.worker !== null };
            s.lastRequests = c.requests;
            return row;
          });
          return statsDocument({
            pid: process.pid, backlog: options.listen as number, workers: rows,
            sockets: server.declared.map((d) => ({ name: describeAddress(d.info.address), proto: d.info.protocol, port: d.info.address.kind === 'tcp' ? d.info.address.port : null })),
            extend: (doc) => server.hooks.stats.call(doc),
          });
        },
      });
      root.info({ stats: describeAddress(statsAddr) }, `stats server enabled on ${describeAddress(statsAddr)}${options['stats-http'] ? ' (HTTP)' : ''}`);
    }
    await services.start();
    dropPrivileges(ids, root);
  } catch (e) {
    state = 'stopping';
    for (const id in cluster.workers) cluster.workers[id]?.process.kill('SIGKILL');
    const err = e as Error & { fatalLine?: string; code?: string };
    const line = err.fatalLine ?? formatFatal(err);
    root.fatal({ code: err.code }, line.replace(/^uwcore: /, ''));
    flushLogs();
    process.stderr.write(line + '\n');
    removePid();
    process.exit(1);
  }
  root.info({}, `spawned uwcore master process (pid: ${process.pid})`);
  for (const s of slots) root.info({ worker: s.id, pid: s.worker?.process.pid }, `spawned uwcore worker ${s.id} (pid: ${s.worker?.process.pid}, cores: ${options.threads})`);
  state = 'running';
  await server.hooks.ready.promise().catch((e: unknown) => root.error({ err: e }, 'ready hook failed'));
  root.info(`uwcore is ready: ${count} worker${count > 1 ? 's' : ''} serving`);

  /** Replace each worker with a fresh one running freshly loaded code, one at a time. */
  const reload = async (reason: string) => {
    if (state !== 'running') { root.warn(`reload (${reason}) ignored: the server is ${state}`); return; }
    state = 'reloading';
    root.info(`${reason}: gracefully reloading ${count} worker${count > 1 ? 's' : ''}, one at a time`);
    await server.hooks.reload.promise().catch((e: unknown) => root.error({ err: e }, 'reload hook failed'));
    for (const slot of slots) {
      if ((state as string) === 'stopping') return;
      if (!(await replaceSlot(slot, reason))) {
        root.error('reload aborted: the other workers keep serving the code they loaded');
        break;
      }
    }
    if ((state as string) !== 'stopping') state = 'running';
  };

  // recycling that the master watches: lifetime and resident memory, once a second
  const maxLifetime = (options['max-worker-lifetime'] as number) * 1000;
  const maxRss = (options['reload-on-rss'] as number) * 1024 * 1024;
  if (maxLifetime > 0 || maxRss > 0) {
    setInterval(() => {
      if (state !== 'running') return;
      const now = Date.now();
      for (const slot of slots) {
        const w = slot.worker;
        if (!w || slot.busy || now < slot.retryAt) continue;
        const age = now - slot.spawnedAt;
        if (maxLifetime > 0 && age >= maxLifetime) { void replaceSlot(slot, `max-worker-lifetime ${maxLifetime / 1000} s reached`); continue; }
        if (maxRss > 0 && age >= minLifetime) {
          const rss = procMemory(w.process.pid!).rss;
          if (rss > maxRss) void replaceSlot(slot, `reload-on-rss: resident memory ${Math.round(rss / 1048576)} MB > ${maxRss / 1048576} MB`);
        }
      }
    }, 1000).unref();
  }

  // --touch-reload: a change of the file's modification time reloads the workers
  for (const f of (options['touch-reload'] as string[] | undefined) ?? []) {
    fs.watchFile(f, { interval: 1000, persistent: false }, (cur, prev) => {
      if (cur.mtimeMs !== prev.mtimeMs) void reload(`${f} has been touched`);
    });
  }

  const stop = async (sig: string) => {
    if (state === 'stopping') {
      root.warn(`${sig} again: killing workers now`);
      for (const id in cluster.workers) cluster.workers[id]?.process.kill('SIGKILL');
      cleanup(); process.exit(1);
    }
    state = 'stopping';
    const mercy = options['reload-mercy'] as number;
    root.info(`${sig} received: stopping gracefully (workers finish their requests, up to ${mercy} s)`);
    statsServer?.close();
    const alive = Object.values(cluster.workers ?? {}).filter((w): w is ClusterWorker => !!w);
    const exits = alive.map((w) => new Promise<void>((r) => { if (w.isDead()) r(); else w.once('exit', () => r()); }));
    for (const w of alive) { if (!send(w, { t: 'uw:stop', mercy })) w.process.kill('SIGTERM'); }
    const servicesStopped = services.stop(mercy * 1000);
    const t = setTimeout(() => { root.warn('workers did not stop in time: killing them'); for (const w of alive) w.process.kill('SIGKILL'); }, mercy * 1000 + 3000);
    t.unref();
    await Promise.all([...exits, servicesStopped]);
    clearTimeout(t);
    await server.runClose();
    cleanup();
    root.info('goodbye to uwcore');
    flushLogs();
    process.exit(0);
  };
  const cleanup = () => {
    removePid();
    for (const p of unixPaths(server)) { try { fs.unlinkSync(p); } catch { /* gone */ } }
    if (statsAddr?.kind === 'unix' && !statsAddr.path.startsWith('\0')) { try { fs.unlinkSync(statsAddr.path); } catch { /* gone */ } }
    flushLogs();
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGQUIT', () => {
    root.warn('SIGQUIT received: stopping now');
    for (const id in cluster.workers) cluster.workers[id]?.process.kill('SIGKILL');
    cleanup(); process.exit(1);
  });
  process.on('SIGHUP', () => void reload('SIGHUP received'));
  (globalThis as { __uwcoreMaster?: unknown }).__uwcoreMaster = { slots, reload };
}

// ---------------------------------------------------------------------------------------------
// worker (cluster child)

export async function runWorker(): Promise<void> {
  const msg = await new Promise<BootMessage>((resolve) => {
    process.once('message', (m: BootMessage) => resolve(m));
    process.send!({ t: 'uw:hello' });
  });
  if (msg.role === 'service') return runService(msg);
  const { options } = msg;
  const root = createRootLogger({ ...logSetup(options), bindings: { worker: msg.workerId } });
  let server: Server | undefined;
  const report = (e: unknown) => {
    const line = formatFatal(e);
    root.debug({ err: e }, 'worker startup failed');
    flushLogs();
    if (process.connected) process.send!({ t: 'uw:fatal', line, code: (e as UwError)?.code }, () => process.exit(1));
    else process.exit(1);
  };
  try {
    process.title = `uwcore worker ${msg.workerId}`;
    const ids = resolveIds(options);
    const plugins: LoadedPlugin[] = [];
    for (const p of msg.plugins) plugins.push(await importPlugin(p.file, p.origin, p.requested));
    deepFreeze(options);
    server = new Server({ options, root, role: 'worker', workerId: msg.workerId });
    const srv = server;
    const send = (m: unknown) => { if (process.connected) { try { process.send!(m); } catch { /* master gone */ } } };
    installSlot(srv, () => { if (process.connected) process.kill(process.ppid, 'SIGHUP'); });
    await srv.setupPlugins(plugins, new Map(msg.pluginOptions));
    await srv.hooks.workerStart.promise();
    await loadImports(options);
    const pool = await mountApplication(srv, { options, plugins: msg.plugins, pluginOptions: msg.pluginOptions, workerId: msg.workerId, master: true });
    needApp(srv);
    srv.seal();
    await srv.openListeners();
    if (msg.workerId === 1) { chmodSockets(srv); appLine(root, srv, options); }
    dropPrivileges(ids);
    const counters = trackCounters(srv, pool);
    const spawnedAt = Date.now();
    let drainingSince = 0;
    let recycling = false;
    // --max-requests: the Nth request is answered with Connection: close, then the master replaces this worker
    const maxRequests = options['max-requests'] as number;
    if (maxRequests > 0) {
      const minLifetime = (options['min-worker-lifetime'] as number) * 1000;
      srv.requestLimit = maxRequests;
      srv.onRequestLimit = () => {
        if (Date.now() - spawnedAt < minLifetime) { srv.requestLimit = srv.accepted + 1; return; }
        srv.requestLimit = 0;
        srv.draining = true;
        recycling = true;
        drainingSince = Date.now();
        root.info({ requests: srv.accepted }, `worker ${msg.workerId} reached --max-requests ${maxRequests}: it will be replaced`);
        send({ t: 'uw:recycle', reason: `max-requests ${maxRequests} reached` });
      };
    }
    await srv.hooks.ready.promise();
    let exiting = false;
    const gracefulExit = async (mercyMs: number) => {
      if (exiting) return;
      exiting = true;
      await drainAndStop(srv, mercyMs, drainingSince);
      send({ t: 'uw:final', c: counters() });
      flushLogs();
      process.exit(0);
    };
    process.on('message', (m: { t?: string; mercy?: number; id?: number; ok?: boolean }) => {
      if (m?.t === 'uw:rpc:res') srv.rpcAnswer(m as never);
      else if (m?.t === 'uw:stats?') send({ t: 'uw:stats', id: m.id, c: counters() });
      else if (m?.t === 'uw:stop') void gracefulExit((m.mercy ?? 60) * 1000);
      else if (m?.t === 'uw:drain') { if (!srv.draining) { srv.draining = true; drainingSince = Date.now(); } }
      else if (m?.t === 'uw:undrain' && !exiting) {
        // the replacement failed to start: keep serving (and try recycling again after another N requests)
        if (recycling) { recycling = false; srv.requestLimit = srv.accepted + (options['max-requests'] as number); }
        srv.draining = false;
        drainingSince = 0;
      }
    });
    // a worker stops with its master; Ctrl-C reaches the whole process group, so SIGINT waits for the master
    process.on('disconnect', () => { srv.failPendingRpc(); void gracefulExit(5000); });
    process.on('SIGINT', () => undefined);
    process.on('SIGTERM', () => void gracefulExit((options['worker-reload-mercy'] as number) * 1000));
    process.on('SIGHUP', () => undefined);
    process.send!({ t: 'uw:ready' });
  } catch (e) {
    report(e);
  }
}

export { fatalExit };
