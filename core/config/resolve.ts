// The option table (core + loaded plugins) and the merge of raw entries into typed, frozen values:
// defaults < ini < environment < command line; multi-valued options accumulate in that order.
import type { OptionSpec } from '../../sdk/index.js';
import { Codes, UwError, usageError } from '../errors.js';
import { coerce, didYouMean } from './values.js';
import type { Entry } from './sources.js';
import { UWSGI_NOT_NEEDED, UWSGI_NOT_OFFERED } from './core-options.js';

export interface TableEntry { spec: OptionSpec; plugin: string }

export class OptionTable {
  readonly byName = new Map<string, TableEntry>();
  readonly aliases = new Map<string, string>();
  readonly shorts: Record<string, string> = {};
  readonly groups = new Map<string, OptionSpec[]>();

  add(plugin: string, specs: OptionSpec[]): void {
    const list: OptionSpec[] = [];
    for (const spec of specs) {
      for (const n of [spec.name, ...(spec.alias ?? [])]) {
        const prev = this.byName.get(n) ?? this.byName.get(this.aliases.get(n) ?? '');
        if (prev) {
          throw new UwError(Codes.PLUGIN_OPTION_COLLISION, `plugin \`${plugin}\` declares option --${n}, already declared by ${prev.plugin === 'core' ? 'the core' : `plugin \`${prev.plugin}\``}; rename the option (prefix it with the plugin name)`, { plugin });
        }
      }
      this.byName.set(spec.name, { spec, plugin });
      for (const a of spec.alias ?? []) this.aliases.set(a, spec.name);
      if (spec.short) this.shorts[spec.short] = spec.name;
      list.push(spec);
    }
    this.groups.set(plugin, [...(this.groups.get(plugin) ?? []), ...list]);
  }

  canonical(key: string): string | undefined {
    if (this.byName.has(key)) return key;
    return this.aliases.get(key);
  }

  get(key: string): TableEntry | undefined {
    const c = this.canonical(key);
    return c === undefined ? undefined : this.byName.get(c);
  }

  isFlag = (key: string): boolean | undefined => {
    const e = this.get(key);
    return e === undefined ? undefined : e.spec.type === 'bool';
  };

  allNames(): string[] { return [...this.byName.keys(), ...this.aliases.keys()]; }
}

export interface ResolveOptions {
  /** names referenced as %(name) in config files: unknown ini keys with these names are placeholders. */
  placeholders: Set<string>;
  warn: (msg: string) => void;
  /** owner of an option among built-ins not loaded (for a better message). */
  hint?: (key: string) => string | undefined;
  /** more option names to suggest (built-in plugins not loaded) */
  extraNames?: string[];
}

const SOURCE_RANK = { ini: 0, env: 1, cli: 2 } as const;

export function resolveOptions(table: OptionTable, entries: Entry[], ro: ResolveOptions): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  const winners = new Map<string, Entry>();
  const warned = new Set<string>();
  // stable sort by source rank: ini, env, cli (each keeps its own order)
  const sorted = entries.map((e, i) => [e, i] as const).sort((a, b) => SOURCE_RANK[a[0].source] - SOURCE_RANK[b[0].source] || a[1] - b[1]).map((x) => x[0]);
  for (const e of sorted) {
    const te = table.get(e.key);
    if (!te) {
      if (e.key in UWSGI_NOT_NEEDED) {
        if (!warned.has(e.key)) ro.warn(`option ${e.key} (${e.where}) is a uWSGI option uwcore does not need: ${UWSGI_NOT_NEEDED[e.key]}; ignored`);
        warned.add(e.key);
        continue;
      }
      if (e.key in UWSGI_NOT_OFFERED) {
        throw usageError(Codes.CONFIG_UNSUPPORTED_OPTION, `option ${e.key} (${e.where}) is a uWSGI option uwcore does not offer: ${UWSGI_NOT_OFFERED[e.key]}`);
      }
      if (e.source === 'ini' && ro.placeholders.has(e.key)) continue;
      if (e.key === 'set-placeholder' || e.key === 'set-ph') continue;
      if (e.source === 'env') {
        if (!warned.has(e.key)) ro.warn(`environment variable UWCORE_${e.key.toUpperCase().replace(/-/g, '_')} names no option; ignored`);
        warned.add(e.key);
        continue;
      }
      const hint = ro.hint?.(e.key);
      const dym = didYouMean(e.key, [...table.allNames(), ...(ro.extraNames ?? [])]);
      const flag = e.source === 'cli' ? `--${e.key}` : e.key;
      throw usageError(Codes.CONFIG_UNKNOWN_OPTION, `unknown option ${flag} (${e.where})${hint ? `; ${hint}` : ''}${dym.length ? `; did you mean ${dym.map((d) => (e.source === 'cli' ? `--${d}` : d)).join(', ')}?` : ''}; see uwcore --help`);
    }
    const { spec, plugin } = te;
    const raws: Array<string | true> = spec.name === 'plugins' && e.value !== true ? e.value.split(',').map((s) => s.trim()).filter(Boolean) : [e.value];
    for (const raw of raws) {
      let v: unknown;
      try {
        v = coerce(spec, raw, e.baseDir, plugin === 'core' ? undefined : plugin);
      } catch (err) {
        if (err instanceof UwError && e.source !== 'cli') err.message += ` (${e.where})`;
        throw err;
      }
      if (spec.multiple) {
        const list = (values[spec.name] as unknown[] | undefined) ?? [];
        list.push(v);
        values[spec.name] = list;
      } else {
        values[spec.name] = v;
        winners.set(spec.name, e);
      }
    }
  }
  for (const [, { spec }] of table.byName) {
    if (values[spec.name] === undefined) {
      values[spec.name] = spec.multiple ? (Array.isArray(spec.default) ? [...spec.default] : []) : spec.default;
    }
  }
  return values;
}

export function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o as object)) deepFreeze(v);
  }
  return o;
}
