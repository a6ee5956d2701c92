// Finding and validating plugins: built-in → --plugins-dir → npm (uwcore-plugin-<name>, @uwcore/plugin-<name>)
// → a path. Built-ins load through the same import-and-validate path as third-party plugins; the core only
// reads the built-ins' manifest (names and option names) so that unused plugins are never imported.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { pathToFileURL, fileURLToPath } from 'node:url';
import semver from 'semver';
import { SDK_VERSION, isPlugin, type OptionSpec, type Plugin } from '../sdk/index.js';
import { Codes, UwError } from './errors.js';
import { installRuntimeResolution } from './app.js';

export interface ManifestEntry {
  name: string;
  version: string;
  description: string;
  /** path relative to the manifest's folder */
  entry: string;
  options: Array<Pick<OptionSpec, 'name' | 'type' | 'alias' | 'short' | 'multiple'>>;
  /** router actions / route conditions the plugin registers (Plugin.provides) */
  provides?: { routerActions?: string[]; routeConditions?: string[] };
}

export type Origin = 'builtin' | 'plugins-dir' | 'npm' | 'path';

export interface LoadedPlugin {
  plugin: Plugin;
  origin: Origin;
  /** absolute file the plugin was imported from (workers import the same file). */
  file: string;
  requested: string;
}

/** Set by a bundled build (`uwcore build`): the built-ins it carries, already imported. */
interface Embedded { manifest: ManifestEntry[]; modules: Record<string, Plugin>; all: string[] }
function embedded(): Embedded | undefined {
  return (globalThis as { __UWCORE_EMBEDDED__?: Embedded }).__UWCORE_EMBEDDED__;
}

const here = path.dirname(fileURLToPath(import.meta.url));
export const PLUGINS_ROOT = path.resolve(here, '../plugins');
let manifestCache: ManifestEntry[] | null = null;

export function builtinManifest(): ManifestEntry[] {
  if (manifestCache) return manifestCache;
  const emb = embedded();
  if (emb) return (manifestCache = emb.manifest);
  const file = path.join(PLUGINS_ROOT, 'manifest.json');
  try {
    manifestCache = JSON.parse(fs.readFileSync(file, 'utf8')) as ManifestEntry[];
  } catch {
    throw new UwError(Codes.INTERNAL, `the built-in plugin manifest ${file} is missing; run npm run build`);
  }
  return manifestCache;
}

/** Built-in plugin names known to the full distribution but absent from a bundled build. */
export function missingFromBuild(name: string): string[] | null {
  const emb = embedded();
  if (!emb) return null;
  if (emb.all.includes(name) && !emb.manifest.some((m) => m.name === name)) return emb.manifest.map((m) => m.name);
  return null;
}

/** The built-in plugin that owns option `key` (name or alias), if any. */
export function builtinOwner(key: string): string | undefined {
  for (const m of builtinManifest()) {
    for (const o of m.options) if (o.name === key || o.alias?.includes(key)) return m.name;
  }
  return undefined;
}

/** The built-in plugin that provides router action (or route condition) `name`, if any. */
export function builtinProvider(kind: 'routerActions' | 'routeConditions', name: string): string | undefined {
  for (const m of builtinManifest()) if (m.provides?.[kind]?.includes(name)) return m.name;
  return undefined;
}

const NAME_RE = /^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$/;

function tryFile(...candidates: string[]): string | undefined {
  for (const c of candidates) {
    try { if (fs.statSync(c).isFile()) return c; } catch { /* next */ }
  }
  return undefined;
}

function packageEntry(dir: string): string | undefined {
  try {
    const req = createRequire(path.join(dir, 'noop.js'));
    return req.resolve(dir);
  } catch {
    return tryFile(path.join(dir, 'index.js'), path.join(dir, 'dist/index.js'));
  }
}

/** Resolve a plugin name to a file, in uwcore's order. Returns the paths tried when nothing matches. */
export function resolvePlugin(name: string, pluginsDirs: string[], baseDir: string): { file: string; origin: Origin } | { tried: string[] } {
  const tried: string[] = [];
  const emb = embedded();
  if (!name.includes('/') && !name.startsWith('.')) {
    if (emb?.modules[name]) return { file: `embedded:${name}`, origin: 'builtin' };
    const m = builtinManifest().find((x) => x.name === name);
    if (m && !emb) return { file: path.join(PLUGINS_ROOT, m.entry), origin: 'builtin' };
    tried.push(`built-in plugin "${name}"`);
    for (const dir of pluginsDirs) {
      const candidates = [path.join(dir, name), path.join(dir, `uwcore-plugin-${name}`)];
      for (const c of candidates) {
        tried.push(c);
        let f: string | undefined;
        try { if (fs.statSync(c).isDirectory()) f = packageEntry(c); } catch { /* not there */ }
        if (f) return { file: f, origin: 'plugins-dir' };
      }
      const f = tryFile(path.join(dir, `${name}.js`), path.join(dir, `${name}.mjs`), path.join(dir, `uwcore-plugin-${name}.js`));
      tried.push(path.join(dir, `${name}.js`));
      if (f) return { file: f, origin: 'plugins-dir' };
    }
    const req = createRequire(path.join(baseDir, 'noop.js'));
    for (const pkg of [`uwcore-plugin-${name}`, `@uwcore/plugin-${name}`]) {
      tried.push(`npm package ${pkg}`);
      try { return { file: req.resolve(pkg), origin: 'npm' }; } catch { /* next */ }
    }
  }
  if (name.includes('/') || name.startsWith('.')) {
    const abs = path.resolve(baseDir, name);
    tried.push(abs);
    let f: string | undefined;
    try { f = fs.statSync(abs).isDirectory() ? packageEntry(abs) : abs; } catch { /* missing */ }
    if (f) return { file: f, origin: 'path' };
  }
  return { tried };
}

/** Import a plugin file and check its shape, name and SDK range. */
export async function importPlugin(file: string, origin: Origin, requested: string): Promise<LoadedPlugin> {
  let mod: Record<string, unknown>;
  const emb = embedded();
  if (file.startsWith('embedded:') && emb) {
    mod = { default: emb.modules[file.slice(9)] };
  } else {
    // a third-party plugin's `import 'uwcore/sdk'` resolves to this server's SDK (one HttpError, one SDK_VERSION)
    if (origin !== 'builtin') installRuntimeResolution();
    try {
      mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
    } catch (e) {
      throw new UwError(Codes.PLUGIN_LOAD, `plugin \`${requested}\` (${file}) failed to load: ${(e as Error).message}`, { plugin: requested, cause: e });
    }
  }
  let p = mod.default as unknown;
  if (!isPlugin(p) && isPlugin(mod.plugin)) p = mod.plugin;
  if (!isPlugin(p) && typeof p === 'object' && p !== null && isPlugin((p as { default?: unknown }).default)) p = (p as { default: unknown }).default;
  return { plugin: checkPlugin(p, file, origin, requested), origin, file, requested };
}

/** Check a plugin object: shape, name, version, SDK range, options. Returns it, or throws one line naming the rule and the fix. */
export function checkPlugin(p: unknown, file: string, origin: Origin, requested: string): Plugin {
  if (!isPlugin(p)) {
    throw new UwError(Codes.PLUGIN_INVALID, `${file} is not a uwcore plugin: its default export must be definePlugin({ name, version, sdk, ... })`, { plugin: requested });
  }
  const plugin = p as Plugin;
  if (!NAME_RE.test(plugin.name)) {
    throw new UwError(Codes.PLUGIN_INVALID, `plugin name "${plugin.name}" (${file}) is malformed: use lower-case kebab-case letters and digits, e.g. "my-plugin"`, { plugin: plugin.name });
  }
  if (origin !== 'path' && plugin.name !== requested) {
    throw new UwError(Codes.PLUGIN_INVALID, `plugin loaded as \`${requested}\` calls itself \`${plugin.name}\` (${file}); its name must match the name it is loaded by`, { plugin: plugin.name });
  }
  if (typeof plugin.version !== 'string' || !semver.valid(plugin.version)) {
    throw new UwError(Codes.PLUGIN_INVALID, `plugin \`${plugin.name}\` has no valid semver version (got ${JSON.stringify(plugin.version)}); set version: "1.0.0"`, { plugin: plugin.name });
  }
  if (!semver.validRange(plugin.sdk)) {
    throw new UwError(Codes.PLUGIN_INVALID, `plugin \`${plugin.name}\` declares sdk ${JSON.stringify(plugin.sdk)}, which is not a semver range; use e.g. sdk: "^1.0.0"`, { plugin: plugin.name });
  }
  if (!semver.satisfies(SDK_VERSION, plugin.sdk, { includePrerelease: semver.prerelease(SDK_VERSION) !== null })) {
    // the fix depends on which side is older: a newer uwcore, or a plugin release for this SDK
    const fix = semver.ltr(SDK_VERSION, plugin.sdk)
      ? `upgrade uwcore to one that provides SDK ${plugin.sdk}, or install a version of the plugin built for SDK ${semver.major(SDK_VERSION)}.x`
      : `install a version of the plugin built for SDK ${semver.major(SDK_VERSION)}.x`;
    throw new UwError(Codes.SDK_MISMATCH, `plugin \`${plugin.name}\` ${plugin.version} needs uwcore SDK ${plugin.sdk}, but this uwcore provides SDK ${SDK_VERSION}; ${fix}`, { plugin: plugin.name });
  }
  if (plugin.setup !== undefined && typeof plugin.setup !== 'function') {
    throw new UwError(Codes.PLUGIN_INVALID, `plugin \`${plugin.name}\`: setup must be a function`, { plugin: plugin.name });
  }
  for (const o of plugin.options ?? []) {
    if (!o || typeof o.name !== 'string' || !NAME_RE.test(o.name) || typeof o.type !== 'string') {
      throw new UwError(Codes.PLUGIN_INVALID, `plugin \`${plugin.name}\` declares a malformed option ${JSON.stringify(o?.name)}: options need a kebab-case name, a type and help`, { plugin: plugin.name });
    }
  }
  return plugin;
}

/**
 * Load the named plugins and everything they require, validated and in dependency order
 * (requirements first; otherwise the order asked for).
 */
export async function loadPlugins(names: string[], pluginsDirs: string[], baseDir: string): Promise<LoadedPlugin[]> {
  const loaded = new Map<string, LoadedPlugin>();
  const order: string[] = [];
  const queue = [...names];
  while (queue.length) {
    const name = queue.shift()!;
    if (loaded.has(name)) continue;
    const notIn = missingFromBuild(name);
    if (notIn) throw new UwError(Codes.PLUGIN_NOT_IN_BUILD, `plugin \`${name}\` is not in this build (built with: ${notIn.join(', ')}); rebuild with uwcore build --plugins ${[...notIn, name].join(',')}`, { plugin: name });
    const r = resolvePlugin(name, pluginsDirs, baseDir);
    if ('tried' in r) {
      throw new UwError(Codes.PLUGIN_NOT_FOUND, `plugin \`${name}\` not found (tried: ${r.tried.join('; ')}); install it with npm install uwcore-plugin-${name}, or pass --plugins-dir DIR or a path`, { plugin: name });
    }
    const lp = await importPlugin(r.file, r.origin, name);
    const key = lp.plugin.name;
    const dup = loaded.get(key);
    if (dup) {
      if (dup.file === lp.file) continue;
      throw new UwError(Codes.PLUGIN_DUPLICATE, `two plugins are named \`${key}\`: ${dup.file} and ${lp.file}; load only one`, { plugin: key });
    }
    loaded.set(key, lp);
    if (name !== key) loaded.set(name, lp);
    order.push(key);
    for (const req of lp.plugin.requires ?? []) {
      if (typeof req !== 'string') throw new UwError(Codes.PLUGIN_INVALID, `plugin \`${key}\`: requires must list plugin names`, { plugin: key });
      if (!loaded.has(req)) queue.push(req);
    }
  }
  // topological sort, stable with respect to `order`
  const out: LoadedPlugin[] = [];
  const state = new Map<string, 1 | 2>();
  const visit = (n: string, chain: string[]) => {
    const s = state.get(n);
    if (s === 2) return;
    if (s === 1) throw new UwError(Codes.PLUGIN_CYCLE, `plugins require each other in a cycle: ${[...chain, n].join(' → ')}; remove one of the requires`, { plugin: n });
    state.set(n, 1);
    const lp = loaded.get(n)!;
    for (const r of lp.plugin.requires ?? []) {
      if (!loaded.has(r)) throw new UwError(Codes.PLUGIN_REQUIRES, `plugin \`${n}\` requires plugin \`${r}\`, which is not loaded`, { plugin: n });
      visit(loaded.get(r)!.plugin.name, [...chain, n]);
    }
    state.set(n, 2);
    out.push(lp);
  };
  for (const n of order) visit(n, []);
  return out;
}
