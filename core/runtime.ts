// What applications import: `import { cache, spool, worker } from 'uwcore'` (Python's `import uwsgi`).
// Every call reaches the running server through the process-wide runtime slot the core fills at boot.
import { Buffer } from 'node:buffer';
import { Codes, UwError } from './errors.js';

export interface RuntimeSlot {
  workerId: number;
  requests: () => number;
  reload: () => void;
  plugin: (name: string) => unknown;
}

const KEY = Symbol.for('uwcore.runtime');

function slot(): RuntimeSlot | undefined {
  return (globalThis as Record<symbol, RuntimeSlot | undefined>)[KEY];
}

/** @internal the core fills the slot at boot */
export function installRuntime(s: RuntimeSlot): void {
  (globalThis as Record<symbol, RuntimeSlot | undefined>)[KEY] = s;
}

function feature<T>(plugin: string, what: string, how: string): T {
  const api = slot()?.plugin(plugin) as Record<string, unknown> | undefined;
  if (!api) throw new UwError(Codes.NOT_ENABLED, `${what} is not enabled in this server: ${how}`);
  return api as T;
}

/** The named cache shared by every worker (the first --cache2 when name is omitted). */
export function cache(name?: string): unknown {
  const api = feature<{ cache: (n?: string) => unknown }>('cache', 'the cache', 'start uwcore with --cache2 name=NAME,items=N');
  return api.cache(name);
}

type TaskFn = (...a: any[]) => unknown;
/** Options of `task.spool(args, opts)`. */
export interface SpoolOptions {
  /** do not run before this time (a Date, or unix time in seconds) */
  at?: Date | number;
  /** an integer >= 0: lower runs first (prioritised tasks run before the others) */
  priority?: number;
  /** bytes of any size, given back to the task as args.body */
  body?: Buffer | Uint8Array | string;
  /** which --spooler directory (its path, or its base name); default the first */
  spooler?: string;
}
/** A declared task: the function itself, plus `.spool(args, opts)` that enqueues it and resolves to its id. */
export type SpoolTask<F extends TaskFn = TaskFn> = F & {
  spool(args?: Record<string, unknown>, opts?: SpoolOptions): Promise<string>;
  readonly taskName: string;
};

function declareTask(method: 'spool' | 'spoolRaw' | 'spoolForever', nameOrFn: string | TaskFn, fn?: TaskFn): SpoolTask {
  const api = slot()?.plugin('spooler') as Record<string, ((n: unknown, f?: unknown) => SpoolTask) | undefined> | undefined;
  const declare = api?.[method];
  if (!declare) {
    // declaring is allowed anywhere (a tasks module may be imported by tools); enqueueing needs the spooler
    const off = () => new UwError(Codes.NOT_ENABLED, 'the spooler is not enabled in this server: start uwcore with --spooler DIR');
    const f = typeof nameOrFn === 'function' ? nameOrFn : fn ?? (() => { throw off(); });
    return Object.assign(f, { spool: async () => { throw off(); }, taskName: typeof nameOrFn === 'string' ? nameOrFn : nameOrFn.name });
  }
  return declare(nameOrFn, fn);
}

/** Declare a spooler task: `spool(fn)` or `spool(name, fn)`; `.spool(args, { at, priority, body, spooler })` enqueues it durably. */
export function spool<F extends TaskFn>(fn: F): SpoolTask<F>;
export function spool<F extends TaskFn>(name: string, fn?: F): SpoolTask<F>;
export function spool(nameOrFn: string | TaskFn, fn?: TaskFn): SpoolTask {
  return declareTask('spool', nameOrFn, fn);
}
/** uWSGI's @spoolraw: the function's return code (SPOOL_OK / SPOOL_RETRY / SPOOL_IGNORE) is used as is. */
spool.raw = <F extends TaskFn>(nameOrFn: string | F, fn?: F): SpoolTask<F> => declareTask('spoolRaw', nameOrFn, fn) as SpoolTask<F>;
/** uWSGI's @spoolforever: the task runs again at every scan. */
spool.forever = <F extends TaskFn>(nameOrFn: string | F, fn?: F): SpoolTask<F> => declareTask('spoolForever', nameOrFn, fn) as SpoolTask<F>;

/** Spooler task return codes (uWSGI's values). */
export const SPOOL_OK = -2;
export const SPOOL_RETRY = -1;
export const SPOOL_IGNORE = 0;

/** This process as a worker. */
export const worker = {
  get id(): number { return slot()?.workerId ?? 0; },
  get pid(): number { return process.pid; },
  get requests(): number { return slot()?.requests() ?? 0; },
  reload(): void { reload(); },
};

/** Gracefully reload every worker (SIGHUP to the master). */
export function reload(): void {
  const s = slot();
  if (!s) throw new UwError(Codes.NOT_ENABLED, 'uwcore.reload() called outside a running uwcore server');
  s.reload();
}

export { HttpError } from '../sdk/index.js';
