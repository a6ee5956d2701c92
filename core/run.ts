// Process model: a single process (no master, one worker), or a master that forks workers with
// node:cluster (workers accept from the shared socket: SCHED_NONE), respawns them, reloads them one at a
// time on SIGHUP and drains them on SIGTERM/SIGINT. Shared state lives in the master, reached over IPC.
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
import { ServiceSupervisor, loadImports, runService } from './services.js';
import { VERSION } from './version.js';
import type { LoadedConfig } from './config/index.js';

interface BootMessage {
  t: 'uw:boot';
  options: Record<string, unknown>;
  plugins: Array<{ file: string; origin: Origin; requested: string }>;
  pluginOptions: Array<[string, string[]]>;
  workerId: number;
  role: 'worker' | 'service';
  service?: { name: string; index: number };
}

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

function installSlot(server: Server, reload: () => void): void {
  installRuntime({ workerId: server.workerId, requests: () => server.requests, reload, plugin: (n) => server.apis.get(n) });
}

// ---------------------------------------------------------------------------------------------
// single process

export async function runSingle(cfg: LoadedConfig): Promise<void> {
  const { options } = cfg;
  const root = createRootLogger(logSetup(options));
  for (const w of cfg.warnings) root.warn(w);
  let server: Server | undefined;
  try {
    applyProcessEnv(options);
    process.title = 'uwcore';
    server = new Server({ options, root, role: 'single', workerId: 1 });
    installSlot(server, () => root.warn('uwcore.reload() needs --master: a single process cannot replace itself'));
    await server.setupPlugins(cfg.plugins, cfg.pluginOptions);
    server.hooks.configure.call(options);
    for (const p of unixPaths(server)) await prepareUnixSocket(p);
    banner(root, server, cfg, false);
    await server.hooks.masterStart.promise();
    await server.hooks.workerStart.promise();
    await loadImports(options);
    await server.loadApplication(process.cwd());
    needApp(server);
    server.seal();
    await server.openListeners();
    chmodSockets(server);
    const removePid = writePidfile(options);
    appLine(root, server, options);
    await server.hooks.ready.promise();
    root.info({}, `uwcore is ready (pid: ${process.pid}, single process)`);
    let stopping = false;
    const stop = async (sig: string) => {
      if (stopping) { root.warn(`${sig} again: stopping now`); flushLogs(); process.exit(1); }
      stopping = true;
      root.info(`${sig} received: stopping gracefully (finishing in-flight requests, up to ${options['reload-mercy']} s)`);
      await server!.stop((options['reload-mercy'] as number) * 1000);
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

interface Slot { id: number; worker: ClusterWorker | null; spawnedAt: number; respawns: number; fastDeaths: number; requests: number }

export async function runMaster(cfg: LoadedConfig, entryArgv: string[]): Promise<void> {
  void entryArgv;
  const { options } = cfg;
  const root = createRootLogger(logSetup(options));
  for (const w of cfg.warnings) root.warn(w);
  const server = new Server({ options, root, role: 'master', workerId: 0 });
  const count = options.processes as number;
  const slots: Slot[] = Array.from({ length: count }, (_, i) => ({ id: i + 1, worker: null, spawnedAt: 0, respawns: 0, fastDeaths: 0, requests: 0 }));
  let state: 'starting' | 'running' | 'reloading' | 'stopping' = 'starting';
  let removePid = () => undefined as void;
  const expectedExit = new WeakSet<ClusterWorker>();

  try {
    applyProcessEnv(options);
    process.title = 'uwcore master';
    installSlot(server, () => process.kill(process.pid, 'SIGHUP'));
    await server.setupPlugins(cfg.plugins, cfg.pluginOptions);
    server.hooks.configure.call(options);
    for (const p of unixPaths(server)) await prepareUnixSocket(p);
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
  cluster.setupPrimary({ exec: fileURLToPath(new URL('./worker-main.js', import.meta.url)), serialization: 'advanced', args: [] });

  const onMessage = (w: ClusterWorker, msg: { t?: string; id?: number; k?: string; a?: unknown }, wid: number) => {
    if (msg?.t === 'uw:rpc') {
      server.rpcServe(msg.k!, msg.a, { workerId: wid, pid: w.process.pid ?? 0 }).then(
        (v) => { if (w.isConnected()) w.send({ t: 'uw:rpc:res', id: msg.id, ok: true, v }); },
        (e: Error & { code?: string; plugin?: string }) => { if (w.isConnected()) w.send({ t: 'uw:rpc:res', id: msg.id, ok: false, e: { message: e.message, code: e.code, plugin: e.plugin } }); },
      );
    }
  };

  /** Fork a worker for a slot; resolves when it is ready, rejects with its fatal line. */
  const spawn = (slot: Slot): Promise<ClusterWorker> => new Promise((resolve, reject) => {
    const w = cluster.fork({ UWCORE__WORKER_ID: String(slot.id) });
    let ready = false;
    w.on('message', (msg: { t?: string; line?: string; code?: string; requests?: number }) => {
      if (msg?.t === 'uw:hello') { w.send({ ...boot, workerId: slot.id } satisfies BootMessage); return; }
      if (msg?.t === 'uw:ready') { ready = true; resolve(w); return; }
      if (msg?.t === 'uw:fatal') { expectedExit.add(w); reject(Object.assign(new Error(msg.line), { code: msg.code, fatalLine: msg.line })); return; }
      if (msg?.t === 'uw:count') { slot.requests = msg.requests ?? slot.requests; return; }
      onMessage(w, msg as never, slot.id);
    });
    w.once('exit', (code, signal) => {
      if (!ready) reject(Object.assign(new Error(`worker ${slot.id} exited during startup (${signal ? `signal ${signal}` : `code ${code}`})`), { code: Codes.WORKER_START }));
    });
  });

  const attach = (slot: Slot, w: ClusterWorker) => {
    slot.worker = w;
    slot.spawnedAt = Date.now();
    w.once('exit', (code, signal) => {
      if (slot.worker !== w) return; // replaced during a reload
      slot.worker = null;
      if (state === 'stopping' || expectedExit.has(w)) return;
      const cause = signal ? `killed by signal ${signal}` : `exited with code ${code}`;
      const lived = Date.now() - slot.spawnedAt;
      slot.fastDeaths = lived < 2000 ? slot.fastDeaths + 1 : 0;
      const delay = slot.fastDeaths >= 3 ? Math.min(30_000, 500 * 2 ** (slot.fastDeaths - 3)) : 0;
      root.error({ worker: slot.id, pid: w.process.pid, code, signal }, `worker ${slot.id} (pid: ${w.process.pid}) died, ${cause}: respawning${delay ? ` in ${delay / 1000} s (it keeps dying at startup)` : ''}`);
      setTimeout(() => respawn(slot), delay).unref();
    });
  };

  const respawn = (slot: Slot): void => {
    if (state === 'stopping') return;
    spawn(slot).then((w) => {
      slot.respawns++;
      attach(slot, w);
      root.info({ worker: slot.id, pid: w.process.pid }, `respawned uwcore worker ${slot.id} (new pid: ${w.process.pid})`);
    }, (e: Error & { fatalLine?: string }) => {
      slot.fastDeaths++;
      const delay = Math.min(30_000, 500 * 2 ** Math.min(6, slot.fastDeaths));
      root.error({ worker: slot.id }, `worker ${slot.id} failed to start: ${e.fatalLine ?? e.message}; trying again in ${delay / 1000} s`);
      setTimeout(() => respawn(slot), delay).unref();
    });
  };

  // initial spawn: all at once; any fatal stops the server with its line
  try {
    const ws = await Promise.all(slots.map((s) => spawn(s)));
    ws.forEach((w, i) => attach(slots[i]!, w));
    await services.start();
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

  /** Replace each worker with a fresh one, one at a time: the new one is ready before the old one drains. */
  const reload = async (reason: string) => {
    if (state !== 'running') { root.warn(`reload (${reason}) ignored: the server is ${state}`); return; }
    state = 'reloading';
    root.info(`${reason}: gracefully reloading ${count} worker${count > 1 ? 's' : ''}, one at a time`);
    await server.hooks.reload.promise().catch((e: unknown) => root.error({ err: e }, 'reload hook failed'));
    for (const slot of slots) {
      if ((state as string) === 'stopping') return;
      let fresh: ClusterWorker;
      try {
        fresh = await spawn(slot);
      } catch (e) {
        const err = e as Error & { fatalLine?: string };
        root.error({ worker: slot.id }, `reload aborted: the new worker ${slot.id} failed to start (${err.fatalLine ?? err.message}); the running workers keep serving the old code`);
        state = 'running';
        return;
      }
      const old = slot.worker;
      attach(slot, fresh);
      slot.respawns++;
      if (old) {
        expectedExit.add(old);
        old.send({ t: 'uw:stop', mercy: options['worker-reload-mercy'] });
        const killer = setTimeout(() => { root.warn({ worker: slot.id, pid: old.process.pid }, `worker ${slot.id} (pid: ${old.process.pid}) is taking too long to finish; killing it`); old.process.kill('SIGKILL'); }, (options['worker-reload-mercy'] as number) * 1000 + 2000);
        killer.unref();
        old.once('exit', () => clearTimeout(killer));
      }
      root.info({ worker: slot.id, pid: fresh.process.pid }, `worker ${slot.id} reloaded (new pid: ${fresh.process.pid})`);
    }
    state = 'running';
  };

  const stop = async (sig: string) => {
    if (state === 'stopping') {
      root.warn(`${sig} again: killing workers now`);
      for (const id in cluster.workers) cluster.workers[id]?.process.kill('SIGKILL');
      cleanup(); process.exit(1);
    }
    state = 'stopping';
    const mercy = options['reload-mercy'] as number;
    root.info(`${sig} received: stopping gracefully (workers finish their requests, up to ${mercy} s)`);
    const alive = Object.values(cluster.workers ?? {}).filter((w): w is ClusterWorker => !!w);
    const exits = alive.map((w) => new Promise<void>((r) => { if (w.isDead()) r(); else w.once('exit', () => r()); }));
    for (const w of alive) { if (w.isConnected()) w.send({ t: 'uw:stop', mercy }); else w.process.kill('SIGTERM'); }
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
    const plugins: LoadedPlugin[] = [];
    for (const p of msg.plugins) plugins.push(await importPlugin(p.file, p.origin, p.requested));
    server = new Server({ options, root, role: 'worker', workerId: msg.workerId });
    const srv = server;
    installSlot(srv, () => { if (process.connected) process.kill(process.ppid, 'SIGHUP'); });
    await srv.setupPlugins(plugins, new Map(msg.pluginOptions));
    await srv.hooks.workerStart.promise();
    await loadImports(options);
    await srv.loadApplication(process.cwd());
    needApp(srv);
    srv.seal();
    await srv.openListeners();
    if (msg.workerId === 1) { chmodSockets(srv); appLine(root, srv, options); }
    await srv.hooks.ready.promise();
    process.on('message', (m: { t?: string; mercy?: number; id?: number; ok?: boolean }) => {
      if (m?.t === 'uw:rpc:res') srv.rpcAnswer(m as never);
      else if (m?.t === 'uw:stop') void gracefulExit((m.mercy ?? 60) * 1000);
    });
    let exiting = false;
    const gracefulExit = async (mercyMs: number) => {
      if (exiting) return;
      exiting = true;
      await srv.stop(mercyMs);
      flushLogs();
      process.exit(0);
    };
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
