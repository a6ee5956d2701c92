// Configuration in two passes: read the raw entries (ini, environment, argv), find the plugins they need
// (named with --plugins, or built-ins owning an option that is used), load those, then type every value
// against the full option table.
import path from 'node:path';
import type { OptionSpec } from '../../sdk/index.js';
import { Codes, UwError, usageError } from '../errors.js';
import { builtinManifest, builtinOwner, builtinProvider, loadPlugins, type LoadedPlugin } from '../plugins.js';
import { parseRule, ROUTE_OPTIONS, type RuleSource } from '../routing.js';
import { CORE_OPTIONS, UWSGI_LANGUAGE_PLUGINS } from './core-options.js';
import { OptionTable, resolveOptions } from './resolve.js';
import { expandPlaceholders, readArgv, readEnv, readIni, type ArgvResult, type Entry } from './sources.js';

export interface LoadedConfig {
  options: Record<string, unknown>;
  plugins: LoadedPlugin[];
  table: OptionTable;
  /** plugin name → its option names */
  pluginOptions: Map<string, string[]>;
  cli: ArgvResult;
  warnings: string[];
  iniFiles: string[];
}

const APP_EXT = /\.(m?js|cjs|ts|mts)$/i;

function prelimTable(): OptionTable {
  const t = new OptionTable();
  t.add('core', CORE_OPTIONS);
  for (const m of builtinManifest()) t.add(m.name, m.options as OptionSpec[]);
  return t;
}

/** Names of the plugins asked for in entries (`plugins = a,b`), without uWSGI's language plugins. */
function requestedPlugins(entries: Entry[], warnings: string[]): string[] {
  const out: string[] = [];
  for (const e of entries) {
    if (e.key !== 'plugins' && e.key !== 'plugin' && e.key !== 'need-plugin') continue;
    if (e.value === true) throw usageError(Codes.CONFIG_BAD_VALUE, `option --${e.key} needs a value: a comma-separated list of plugin names`);
    for (const n of e.value.split(',').map((s) => s.trim()).filter(Boolean)) {
      if (UWSGI_LANGUAGE_PLUGINS.test(n)) {
        warnings.push(`plugin ${n} (${e.where}) is a uWSGI plugin uwcore does not need (JavaScript apps run natively, routing and transformations are built in); ignored`);
        continue;
      }
      if (!out.includes(n)) out.push(n);
    }
  }
  return out;
}

export async function loadConfig(argv: string[], opts: { env?: NodeJS.ProcessEnv; allPlugins?: boolean; onlyPlugin?: string } = {}): Promise<LoadedConfig> {
  const warnings: string[] = [];
  const pre = prelimTable();
  const cli1 = readArgv(argv, pre.isFlag, pre.shorts);
  const cwd = process.cwd();

  // positionals: ini files and application files
  const iniSpecs: string[] = [];
  const extraCli: Entry[] = [];
  for (const p of cli1.positionals) {
    if (/\.ini(:[^/]*)?$/i.test(p)) iniSpecs.push(p);
    else if (APP_EXT.test(p)) extraCli.push({ key: 'app', value: p, source: 'cli', baseDir: cwd, where: 'command line' });
    else throw usageError(Codes.CONFIG_UNKNOWN_OPTION, `unexpected argument ${JSON.stringify(p)}: give options as --name value, config files as FILE.ini, the application as FILE.js`);
  }
  const envEntries = readEnv(opts.env ?? process.env);
  for (const e of [...envEntries, ...cli1.entries]) {
    if (e.key === 'ini') {
      if (e.value === true) throw usageError(Codes.CONFIG_BAD_VALUE, 'option --ini needs a value: FILE[:SECTION]');
      iniSpecs.push(e.value);
    }
  }
  const iniEntries: Entry[] = [];
  const iniFiles: string[] = [];
  const referenced = new Set<string>();
  for (const spec of iniSpecs) {
    const r = readIni(spec, cwd);
    iniFiles.push(r.file);
    // nested `ini = other.ini` lines are read in place, once
    const expanded: Entry[] = [];
    for (const e of r.entries) {
      if (e.key === 'ini' && e.value !== true) {
        const nested = readIni(path.resolve(path.dirname(r.file), e.value));
        iniFiles.push(nested.file);
        expanded.push(...nested.entries);
      } else expanded.push(e);
    }
    for (const n of expandPlaceholders(expanded, (k) => pre.get(k) !== undefined)) referenced.add(n);
    iniEntries.push(...expanded.filter((e) => e.key !== 'ini'));
  }
  // $(ENV) in command-line values too
  expandPlaceholders(cli1.entries, () => true);

  // which plugins
  let all: Entry[] = [...iniEntries, ...envEntries.filter((e) => e.key !== 'ini'), ...cli1.entries.filter((e) => e.key !== 'ini'), ...extraCli];
  const names = requestedPlugins(all, warnings);
  for (const e of all) {
    if (pre.get(e.key)?.plugin === 'core') continue;
    const owner = builtinOwner(e.key);
    if (owner && !names.includes(owner)) names.push(owner);
  }
  // built-ins providing the actions and conditions route rules name (a rule that does not parse is reported later)
  for (const e of all) {
    const key = pre.canonical(e.key);
    if (key === undefined || !ROUTE_OPTIONS.has(key) || e.value === true) continue;
    let p: ReturnType<typeof parseRule>;
    try { p = parseRule(key, e.value); } catch { continue; }
    const need = [p.action && builtinProvider('routerActions', p.action), p.condName && builtinProvider('routeConditions', p.condName)];
    for (const n of need) if (n && !names.includes(n)) names.push(n);
  }
  if (opts.allPlugins) for (const m of builtinManifest()) if (!names.includes(m.name)) names.push(m.name);
  if (opts.onlyPlugin && !names.includes(opts.onlyPlugin) && opts.onlyPlugin !== 'core') names.push(opts.onlyPlugin);
  const pluginsDirs: string[] = [];
  for (const e of all) {
    if ((e.key === 'plugins-dir' || e.key === 'plugin-dir') && e.value !== true) pluginsDirs.push(path.resolve(e.baseDir, e.value));
  }
  const plugins = await loadPlugins(names, pluginsDirs, cwd);

  // the full option table
  const table = new OptionTable();
  table.add('core', CORE_OPTIONS);
  const pluginOptions = new Map<string, string[]>();
  // built-ins first: when a third-party option collides with a built-in one, the message blames the newcomer
  for (const lp of [...plugins.filter((p) => p.origin === 'builtin'), ...plugins.filter((p) => p.origin !== 'builtin')]) {
    const specs = lp.plugin.options ?? [];
    table.add(lp.plugin.name, specs);
    pluginOptions.set(lp.plugin.name, specs.map((s) => s.name));
  }
  let cli = cli1;
  if (plugins.some((p) => p.origin !== 'builtin')) {
    cli = readArgv(argv, table.isFlag, table.shorts);
    expandPlaceholders(cli.entries, () => true);
    all = [...iniEntries, ...envEntries.filter((e) => e.key !== 'ini'), ...cli.entries.filter((e) => e.key !== 'ini'), ...extraCli];
  }

  // relative paths follow --chdir when it is given (as uWSGI resolves them after chdir)
  const chdirEntry = [...all].reverse().find((e) => table.canonical(e.key) === 'chdir' && e.value !== true);
  if (chdirEntry) {
    const dir = path.resolve(chdirEntry.baseDir, chdirEntry.value as string);
    for (const e of all) if (e !== chdirEntry && table.canonical(e.key) !== 'plugins-dir') e.baseDir = dir;
  }

  const options = resolveOptions(table, all, {
    placeholders: referenced,
    extraNames: builtinManifest().flatMap((m) => m.options.flatMap((o) => [o.name, ...(o.alias ?? [])])),
    warn: (m) => warnings.push(m),
    hint: (key) => {
      const emb = (globalThis as { __UWCORE_EMBEDDED__?: { allOptions?: Record<string, string>; manifest: Array<{ name: string }> } }).__UWCORE_EMBEDDED__;
      const owner = emb?.allOptions?.[key];
      if (owner && !emb!.manifest.some((m) => m.name === owner)) return `plugin \`${owner}\` is not in this build (built with: ${emb!.manifest.map((m) => m.name).join(', ')})`;
      return undefined;
    },
  });
  options['__routes'] = routeEntries(table, all);
  options['__plugins'] = plugins.map((p) => p.plugin.name);
  options['__ini'] = iniFiles;
  return { options, plugins, table, pluginOptions, cli, warnings, iniFiles };
}

const RANK = { ini: 0, env: 1, cli: 2 } as const;

/** The routing rules in the order written, across options: ini files, then environment, then command line. */
function routeEntries(table: OptionTable, all: Entry[]): RuleSource[] {
  const out: RuleSource[] = [];
  const sorted = all.map((e, i) => [e, i] as const).sort((a, b) => RANK[a[0].source] - RANK[b[0].source] || a[1] - b[1]);
  for (const [e] of sorted) {
    const key = table.canonical(e.key);
    if (key === undefined || !ROUTE_OPTIONS.has(key)) continue;
    out.push({ option: key, value: e.value === true ? '' : e.value, where: e.where });
  }
  return out;
}

export { UwError };
