// Service processes: the plugin-owned process kinds registered with `api.services.register(name, spec)`
// (the spooler's processes, and any plugin's). The master forks `spec.count` processes per service with
// node:cluster (boot message role 'service'), respawns them when they die (backing off when they keep
// dying at startup), rolls them on a reload and stops them on shutdown (abort signal, then SIGKILL after
// the mercy). A service process sets up every plugin with `process: 'service'`, loads the --import
// modules (and --<name>-import, e.g. --spooler-import, when a plugin declares that option), then calls `spec.run({ index, log, signal })` with index 1..count. When run() resolves on its
// own (without the signal), the process exits and the master respawns it at once (a planned recycle,
// e.g. --spooler-max-tasks). Also here: --import, loaded in workers and service processes before the app.
import cluster, { type Worker as ClusterWorker } from 'node:cluster';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import type pino from 'pino';
import type { ServiceSpec } from '../sdk/index.js';
import { installRuntimeResolution } from './app.js';
import { Codes, UwError, formatFatal } from './errors.js';
import { asLogger, createRootLogger, flushLogs } from './logger.js';
import { importPlugin, type LoadedPlugin, type Origin } from './plugins.js';
import { installRuntime } from './runtime.js';
import { Server } from './server.js';

/** The boot message a service process receives (the same shape as a worker's, role 'service'). */
export interface ServiceBoot {
  t: 'uw:boot';
  options: Record<string, unknown>;
  plugins: Array<{ file: string; origin: Origin; requested: string }>;
  pluginOptions: Array<[string, string[]]>;
  workerId: number;
  role: 'worker' | 'service';
  service?: { name: string; index: number };
}

// ---------------------------------------------------------------------------------------------
// --import

const IMPORT_EXT = ['', '.js', '.mjs', '.cjs', '.ts', '/index.js', '/index.mjs'];

/** Find the file of an --import value: a path (resolved against the ini's directory or the working
 *  directory; `.js` may be left out, as Python's `import = uwsgi_spool_task`) or a package name. */
export function resolveImport(value: string, option: string): string {
  for (const ext of IMPORT_EXT) {
    const f = value + ext;
    try { if (fs.statSync(f).isFile()) return f; } catch { /* next */ }
  }
  // a bare package name: `path` options arrive resolved against their base directory
  const base = path.basename(value);
  const parent = path.dirname(value);
  const scoped = path.basename(parent).startsWith('@');
  const spec = scoped ? `${path.basename(parent)}/${base}` : base;
  const from = scoped ? path.dirname(parent) : parent;
  try { return createRequire(path.join(from, 'noop.js')).resolve(spec); } catch { /* not a package */ }
  throw new UwError(Codes.APP_NOT_FOUND, `module ${value} not found (--${option}); give a file path (relative to the ini's directory or the working directory) or an installed package name`, { exitCode: 2 });
}

/** Import each module of --import (and `extra`), in order, so `import ... from 'uwcore'` works in them. */
export async function loadImports(options: Record<string, unknown>, extra: { option: string; values: string[] } | null = null): Promise<void> {
  const lists: Array<{ option: string; values: string[] }> = [{ option: 'import', values: (options.import as string[] | undefined) ?? [] }];
  if (extra) lists.push(extra);
  for (const { option, values } of lists) {
    if (values.length === 0) continue;
    installRuntimeResolution();
    for (const v of values) {
      const file = resolveImport(v, option);
      try {
        await import(pathToFileURL(file).href);
      } catch (e) {
        const err = e as Error;
        throw new UwError(Codes.APP_LOAD, `cannot import ${file} (--${option}): ${err?.name && err.name !== 'Error' ? err.name + ': ' : ''}${String(err?.message ?? e).split('\n')[0]}; fix the error and start again`, { cause: e });
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// master side

interface ServiceSlot {
  name: string;
  spec: ServiceSpec;
  index: number;
  worker: ClusterWorker | null;
  spawnedAt: number;
  respawns: number;
  fastDeaths: number;
  timer: NodeJS.Timeout | null;
}

export interface SupervisorCtx {
  server: Server;
  root: pino.Logger;
  boot: Omit<ServiceBoot, 'workerId' | 'role' | 'service'>;
  options: Record<string, unknown>;
}

/** Supervises every service process of the master. */
export class ServiceSupervisor {
  private readonly slots: ServiceSlot[] = [];
  private stopping = false;
  private readonly planned = new WeakSet<ClusterWorker>();

  constructor(private readonly ctx: SupervisorCtx) {
    for (const [name, spec] of ctx.server.services.entries()) {
      const count = Math.max(0, Math.floor(spec.count));
      for (let i = 1; i <= count; i++) this.slots.push({ name, spec, index: i, worker: null, spawnedAt: 0, respawns: 0, fastDeaths: 0, timer: null });
    }
    if (this.slots.length) ctx.server.hooks.reload.tapPromise('services', async () => { void this.roll(); });
  }

  get size(): number { return this.slots.length; }

  /** pid and respawn count of every service process (for stats and tests). */
  list(): Array<{ name: string; index: number; pid: number | undefined; respawns: number }> {
    return this.slots.map((s) => ({ name: s.name, index: s.index, pid: s.worker?.process.pid, respawns: s.respawns }));
  }

  private label(s: ServiceSlot): string { return `${s.spec.title} ${s.index}`; }

  /** Fork one process; resolves when it is set up (before run), rejects with its fatal line. */
  private spawn(s: ServiceSlot): Promise<ClusterWorker> {
    const { server, boot } = this.ctx;
    return new Promise((resolve, reject) => {
      const w = cluster.fork({ UWCORE__SERVICE: `${s.name}:${s.index}` });
      let ready = false;
      w.on('message', (msg: { t?: string; line?: string; code?: string; id?: number; k?: string; a?: unknown }) => {
        if (msg?.t === 'uw:hello') { w.send({ ...boot, workerId: 0, role: 'service', service: { name: s.name, index: s.index } } satisfies ServiceBoot); return; }
        if (msg?.t === 'uw:ready') { ready = true; resolve(w); return; }
        if (msg?.t === 'uw:fatal') { this.planned.add(w); reject(Object.assign(new Error(msg.line), { code: msg.code, fatalLine: msg.line })); return; }
        if (msg?.t === 'uw:done') { this.planned.add(w); return; }
        if (msg?.t === 'uw:rpc') {
          server.rpcServe(msg.k!, msg.a, { workerId: 0, pid: w.process.pid ?? 0 }).then(
            (v) => { if (w.isConnected()) w.send({ t: 'uw:rpc:res', id: msg.id, ok: true, v }); },
            (e: Error & { code?: string; plugin?: string }) => { if (w.isConnected()) w.send({ t: 'uw:rpc:res', id: msg.id, ok: false, e: { message: e.message, code: e.code, plugin: e.plugin } }); },
          );
        }
      });
      w.once('exit', (code, signal) => {
        if (!ready) reject(Object.assign(new Error(`${this.label(s)} exited during startup (${signal ? `signal ${signal}` : `code ${code}`})`), { code: Codes.WORKER_START }));
      });
    });
  }

  private attach(s: ServiceSlot, w: ClusterWorker): void {
    s.worker = w;
    s.spawnedAt = Date.now();
    w.once('exit', (code, signal) => {
      if (s.worker !== w) return;
      s.worker = null;
      if (this.stopping) return;
      const log = this.ctx.root;
      if (this.planned.has(w) && !signal) {
        log.info({ service: s.name, index: s.index, pid: w.process.pid }, `${this.label(s)} (pid: ${w.process.pid}) finished: respawning`);
        s.fastDeaths = 0;
        this.respawn(s, 0);
        return;
      }
      const cause = signal ? `killed by signal ${signal}` : `exited with code ${code}`;
      s.fastDeaths = Date.now() - s.spawnedAt < 2000 ? s.fastDeaths + 1 : 0;
      const delay = s.fastDeaths >= 3 ? Math.min(30_000, 500 * 2 ** (s.fastDeaths - 3)) : 0;
      log.error({ service: s.name, index: s.index, pid: w.process.pid, code, signal }, `${this.label(s)} (pid: ${w.process.pid}) died, ${cause}: respawning${delay ? ` in ${delay / 1000} s (it keeps dying at startup)` : ''}`);
      this.respawn(s, delay);
    });
  }

  private respawn(s: ServiceSlot, delay: number): void {
    if (this.stopping) return;
    s.timer = setTimeout(() => {
      s.timer = null;
      if (this.stopping) return;
      this.spawn(s).then((w) => {
        if (this.stopping) { w.process.kill('SIGKILL'); return; }
        s.respawns++;
        this.attach(s, w);
        this.ctx.root.info({ service: s.name, index: s.index, pid: w.process.pid }, `respawned ${this.label(s)} (new pid: ${w.process.pid})`);
      }, (e: Error & { fatalLine?: string }) => {
        s.fastDeaths++;
        const d = Math.min(30_000, 500 * 2 ** Math.min(6, s.fastDeaths));
        this.ctx.root.error({ service: s.name, index: s.index }, `${this.label(s)} failed to start: ${e.fatalLine ?? e.message}; trying again in ${d / 1000} s`);
        this.respawn(s, d);
      });
    }, delay);
    s.timer.unref();
  }

  /** Initial start: every process at once; the first failure rejects (startup then stops). */
  async start(): Promise<void> {
    if (!this.slots.length) return;
    const ws = await Promise.all(this.slots.map((s) => this.spawn(s)));
    ws.forEach((w, i) => {
      const s = this.slots[i]!;
      this.attach(s, w);
      this.ctx.root.info({ service: s.name, index: s.index, pid: w.process.pid }, `spawned uwcore ${this.label(s)} (pid: ${w.process.pid})`);
    });
  }

  /** Ask one process to stop (abort signal); SIGKILL after mercyMs. Resolves when it has exited. */
  private retire(w: ClusterWorker, mercyMs: number, what: string): Promise<void> {
    return new Promise((resolve) => {
      if (w.isDead()) { resolve(); return; }
      const killer = setTimeout(() => {
        this.ctx.root.warn({ pid: w.process.pid }, `${what} (pid: ${w.process.pid}) did not stop within ${mercyMs / 1000} s: killing it`);
        w.process.kill('SIGKILL');
      }, mercyMs);
      killer.unref();
      w.once('exit', () => { clearTimeout(killer); resolve(); });
      if (w.isConnected()) w.send({ t: 'uw:stop' }); else w.process.kill('SIGTERM');
    });
  }

  /** Reload: replace each process with a fresh one (new code), the old one stops after the new one is up. */
  private async roll(): Promise<void> {
    const mercy = ((this.ctx.options['worker-reload-mercy'] as number) ?? 60) * 1000;
    for (const s of this.slots) {
      if (this.stopping) return;
      let fresh: ClusterWorker;
      try { fresh = await this.spawn(s); } catch (e) {
        const err = e as Error & { fatalLine?: string };
        this.ctx.root.error({ service: s.name, index: s.index }, `reload of ${this.label(s)} aborted: the new process failed to start (${err.fatalLine ?? err.message}); the old one keeps running`);
        return;
      }
      if (this.stopping) { fresh.process.kill('SIGKILL'); return; }
      const old = s.worker;
      if (s.timer) { clearTimeout(s.timer); s.timer = null; }
      this.attach(s, fresh);
      s.respawns++;
      this.ctx.root.info({ service: s.name, index: s.index, pid: fresh.process.pid }, `${this.label(s)} reloaded (new pid: ${fresh.process.pid})`);
      if (old) void this.retire(old, mercy, this.label(s));
    }
  }

  /** Shutdown: no more respawns; every process gets the abort signal and mercyMs to finish. */
  async stop(mercyMs: number): Promise<void> {
    this.stopping = true;
    const all: Promise<void>[] = [];
    for (const s of this.slots) {
      if (s.timer) { clearTimeout(s.timer); s.timer = null; }
      if (s.worker) all.push(this.retire(s.worker, mercyMs, this.label(s)));
    }
    await Promise.all(all);
  }
}

// ---------------------------------------------------------------------------------------------
// service process

/** Entry of a service process (called by the cluster child once its boot message says role 'service'). */
export async function runService(msg: ServiceBoot): Promise<void> {
  const { options } = msg;
  const svc = msg.service!;
  const root = createRootLogger({ level: options['log-level'] as string, logto: options.logto as string | undefined, bindings: { service: svc.name, index: svc.index } });
  const abort = new AbortController();
  let started = false;
  const report = (e: unknown) => {
    const line = formatFatal(e);
    root.debug({ err: e }, 'service startup failed');
    flushLogs();
    if (process.connected) process.send!({ t: 'uw:fatal', line, code: (e as UwError)?.code }, () => process.exit(1));
    else process.exit(1);
  };
  let server: Server;
  try {
    process.title = `uwcore ${svc.name} ${svc.index}`;
    const plugins: LoadedPlugin[] = [];
    for (const p of msg.plugins) plugins.push(await importPlugin(p.file, p.origin, p.requested));
    server = new Server({ options, root, role: 'service', workerId: 0 });
    const srv = server;
    installRuntime({ workerId: 0, requests: () => 0, reload: () => { if (process.connected) process.kill(process.ppid, 'SIGHUP'); }, plugin: (n) => srv.apis.get(n) });
    process.on('message', (m: { t?: string; id?: number; ok?: boolean }) => {
      if (m?.t === 'uw:rpc:res') srv.rpcAnswer(m as never);
      else if (m?.t === 'uw:stop') abort.abort();
    });
    // the master went away: stop (the master's successor recovers whatever this process leaves behind)
    process.on('disconnect', () => {
      srv.failPendingRpc();
      abort.abort();
      setTimeout(() => { flushLogs(); process.exit(started ? 0 : 1); }, 5000).unref();
    });
    process.on('SIGINT', () => undefined);
    process.on('SIGHUP', () => undefined);
    process.on('SIGTERM', () => abort.abort());
    await srv.setupPlugins(plugins, new Map(msg.pluginOptions));
    const spec = srv.services.get(svc.name);
    if (!spec) throw new UwError(Codes.INTERNAL, `service ${svc.name} is not registered in the service process`);
    process.title = `uwcore ${spec.title} ${svc.index}`;
    // --import, then --<service>-import when the service's plugin declares one (--spooler-import)
    const own = options[`${svc.name}-import`];
    await loadImports(options, Array.isArray(own) ? { option: `${svc.name}-import`, values: own as string[] } : null);
    // the application module too (not served): tasks it declares with spool() exist here, as in uWSGI, whose
    // spooler inherits the application the master loaded
    await srv.loadApplication(process.cwd());
    srv.seal();
    started = true;
    process.send!({ t: 'uw:ready' });
    try {
      await spec.run({ index: svc.index, log: asLogger(root), signal: abort.signal });
      if (!abort.signal.aborted && process.connected) await new Promise<void>((r) => process.send!({ t: 'uw:done' }, () => r()));
    } catch (e) {
      root.error({ err: e, code: (e as UwError)?.code }, `${spec.title} ${svc.index} failed: ${(e as Error)?.message ?? String(e)}`);
      await srv.runClose().catch(() => undefined);
      flushLogs();
      process.exit(1);
    }
    await srv.runClose().catch(() => undefined);
    flushLogs();
    process.exit(0);
  } catch (e) {
    report(e);
  }
}
