// The server as one process sees it: plugins set up with their APIs, the hook catalogue, registries,
// the application, the listeners and the request pipeline (built once from the hooks actually tapped).
import { Buffer } from 'node:buffer';
import { performance } from 'node:perf_hooks';
import os from 'node:os';
import type pino from 'pino';
import type {
  Address, AppKind, Env, HeaderList, HttpHead, ListenerHandle, ListenerInfo, Logger, PluginApi, ProcessRole, Protocol,
  RouteCondition, RouteConditionSpec, RouteResult, RouterActionFactory, ServerHandle, ServiceSpec, Wire,
} from '../sdk/index.js';
import { Codes, UwError } from './errors.js';
import { createFacade, createHooks, NamedRegistry, type CoreHooks } from './hooks.js';
import type { LoadedPlugin } from './plugins.js';
import { Ctx } from './context.js';
import { buildHttpEnv, type EnvConsts } from './httpenv.js';
import { loadApp, type Handler } from './app.js';
import { asLogger } from './logger.js';
import { createRouter, type Router, type RuleSource } from './routing.js';
import { VERSION } from './version.js';
import { wsgiHandler } from './wsgi.js';

export interface DeclaredListener { info: ListenerInfo; plugin: string }

const wsgiErrors = {
  log: null as Logger | null,
  write(msg: unknown): void { wsgiErrors.log?.error(String(msg).replace(/\n$/, '')); },
  writelines(lines: Iterable<unknown>): void { for (const l of lines) wsgiErrors.write(l); },
  flush(): void { /* lines are written as they come */ },
};

const NO_APP_BODY = 'uwcore: no application is mounted. Start uwcore with --app FILE (alias --wsgi-file) or --module NAME.\n';

export class Server implements ServerHandle {
  readonly hooks: CoreHooks = createHooks();
  readonly protocols = new NamedRegistry<Protocol>('protocol');
  readonly routerActions = new NamedRegistry<RouterActionFactory>('router action');
  readonly routeConditions = new NamedRegistry<RouteCondition | RouteConditionSpec>('route condition');
  readonly appKinds = new NamedRegistry<AppKind>('app kind');
  readonly services = new NamedRegistry<ServiceSpec>('service');
  readonly declared: DeclaredListener[] = [];
  readonly apis = new Map<string, unknown>();
  readonly closers: Array<{ plugin: string; fn: () => unknown }> = [];
  readonly rpcHandlers = new Map<string, (payload: unknown, from: { workerId: number; pid: number }) => unknown>();
  readonly log: Logger;
  readonly root: pino.Logger;
  readonly options: Readonly<Record<string, unknown>>;
  readonly role: ProcessRole;
  readonly workerId: number;
  readonly bufferSize: number;
  readonly limitPost: number;
  readonly addHeaders: HeaderList | null;
  draining = false;
  sealed = false;
  app: Handler | null = null;
  appDescription = '';
  router: Router | null = null;
  /** set once ready: the hooks actually tapped (null = nobody tapped it: no work on the hot path) */
  headersHook: CoreHooks['headers'] | null = null;
  errorHook: CoreHooks['error'] | null = null;
  private requestHook: CoreHooks['request'] | null = null;
  private handleHook: CoreHooks['handle'] | null = null;
  private finishHook: CoreHooks['finish'] | null = null;
  private accessLog: Logger | null = null;
  private fast = false;
  /** routes but no request/handle hooks: run the rules synchronously, then the application */
  private routedFast = false;
  readonly handles: ListenerHandle[] = [];
  inflight = 0;
  requests = 0;
  exceptions = 0;
  private rpcSeq = 0;
  private readonly rpcPending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private idleWaiters: Array<() => void> = [];
  /** called after each finished request (process model: recycling, stats) */
  onRequestDone: ((ctx: Ctx) => void) | null = null;
  /** --max-requests: onRequestLimit runs when request number `requestLimit` arrives (0 = off) */
  requestLimit = 0;
  accepted = 0;
  onRequestLimit: (() => void) | null = null;
  /** rpc transport of an application thread (worker_threads): calls go to the worker's main thread */
  rpcSend: ((msg: { t: 'uw:rpc'; id: number; k: string; a: unknown }) => void) | null = null;

  /** what every env of this process carries (see httpEnv) */
  readonly envConsts: EnvConsts;

  constructor(opts: { options: Record<string, unknown>; root: pino.Logger; role: ProcessRole; workerId: number }) {
    this.options = opts.options;
    this.root = opts.root;
    this.log = asLogger(opts.root);
    this.role = opts.role;
    this.workerId = opts.workerId;
    this.bufferSize = (opts.options['buffer-size'] as number) ?? 65536;
    this.limitPost = (opts.options['limit-post'] as number) ?? 0;
    const add = (opts.options['add-header'] as string[] | undefined) ?? [];
    this.addHeaders = add.length ? add.map((h) => parseHeaderLine(h)) : null;
    wsgiErrors.log = this.log;
    this.envConsts = { errors: wsgiErrors, version: VERSION, workerId: this.workerId, multiprocess: this.role !== 'single' };
  }

  // ---------------------------------------------------------------------------------------------
  // plugins

  /** Run every plugin's setup in order, each under --plugin-timeout. */
  async setupPlugins(plugins: LoadedPlugin[], pluginOptions: Map<string, string[]>): Promise<void> {
    const timeoutS = (this.options['plugin-timeout'] as number) ?? 10;
    for (let i = 0; i < plugins.length; i++) {
      const lp = plugins[i]!;
      const p = lp.plugin;
      const api = this.createApi(p.name, i + 1, p.requires ?? [], pluginOptions.get(p.name) ?? []);
      if (!p.setup) { this.apis.set(p.name, undefined); continue; }
      let timer: NodeJS.Timeout | undefined;
      const t0 = performance.now();
      try {
        const result = await Promise.race([
          Promise.resolve().then(() => p.setup!(api)),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new UwError(Codes.PLUGIN_TIMEOUT, `plugin \`${p.name}\` did not finish setup() within ${timeoutS * 1000} ms (--plugin-timeout); check what it waits for`, { plugin: p.name, hook: 'setup' })), timeoutS * 1000);
            // kept referenced: a setup that awaits nothing alive must still end in this error, not a silent exit
          }),
        ]);
        this.apis.set(p.name, result);
      } catch (e) {
        const err = e as UwError;
        if (err.code === Codes.PLUGIN_TIMEOUT || (typeof err.code === 'string' && err.code.startsWith('UW_ERR_') && err.plugin)) throw err;
        throw new UwError(Codes.PLUGIN_SETUP, `plugin \`${p.name}\` failed in setup(): ${(e as Error)?.message ?? String(e)}`, { plugin: p.name, hook: 'setup', cause: e });
      } finally {
        if (timer) clearTimeout(timer);
      }
      this.log.debug({ plugin: p.name, ms: +(performance.now() - t0).toFixed(2) }, 'plugin setup done');
    }
  }

  private createApi(name: string, index: number, requires: string[], ownOptions: string[]): PluginApi {
    const own: Record<string, unknown> = {};
    for (const o of ownOptions) own[o] = this.options[o];
    Object.freeze(own);
    const log = this.log.child({ plugin: name });
    const server = this;
    return Object.freeze({
      options: own,
      config: this.options,
      log,
      hooks: createFacade(this.hooks, name, index, () => this.sealed),
      process: this.role,
      workerId: this.workerId,
      protocols: this.protocols.forPlugin(name),
      routerActions: this.routerActions.forPlugin(name),
      routeConditions: this.routeConditions.forPlugin(name),
      appKinds: this.appKinds.forPlugin(name),
      services: this.services.forPlugin(name),
      rpc: {
        handle(method: string, fn: (payload: unknown, from: { workerId: number; pid: number }) => unknown) {
          server.rpcHandlers.set(`${name}:${method}`, fn);
        },
        call<T>(method: string, payload?: unknown): Promise<T> { return server.rpcCall(name, method, payload) as Promise<T>; },
      },
      listen(option: string, protocol: string, address: Address, opts?: { keepAlive?: boolean }) {
        server.declared.push({ info: Object.freeze({ option, protocol, address, keepAlive: opts?.keepAlive ?? true }), plugin: name });
      },
      use<T>(other: string): T {
        if (!requires.includes(other)) throw new UwError(Codes.PLUGIN_NOT_REQUIRED, `plugin \`${name}\` uses plugin \`${other}\` without listing it in requires`, { plugin: name });
        return server.apis.get(other) as T;
      },
      onClose(fn: () => unknown) { server.closers.push({ plugin: name, fn }); },
      error(code: string, message: string) {
        // a bad option value found by a plugin is a usage error (exit 2), like the core's own
        const e = new UwError(code, message, { plugin: name, exitCode: code.startsWith('UW_ERR_CONFIG_') ? 2 : 1 }) as UwError & { code: string; plugin: string };
        return e;
      },
    }) as PluginApi;
  }

  // ---------------------------------------------------------------------------------------------
  // rpc (workers → master)

  rpcCall(plugin: string, method: string, payload: unknown): Promise<unknown> {
    const key = `${plugin}:${method}`;
    if (this.role === 'single' || this.role === 'master') {
      const h = this.rpcHandlers.get(key);
      if (!h) return Promise.reject(new UwError(Codes.RPC_UNKNOWN, `no handler for ${key} in the master`, { plugin }));
      try { return Promise.resolve(h(payload, { workerId: this.workerId, pid: process.pid })); } catch (e) { return Promise.reject(e); }
    }
    if (this.rpcSend !== null) {
      const id = ++this.rpcSeq;
      return new Promise((resolve, reject) => {
        this.rpcPending.set(id, { resolve, reject });
        this.rpcSend!({ t: 'uw:rpc', id, k: key, a: payload });
      });
    }
    if (!process.send || !process.connected) return Promise.reject(new UwError(Codes.RPC, `cannot call ${key}: the master is gone`, { plugin }));
    const id = ++this.rpcSeq;
    return new Promise((resolve, reject) => {
      this.rpcPending.set(id, { resolve, reject });
      process.send!({ t: 'uw:rpc', id, k: key, a: payload });
    });
  }

  /** worker side: an answer from the master */
  rpcAnswer(msg: { id: number; ok: boolean; v?: unknown; e?: { message: string; code?: string; plugin?: string } }): void {
    const p = this.rpcPending.get(msg.id);
    if (!p) return;
    this.rpcPending.delete(msg.id);
    if (msg.ok) p.resolve(msg.v);
    else p.reject(Object.assign(new Error(msg.e?.message ?? 'rpc failed'), { code: msg.e?.code ?? Codes.RPC, plugin: msg.e?.plugin }));
  }

  /** master side: run a handler for a worker */
  async rpcServe(key: string, payload: unknown, from: { workerId: number; pid: number }): Promise<unknown> {
    const h = this.rpcHandlers.get(key);
    if (!h) throw new UwError(Codes.RPC_UNKNOWN, `no handler for ${key} in the master`);
    return h(payload, from);
  }

  failPendingRpc(): void {
    for (const [, p] of this.rpcPending) p.reject(new UwError(Codes.RPC, 'the master went away'));
    this.rpcPending.clear();
  }

  // ---------------------------------------------------------------------------------------------
  // app and pipeline

  async loadApplication(cwd: string): Promise<void> {
    const info = await loadApp({ app: this.options.app as string | undefined, module: this.options.module as string | undefined, callable: this.options.callable as string, cwd }, this.appKinds);
    if (info) { this.app = info.handler; this.appDescription = info.description; }
  }

  /** Freeze the hook taps and precompute which steps a request takes. */
  seal(): void {
    this.sealed = true;
    const h = this.hooks;
    this.requestHook = h.request.isUsed() ? h.request : null;
    this.handleHook = h.handle.isUsed() ? h.handle : null;
    this.errorHook = h.error.isUsed() ? h.error : null;
    this.headersHook = h.headers.isUsed() ? h.headers : null;
    this.finishHook = h.finish.isUsed() ? h.finish : null;
    if (!this.options['disable-logging']) this.accessLog = this.log;
    this.router = this.compileRoutes(false);
    this.fast = this.requestHook === null && this.handleHook === null && this.router === null && this.app !== null;
    this.routedFast = this.requestHook === null && this.handleHook === null && this.router !== null && this.app !== null;
  }

  /** Compile the routing rules (`options.__routes`, in the order written); throws UW_ERR_ROUTE on a bad rule. */
  compileRoutes(verbose: boolean): Router | null {
    const rules = (this.options['__routes'] as RuleSource[] | undefined) ?? [];
    return rules.length ? createRouter(this, rules, { verbose }) : null;
  }

  /** SERVER_PORT per TCP listener: every socket it accepts has the listener's port as its local port. */
  private readonly serverPorts = new WeakMap<ListenerInfo, string>();
  /** the listener of the last request and its port (most requests come through the same one) */
  private lastListener: ListenerInfo | null = null;
  private lastPort = '';

  /** The CGI vars of a node:http request. */
  httpEnv(req: HttpHead, listener: ListenerInfo): Env {
    const a = listener.address;
    let port = '80';
    if (listener === this.lastListener) port = this.lastPort;
    else if (a.kind === 'tcp') {
      // looked up once per listener (port 0 binds a random one), not with a getsockname() per connection
      port = this.serverPorts.get(listener) ?? '';
      if (port === '') {
        port = String(req.socket.localPort ?? a.port);
        this.serverPorts.set(listener, port);
      }
    }
    this.lastListener = listener;
    this.lastPort = port;
    return buildHttpEnv(req, listener, port, 'http', this.envConsts);
  }

  /** Run one request through the pipeline. */
  dispatch(env: Env, body: NodeJS.ReadableStream & AsyncIterable<Buffer>, wire: Wire, listener: ListenerInfo): void {
    if (env['uwcore.version'] !== VERSION) {
      // an env from a protocol that did not set the constants (httpEnv's have them in their literal)
      env['wsgi.errors'] = wsgiErrors;
      env['uwcore.version'] = VERSION;
      env['uwcore.worker_id'] = this.workerId;
      env['uwcore.core_id'] = 0;
      env['wsgi.multithread'] = false;
      env['wsgi.multiprocess'] = this.role !== 'single';
      env['wsgi.run_once'] = false;
    }
    if (this.requestLimit !== 0 && ++this.accepted >= this.requestLimit) this.onRequestLimit!();
    const ctx = new Ctx(this, env, body, wire, listener);
    this.inflight++;
    const cl = env.CONTENT_LENGTH;
    if (this.limitPost > 0 && cl !== undefined && Number(cl) > this.limitPost) {
      ctx.respond(413, [['Content-Type', 'text/plain'], ['Connection', 'close']], `request body larger than ${this.limitPost} bytes (--limit-post)\n`);
      return;
    }
    if (this.fast) {
      // fast path: no request/handle hooks, no routes: straight to the application
      let r: unknown;
      try { r = this.app!(ctx); } catch (e) { void ctx.fail(e); return; }
      if (r !== undefined) (r as Promise<void>).catch((e: unknown) => ctx.fail(e));
      return;
    }
    if (this.routedFast) {
      // routes but no hooks: the rules usually answer synchronously, so no promise until the application
      let r: RouteResult | Promise<RouteResult>;
      try { r = this.router!.run(ctx); } catch (e) { void ctx.fail(e); return; }
      if (typeof r === 'string') { this.afterRoutes(ctx, r); return; }
      ctx.watch();
      r.then((v) => this.afterRoutes(ctx, v), (e: unknown) => ctx.fail(e));
      return;
    }
    this.slowDispatch(ctx).catch((e: unknown) => ctx.fail(e));
  }

  private afterRoutes(ctx: Ctx, r: RouteResult): void {
    if (r !== 'continue' || ctx.ended || ctx.headersSent) { routed(ctx); return; }
    let x: unknown;
    try { x = this.app!(ctx); } catch (e) { void ctx.fail(e); return; }
    if (x !== undefined) (x as Promise<void>).catch((e: unknown) => ctx.fail(e));
  }

  /** An application thread runs one request handed over by its worker's main thread: straight to the app. */
  dispatchApp(env: Env, body: NodeJS.ReadableStream & AsyncIterable<Buffer>, wire: Wire, listener: ListenerInfo, coreId: number): void {
    env['wsgi.errors'] = wsgiErrors;
    env['uwcore.core_id'] = coreId;
    env['wsgi.multithread'] = true;
    const ctx = new Ctx(this, env, body, wire, listener);
    this.inflight++;
    if (this.app === null) { ctx.respond(404, [['Content-Type', 'text/plain; charset=utf-8']], NO_APP_BODY); return; }
    let r: unknown;
    try { r = this.app(ctx); } catch (e) { void ctx.fail(e); return; }
    if (r !== undefined) (r as Promise<void>).catch((e: unknown) => ctx.fail(e));
  }

  private async slowDispatch(ctx: Ctx): Promise<void> {
    ctx.watch();
    if (this.requestHook !== null) {
      const handled = await this.requestHook.promise(ctx);
      if (handled || ctx.ended || ctx.headersSent) return;
    }
    if (this.router !== null) {
      let r = this.router.run(ctx);
      if (typeof r !== 'string') r = await r;
      if (r !== 'continue' || ctx.ended || ctx.headersSent) { routed(ctx); return; }
    }
    if (this.handleHook !== null) {
      const handled = await this.handleHook.promise(ctx);
      if (handled || ctx.ended || ctx.headersSent) return;
    }
    if (this.app === null) {
      ctx.respond(404, [['Content-Type', 'text/plain; charset=utf-8']], NO_APP_BODY);
      return;
    }
    await this.app(ctx);
  }

  /** A request's response is over. */
  finished(ctx: Ctx): void {
    this.inflight--;
    this.requests++;
    if (this.finishHook !== null) {
      try { this.finishHook.call(ctx); } catch (e) { this.log.error({ err: e, code: (e as UwError).code, plugin: (e as UwError).plugin, hook: 'finish' }, 'finish hook failed'); }
    }
    if (this.accessLog !== null && !ctx.noLog) {
      const env = ctx.env;
      this.accessLog.info({
        method: env.REQUEST_METHOD, uri: env.REQUEST_URI, status: ctx.aborted && !ctx.headersSent ? 0 : ctx.status,
        bytes: ctx.bytesSent, ms: Math.round((performance.now() - ctx.startTime) * 100) / 100, remote: env.REMOTE_ADDR,
        ...(ctx.aborted ? { aborted: true } : null),
      }, `${env.REQUEST_METHOD} ${env.REQUEST_URI} => ${ctx.status}`);
    }
    if (this.onRequestDone !== null) this.onRequestDone(ctx);
    if (this.inflight === 0 && this.idleWaiters.length) {
      const w = this.idleWaiters;
      this.idleWaiters = [];
      for (const f of w) f();
    }
  }

  logRequestError(ctx: Ctx, err: Error & { code?: string; plugin?: string; hook?: string; status?: number }): void {
    const status = typeof err.status === 'number' ? err.status : 500;
    if (status < 500) {
      ctx.log.info({ code: err.code, status }, err.message);
      return;
    }
    this.exceptions++;
    const code = typeof err.code === 'string' && err.code.startsWith('UW_ERR_') ? err.code : Codes.APP_THREW;
    ctx.log.error({ err, code, plugin: err.plugin ?? 'app', hook: err.hook ?? 'handle' }, `request failed: ${err.message}`);
  }

  /** Resolves when no request is in flight (or after `ms`). */
  waitIdle(ms: number): Promise<boolean> {
    if (this.inflight <= 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), ms);
      this.idleWaiters.push(() => { clearTimeout(t); resolve(true); });
    });
  }

  // ---------------------------------------------------------------------------------------------
  // listeners and shutdown

  async openListeners(): Promise<void> {
    for (const d of this.declared) {
      const proto = this.protocols.get(d.info.protocol);
      if (!proto) throw new UwError(Codes.PROTOCOL_UNKNOWN, `listener --${d.info.option} needs protocol "${d.info.protocol}", which no loaded plugin registers`, { plugin: d.plugin });
      try {
        this.handles.push(await proto.listen(d.info, this));
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        if (err.code === 'EADDRINUSE') {
          throw new UwError(Codes.LISTEN_IN_USE, `address ${describeAddress(d.info.address)} (--${d.info.option}) is already in use; stop the other server or choose another address`, { plugin: d.plugin });
        }
        if (err.code === 'EACCES') {
          throw new UwError(Codes.LISTEN, `no permission to listen on ${describeAddress(d.info.address)} (--${d.info.option}); use a port above 1023 or a writable socket path`, { plugin: d.plugin });
        }
        if (err instanceof UwError) throw err;
        throw new UwError(Codes.LISTEN, `cannot listen on ${describeAddress(d.info.address)} (--${d.info.option}): ${err.message}`, { plugin: d.plugin });
      }
    }
  }

  /** Graceful stop: stop accepting, let in-flight requests finish (up to mercy), close idle connections, run close hooks. */
  async stop(mercyMs: number): Promise<void> {
    this.draining = true;
    const closing = this.handles.map((h) => h.close().catch(() => undefined));
    // a connection accepted just before the listener closed may not have sent its request yet: give it a moment
    if (mercyMs > 0 && this.handles.reduce((n, h) => n + h.connections(), 0) > this.inflight) await new Promise((r) => setTimeout(r, Math.min(mercyMs, 150)));
    for (const h of this.handles) h.closeIdle();
    const idle = await this.waitIdle(mercyMs);
    if (!idle) this.log.warn({ inflight: this.inflight }, `requests still running after ${mercyMs / 1000} s of mercy; closing their connections`);
    for (const h of this.handles) { h.closeIdle(); if (!idle) h.destroyAll(); }
    await Promise.race([Promise.all(closing), new Promise((r) => setTimeout(r, idle ? 2000 : 100).unref())]);
    for (const h of this.handles) h.destroyAll();
    await this.runClose();
  }

  async runClose(): Promise<void> {
    try { await this.hooks.close.promise(); } catch (e) {
      const err = e as UwError;
      this.log.error({ err, code: err.code, plugin: err.plugin, hook: 'close' }, 'close hook failed');
    }
    for (let i = this.closers.length - 1; i >= 0; i--) {
      const c = this.closers[i]!;
      try { await c.fn(); } catch (e) { this.log.error({ err: e, plugin: c.plugin, hook: 'close' }, 'onClose handler failed'); }
    }
    this.closers.length = 0;
  }
}

/**
 * Routing ended the request ('break', or an action answered): finish a started response; with nothing sent,
 * close the connection without a response, as uWSGI's `break:` does.
 */
function routed(ctx: Ctx): void {
  if (ctx.ended) return;
  if (ctx.headersSent) ctx.end();
  else ctx.abort();
}

export function describeAddress(a: Address): string {
  if (a.kind === 'unix') return a.path.startsWith('\0') ? '@' + a.path.slice(1) : a.path;
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

export function parseHeaderLine(line: string): [string, string] {
  const i = line.indexOf(':');
  if (i <= 0) throw new UwError(Codes.CONFIG_BAD_VALUE, `invalid header ${JSON.stringify(line)} for --add-header: expected "Name: value"`, { exitCode: 2 });
  return [line.slice(0, i).trim(), line.slice(i + 1).trim()];
}

export const CPU_COUNT = os.availableParallelism?.() ?? os.cpus().length;
export { wsgiHandler };
