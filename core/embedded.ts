// The runtime side of a bundled build (`uwcore build`): the generated entry calls embed() before it imports
// the CLI, so the core finds its plugins, version and worker entry in memory instead of on disk
// (core/plugins.ts, core/config/index.ts, core/version.ts, core/run.ts and core/app.ts read these globals).
// This module must not import the core: it runs first.
import Module, { register } from 'node:module';
import type { Plugin } from '../sdk/index.js';
import type { ManifestEntry } from './plugins.js';

export interface EmbedSpec {
  /** the plugins this build carries, in load order */
  manifest: ManifestEntry[];
  modules: Record<string, Plugin>;
  /** every built-in plugin of the full distribution (for "not in this build") */
  all: string[];
  /** option name or alias → built-in plugin that owns it, for the full distribution */
  allOptions: Record<string, string>;
  version: string;
  /** the bundle's own file: cluster workers are forked from it */
  workerExec: string;
  /** what `import 'uwcore'` and `import 'uwcore/sdk'` give an application or a plugin loaded at runtime */
  runtime: Record<string, unknown>;
  sdk: Record<string, unknown>;
  /** how the build was made (shown by --version) */
  built: { plugins: string[]; at: string };
}

const KEY = Symbol.for('uwcore.embedded.modules');

const HOOKS_SOURCE = `let map = {};
export async function initialize(data) { map = data.map; }
export async function resolve(specifier, context, next) {
  const url = map[specifier];
  if (url !== undefined) return { url, shortCircuit: true };
  return next(specifier, context);
}
`;

function dataUrl(src: string): string {
  return 'data:text/javascript,' + encodeURIComponent(src);
}

/** Make `uwcore` / `uwcore/sdk` resolve to the bundle's own modules, for ESM (resolve hook) and CommonJS (require). */
function installResolution(mods: Record<string, Record<string, unknown>>): void {
  (globalThis as Record<symbol, unknown>)[KEY] = mods;
  const map: Record<string, string> = {};
  for (const [spec, ns] of Object.entries(mods)) {
    const lines = [`const m = globalThis[Symbol.for('uwcore.embedded.modules')][${JSON.stringify(spec)}];`];
    for (const name of Object.keys(ns)) {
      if (name === 'default') lines.push('export default m.default;');
      else if (/^[A-Za-z_$][\w$]*$/.test(name)) lines.push(`export const ${name} = m.${name};`);
    }
    map[spec] = dataUrl(lines.join('\n'));
  }
  try { register(dataUrl(HOOKS_SOURCE), { data: { map } }); } catch { /* no loader hooks: ESM apps need uwcore in node_modules */ }
  const M = Module as unknown as { _load: (request: string, parent: unknown, isMain: boolean) => unknown };
  const orig = M._load;
  M._load = function load(this: unknown, request: string, parent: unknown, isMain: boolean) {
    const m = mods[request];
    if (m !== undefined) return m;
    return orig.call(this, request, parent, isMain);
  };
}

export function embed(spec: EmbedSpec): void {
  const g = globalThis as Record<string, unknown>;
  g.__UWCORE_VERSION__ = spec.version;
  g.__UWCORE_EMBEDDED__ = {
    manifest: spec.manifest,
    modules: spec.modules,
    all: spec.all,
    allOptions: spec.allOptions,
    workerExec: spec.workerExec,
    built: spec.built,
    installResolution: () => installResolution({ uwcore: spec.runtime, 'uwcore/sdk': spec.sdk }),
  };
}

/** Pick the plugin object out of a plugin module (default export, `plugin` export, or a CommonJS default). */
export function pickPlugin(mod: Record<string, unknown>): Plugin {
  const isP = (v: unknown): v is Plugin => typeof v === 'object' && v !== null && typeof (v as Plugin).name === 'string' && typeof (v as Plugin).sdk === 'string';
  const d = mod.default as unknown;
  if (isP(d)) return d;
  if (isP(mod.plugin)) return mod.plugin;
  if (typeof d === 'object' && d !== null && isP((d as { default?: unknown }).default)) return (d as { default: Plugin }).default;
  return d as Plugin;
}
