// Application threads (--threads N, and --harakiri): N worker_threads per worker process, each running its
// own copy of the application, so that a blocking application serves N requests at once per process.
// The worker's main thread keeps accepting and parsing (protocols, request hooks, routes, access log) and
// hands each request that reaches the application to an idle thread (a FIFO queue when all are busy).
// Harakiri: a thread whose request runs longer than --harakiri is terminated, the client gets 504 (when no
// header was sent yet), and a fresh thread takes its place.
import { Buffer } from 'node:buffer';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import type { Origin } from './plugins.js';
import type { Ctx } from './context.js';
import { Codes, UwError } from './errors.js';
import type { Server } from './server.js';

export interface ThreadBoot {
  options: Record<string, unknown>;
  plugins: Array<{ file: string; origin: Origin; requested: string }>;
  pluginOptions: Array<[string, string[]]>;
  workerId: number;
  coreId: number;
  /** a master runs (uwcore.reload() signals it) */
  master: boolean;
}

/** Messages the main thread sends a thread. */
export type ToThread =
  | { t: 'req'; id: number; env: Record<string, unknown>; l: unknown }
  | { t: 'chunk'; id: number; c: Uint8Array }
  | { t: 'eof'; id: number }
  | { t: 'berr'; id: number; m: string }
  | { t: 'ack'; id: number; n: number }
  | { t: 'gone'; id: number }
  | { t: 'rpc:res'; id: number; ok: boolean; v?: unknown; e?: unknown }
  | { t: 'stop' };

type FromThread =
  | { t: 'ready'; app: string | null }
  | { t: 'fatal'; line: string; code?: string }
  | { t: 'head'; id: number; s: number; r: string; h: Array<[string, string]> }
  | { t: 'data'; id: number; c: string | Uint8Array }
  | { t: 'end'; id: number; c?: string | Uint8Array }
  | { t: 'abort'; id: number }
  | { t: 'done'; id: number; x: number }
  | { t: 'pull'; id: number }
  | { t: 'uw:rpc'; id: number; k: string; a: unknown }
  | { t: 'closed' };

interface Job { id: number; ctx: Ctx; it: AsyncIterator<Buffer> | null }

interface Core {
  id: number;
  thread: Worker | null;
  ready: boolean;
  job: Job | null;
  since: number;
  requests: number;
  harakiri: number;
  exceptions: number;
  respawns: number;
  fails: number;
}

export interface CoreStats { id: number; requests: number; in_request: number; harakiri_count: number; respawn_count: number }

const THREAD_MAIN = new URL('./thread-main.js', import.meta.url);

function serialisableEnv(env: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k in env) {
    const v = env[k];
    const t = typeof v;
    if (t === 'string' || t === 'number' || t === 'boolean') out[k] = v;
  }
  return out;
}

function byteLen(c: string | Uint8Array): number {
  return typeof c === 'string' ? Buffer.byteLength(c) : c.byteLength;
}

export class ThreadPool {
  readonly cores: Core[];
  private readonly queue: Ctx[] = [];
  private seq = 0;
  private timer: NodeJS.Timeout | null = null;
  private closing = false;
  appDescription: string | null = null;
  /** the application handler the worker's Server runs: hand the request to a thread */
  readonly handler: (ctx: Ctx) => void;

  constructor(private readonly server: Server, private readonly boot: Omit<ThreadBoot, 'coreId'>, count: number, private readonly harakiriS: number) {
    this.cores = Array.from({ length: count }, (_, i) => ({ id: i + 1, thread: null, ready: false, job: null, since: 0, requests: 0, harakiri: 0, exceptions: 0, respawns: 0, fails: 0 }));
    this.handler = (ctx: Ctx) => {
      for (const c of this.cores) if (c.ready && c.job === null) { this.assign(c, ctx); return; }
      if (this.broken()) { this.unavailable(ctx); return; }
      this.queue.push(ctx);
    };
  }

  /** Start every thread; resolves once all loaded the application, rejects with the first fatal line. */
  async start(): Promise<void> {
    await Promise.all(this.cores.map((c) => this.spawn(c)));
    if (this.harakiriS > 0) {
      const every = Math.max(50, Math.min(1000, (this.harakiriS * 1000) / 4));
      this.timer = setInterval(() => this.checkHarakiri(), every);
      this.timer.unref();
    }
  }

  private spawn(core: Core): Promise<void> {
    return new Promise((resolve, reject) => {
      const t = new Worker(THREAD_MAIN, { workerData: { ...this.boot, coreId: core.id } satisfies ThreadBoot, stdout: false, stderr: false });
      core.thread = t;
      core.ready = false;
      let started = false;
      t.on('message', (m: FromThread) => {
        if (m.t === 'ready') {
          started = true;
          core.ready = true;
          core.fails = 0;
          if (this.appDescription === null && m.app !== null) this.appDescription = m.app;
          resolve();
          this.next(core);
          return;
        }
        if (m.t === 'fatal') { started = true; reject(Object.assign(new UwError(m.code ?? Codes.WORKER_START, m.line.replace(/^uwcore: (UW_ERR_\w+: )?/, '')), { fatalLine: m.line })); void t.terminate(); return; }
        this.onMessage(core, t, m);
      });
      t.on('error', (e) => {
        if (!started) { started = true; reject(new UwError(Codes.WORKER_START, `application thread ${core.id} failed to start: ${e.message}`)); return; }
        if (core.thread === t) this.server.log.error({ err: e, core: core.id, code: Codes.APP_THREW }, `application thread ${core.id} crashed: ${e.message}`);
      });
      t.on('exit', (code) => {
        if (!started) { started = true; reject(new UwError(Codes.WORKER_START, `application thread ${core.id} exited during startup (code ${code})`)); return; }
        if (core.thread !== t || this.closing) return;
        // an unexpected end (process.exit() in the app, an uncaught error): fail its request, replace it
        core.thread = null;
        core.ready = false;
        const job = core.job;
        core.job = null;
        if (job !== null) this.failJob(job, 502, 'Bad Gateway');
        this.replace(core, `exited with code ${code}`);
      });
    });
  }

  /** every thread keeps failing to start (the application no longer loads): nothing can serve */
  private broken(): boolean {
    return this.cores.every((c) => !c.ready && c.fails > 1);
  }

  private unavailable(ctx: Ctx): void {
    if (ctx.ended) return;
    ctx.respond(503, [['Content-Type', 'text/plain; charset=utf-8'], ['Retry-After', '5']], 'Service Unavailable: the application threads cannot start (see the log)\n');
  }

  private replace(core: Core, why: string): void {
    core.respawns++;
    core.fails++;
    const delay = core.fails > 3 ? Math.min(10_000, 250 * 2 ** (core.fails - 3)) : 0;
    this.server.log.warn({ core: core.id, why }, `application thread ${core.id} ${why}: starting a fresh one${delay ? ` in ${delay / 1000} s` : ''}`);
    const go = () => {
      if (this.closing) return;
      this.spawn(core).catch((e: Error & { fatalLine?: string }) => {
        this.server.log.error({ core: core.id }, `application thread ${core.id} failed to start: ${e.fatalLine ?? e.message}`);
        core.thread = null;
        if (this.broken()) for (const ctx of this.queue.splice(0)) this.unavailable(ctx);
        this.replace(core, 'failed to start');
      });
    };
    if (delay) setTimeout(go, delay).unref(); else go();
  }

  private assign(core: Core, ctx: Ctx): void {
    const id = ++this.seq;
    const job: Job = { id, ctx, it: null };
    core.job = job;
    core.since = performance.now();
    ctx.onClose(() => { if (ctx.aborted && core.job === job) core.thread?.postMessage({ t: 'gone', id } satisfies ToThread); });
    core.thread!.postMessage({ t: 'req', id, env: serialisableEnv(ctx.env), l: { ...ctx.listener, keepAlive: true } } satisfies ToThread);
  }

  private next(core: Core): void {
    while (core.ready && core.job === null && this.queue.length > 0) {
      const ctx = this.queue.shift()!;
      if (ctx.ended) continue; // the client went away while it waited
      this.assign(core, ctx);
    }
  }

  private onMessage(core: Core, t: Worker, m: FromThread): void {
    if (m.t === 'uw:rpc') {
      const [plugin, ...rest] = m.k.split(':');
      this.server.rpcCall(plugin!, rest.join(':'), m.a).then(
        (v) => t.postMessage({ t: 'rpc:res', id: m.id, ok: true, v } satisfies ToThread),
        (e: Error & { code?: string; plugin?: string }) => t.postMessage({ t: 'rpc:res', id: m.id, ok: false, e: { message: e.message, code: e.code, plugin: e.plugin } } satisfies ToThread),
      );
      return;
    }
    if (m.t === 'closed' || m.t === 'ready' || m.t === 'fatal') return;
    const job = core.job;
    if (job === null || job.id !== m.id || core.thread !== t) return;
    const ctx = job.ctx;
    switch (m.t) {
      case 'head':
        if (ctx.ended) return;
        try { ctx.start(m.s, m.r, m.h); } catch (e) { void ctx.fail(e); t.postMessage({ t: 'gone', id: m.id } satisfies ToThread); }
        return;
      case 'data': {
        const n = byteLen(m.c);
        if (ctx.ended || ctx.write(m.c)) { t.postMessage({ t: 'ack', id: m.id, n } satisfies ToThread); return; }
        void ctx.drain().then(() => t.postMessage({ t: 'ack', id: m.id, n } satisfies ToThread));
        return;
      }
      case 'end':
        if (!ctx.ended) ctx.end(m.c ?? undefined);
        return;
      case 'abort':
        ctx.abort();
        return;
      case 'pull': {
        const it = (job.it ??= (ctx.body as AsyncIterable<Buffer>)[Symbol.asyncIterator]());
        it.next().then(
          (r) => {
            if (core.job !== job) return;
            if (r.done) t.postMessage({ t: 'eof', id: m.id } satisfies ToThread);
            else {
              const c = typeof r.value === 'string' ? Buffer.from(r.value) : r.value;
              t.postMessage({ t: 'chunk', id: m.id, c } satisfies ToThread);
            }
          },
          (e: Error) => { if (core.job === job) t.postMessage({ t: 'berr', id: m.id, m: e.message } satisfies ToThread); },
        );
        return;
      }
      case 'done':
        if (m.x > core.exceptions) { this.server.exceptions += m.x - core.exceptions; core.exceptions = m.x; }
        core.requests++;
        core.job = null;
        if (!ctx.ended) ctx.abort();
        this.next(core);
        return;
      default:
    }
  }

  private failJob(job: Job, status: number, text: string): void {
    const ctx = job.ctx;
    if (ctx.ended) return;
    if (ctx.headersSent) { ctx.abort(); return; }
    ctx.respond(status, [['Content-Type', 'text/plain; charset=utf-8']], `${text}\n`);
  }

  private checkHarakiri(): void {
    const now = performance.now();
    const limit = this.harakiriS * 1000;
    for (const core of this.cores) {
      const job = core.job;
      if (job === null || now - core.since <= limit) continue;
      const env = job.ctx.env;
      const secs = Math.round((now - core.since) / 100) / 10;
      core.harakiri++;
      this.server.exceptions++;
      this.server.log.error({ code: 'UW_ERR_HARAKIRI', method: env.REQUEST_METHOD, uri: env.REQUEST_URI, core: core.id, seconds: secs, remote: env.REMOTE_ADDR },
        `HARAKIRI: ${env.REQUEST_METHOD} ${env.REQUEST_URI} ran ${secs} s (--harakiri ${this.harakiriS}) on worker ${this.server.workerId} (pid: ${process.pid}) core ${core.id}: killing its thread`);
      const t = core.thread;
      core.thread = null;
      core.ready = false;
      core.job = null;
      void t?.terminate();
      this.failJob(job, 504, 'Gateway Timeout');
      core.fails = 0;
      this.replace(core, 'was killed by harakiri');
    }
  }

  stats(): CoreStats[] {
    return this.cores.map((c) => ({ id: c.id - 1, requests: c.requests, in_request: c.job ? 1 : 0, harakiri_count: c.harakiri, respawn_count: c.respawns }));
  }

  get harakiriCount(): number { return this.cores.reduce((n, c) => n + c.harakiri, 0); }

  /** Run every thread's close hooks (up to 2 s), then end the threads. */
  async close(): Promise<void> {
    this.closing = true;
    if (this.timer) clearInterval(this.timer);
    await Promise.all(this.cores.map((c) => {
      const t = c.thread;
      if (!t) return undefined;
      return new Promise<void>((resolve) => {
        const done = () => { clearTimeout(timer); void t.terminate().then(() => resolve(), () => resolve()); };
        const timer = setTimeout(done, 2000);
        t.on('message', (m: FromThread) => { if (m.t === 'closed') done(); });
        t.once('exit', () => { clearTimeout(timer); resolve(); });
        t.postMessage({ t: 'stop' } satisfies ToThread);
      });
    }));
  }
}
