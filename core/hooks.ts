// The hook catalogue (tapable) owned by the core, and the tap-only facade each plugin receives:
// no call, no intercept; tap names are `<plugin>` or `<plugin>:<detail>`; anything a tap throws is
// tagged with code, plugin and hook; taps after the server is ready are refused.
import tapable from 'tapable';
import { SDK_VERSION, type Hooks } from '../sdk/index.js';
import { didYouMean } from './config/values.js';
import { Codes, UwError, tagError } from './errors.js';

const { SyncWaterfallHook, SyncHook, AsyncSeriesHook, AsyncParallelHook, AsyncSeriesBailHook } = tapable;

export type HookKind = 'SyncWaterfall' | 'Sync' | 'AsyncSeries' | 'AsyncParallel' | 'AsyncSeriesBail';

/** The catalogue: name → kind and argument names. The test suite snapshots it: every change is an SDK change. */
export const HOOK_SPECS: Record<keyof Hooks, { kind: HookKind; args: string[]; since: string }> = {
  configure: { kind: 'SyncWaterfall', args: ['options'], since: '1.0.0' },
  masterStart: { kind: 'AsyncSeries', args: [], since: '1.0.0' },
  workerStart: { kind: 'AsyncSeries', args: [], since: '1.0.0' },
  ready: { kind: 'AsyncParallel', args: [], since: '1.0.0' },
  reload: { kind: 'AsyncSeries', args: [], since: '1.0.0' },
  close: { kind: 'AsyncSeries', args: [], since: '1.0.0' },
  request: { kind: 'AsyncSeriesBail', args: ['ctx'], since: '1.0.0' },
  handle: { kind: 'AsyncSeriesBail', args: ['ctx'], since: '1.0.0' },
  error: { kind: 'AsyncSeriesBail', args: ['err', 'ctx'], since: '1.0.0' },
  headers: { kind: 'SyncWaterfall', args: ['headers', 'ctx'], since: '1.0.0' },
  finish: { kind: 'Sync', args: ['ctx'], since: '1.0.0' },
  stats: { kind: 'SyncWaterfall', args: ['stats'], since: '1.0.0' },
};

/* eslint-disable @typescript-eslint/no-explicit-any */
export type CoreHooks = Record<keyof Hooks, any>;

export function createHooks(): CoreHooks {
  const h: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(HOOK_SPECS)) {
    const args = spec.args as any;
    switch (spec.kind) {
      case 'SyncWaterfall': h[name] = new SyncWaterfallHook(args); break;
      case 'Sync': h[name] = new SyncHook(args); break;
      case 'AsyncSeries': h[name] = new AsyncSeriesHook(args); break;
      case 'AsyncParallel': h[name] = new AsyncParallelHook(args); break;
      case 'AsyncSeriesBail': h[name] = new AsyncSeriesBailHook(args); break;
    }
  }
  return Object.freeze(h) as CoreHooks;
}

function onlyTrue(v: unknown): true | undefined { return v === true ? true : undefined; }

const TAP_NAME = /^[a-z][a-z0-9-]*(?::.+)?$/;

/** Build the tap-only facade a plugin's setup receives. `index` orders close hooks in reverse. */
export function createFacade(hooks: CoreHooks, plugin: string, index: number, isSealed: () => boolean): Hooks {
  const facade: Record<string, unknown> = {};
  for (const name of Object.keys(HOOK_SPECS) as Array<keyof Hooks>) {
    const hook = hooks[name];
    const kind = HOOK_SPECS[name].kind;
    const opts = (o: unknown): Record<string, unknown> => {
      if (isSealed()) throw new UwError(Codes.HOOK_SEALED, `plugin \`${plugin}\` tapped hook ${name} after the server was ready; tap hooks in setup()`, { plugin, hook: name });
      const t: Record<string, unknown> = typeof o === 'string' ? { name: o } : { ...(o as object) };
      const tn = String(t.name ?? '');
      if (!TAP_NAME.test(tn) || (tn !== plugin && !tn.startsWith(plugin + ':'))) {
        throw new UwError(Codes.HOOK_TAP_NAME, `plugin \`${plugin}\` tapped hook ${name} as "${tn}"; tap names must be "${plugin}" or "${plugin}:<detail>"`, { plugin, hook: name });
      }
      if (name === 'close' && t.stage === undefined) t.stage = -index; // close runs in reverse plugin order
      return t;
    };
    const wrapSync = (fn: (...a: unknown[]) => unknown) => function tagged(this: unknown, ...args: unknown[]) {
      try { return fn.apply(this, args); } catch (e) { throw tagError(e, plugin, name); }
    };
    const onReject = (e: unknown) => { throw tagError(e, plugin, name); };
    // bail hooks: only `true` means "answered"; false/null/undefined let the next tap run (tapable bails on anything but undefined)
    const bail = kind === 'AsyncSeriesBail';
    const wrapPromise = (fn: (...a: unknown[]) => Promise<unknown>) => function tagged(this: unknown, ...args: unknown[]) {
      let p: Promise<unknown>;
      try { p = Promise.resolve(fn.apply(this, args)); } catch (e) { return Promise.reject(tagError(e, plugin, name)); }
      return bail ? p.then(onlyTrue, onReject) : p.catch(onReject);
    };
    const entry: Record<string, unknown> = {
      tap: (o: unknown, fn: (...a: unknown[]) => unknown) => {
        if (typeof fn !== 'function') throw new UwError(Codes.PLUGIN_INVALID, `plugin \`${plugin}\` tapped hook ${name} without a function`, { plugin, hook: name });
        if (kind.startsWith('Async')) hook.tapPromise(opts(o), wrapPromise(async (...a: unknown[]) => fn(...a)));
        else hook.tap(opts(o), wrapSync(fn));
      },
    };
    if (kind.startsWith('Async')) {
      entry.tapPromise = (o: unknown, fn: (...a: unknown[]) => Promise<unknown>) => {
        if (typeof fn !== 'function') throw new UwError(Codes.PLUGIN_INVALID, `plugin \`${plugin}\` tapped hook ${name} without a function`, { plugin, hook: name });
        hook.tapPromise(opts(o), wrapPromise(fn));
      };
    }
    facade[name] = Object.freeze(entry);
  }
  Object.freeze(facade);
  return new Proxy(facade, {
    get(target, prop) {
      if (typeof prop === 'string' && !(prop in target) && prop !== 'then' && prop !== 'toJSON') {
        const dym = didYouMean(prop, Object.keys(HOOK_SPECS));
        throw new UwError(Codes.HOOK_UNKNOWN, `plugin \`${plugin}\` uses hook "${prop}", which does not exist in SDK ${SDK_VERSION}${dym.length ? `; did you mean ${dym.join(', ')}?` : ''}; the hooks are: ${Object.keys(HOOK_SPECS).join(', ')}; fix the name, or, for a hook added in a later SDK, require that SDK version in the plugin's sdk range`, { plugin, hook: prop });
      }
      return Reflect.get(target, prop);
    },
  }) as unknown as Hooks;
}

/** A name → implementation map that refuses duplicates, remembering which plugin registered what. */
export class NamedRegistry<T> {
  private readonly map = new Map<string, { impl: T; plugin: string }>();
  constructor(readonly kind: string) {}
  forPlugin(plugin: string) {
    return {
      register: (name: string, impl: T) => {
        const prev = this.map.get(name);
        if (prev) throw new UwError(Codes.REGISTRY_DUPLICATE, `plugin \`${plugin}\` registers ${this.kind} "${name}", already registered by plugin \`${prev.plugin}\``, { plugin });
        this.map.set(name, { impl, plugin });
      },
      get: (name: string) => this.map.get(name)?.impl,
      has: (name: string) => this.map.has(name),
    };
  }
  get(name: string): T | undefined { return this.map.get(name)?.impl; }
  owner(name: string): string | undefined { return this.map.get(name)?.plugin; }
  has(name: string): boolean { return this.map.has(name); }
  entries(): Array<[string, T]> { return [...this.map].map(([k, v]) => [k, v.impl]); }
  get size(): number { return this.map.size; }
}
