// Raw option entries from the three sources, in order: ini files, UWCORE_* environment, command line.
// Nothing is typed here; resolve.ts coerces entries once the option table (core + plugins) is known.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Codes, UwError, usageError } from '../errors.js';

export interface Entry {
  key: string;
  value: string | true;
  source: 'ini' | 'env' | 'cli';
  /** where relative paths resolve (the ini's directory, else the working directory). */
  baseDir: string;
  /** file:line or "command line" / "environment". */
  where: string;
}

/** Short one-letter options → long names (uWSGI's). */
export type ShortMap = Record<string, string>;

export interface ArgvResult {
  entries: Entry[];
  positionals: string[];
  help: string | null | undefined; // undefined = not asked; null = all; string = one plugin
  version: boolean;
  listPlugins: boolean;
}

/**
 * Tokenise argv: `--name=value`, `--name value`, `--flag`, `-p 2`, `-M`. Whether an option takes a value
 * comes from `isFlag` (bool options never consume the next token).
 */
export function readArgv(argv: string[], isFlag: (name: string) => boolean | undefined, shorts: ShortMap): ArgvResult {
  const res: ArgvResult = { entries: [], positionals: [], help: undefined, version: false, listPlugins: false };
  const cwd = process.cwd();
  for (let i = 0; i < argv.length; i++) {
    const tok = argv[i]!;
    if (tok === '--') { res.positionals.push(...argv.slice(i + 1)); break; }
    if (tok === '--help' || tok === '-h') {
      const next = argv[i + 1];
      if (next !== undefined && !next.startsWith('-')) { res.help = next; i++; } else res.help = null;
      continue;
    }
    if (tok.startsWith('--help=')) { res.help = tok.slice(7); continue; }
    if (tok === '--version' || tok === '-V') { res.version = true; continue; }
    if (tok === '--list-plugins' || tok === '--plugins-list') { res.listPlugins = true; continue; }
    let name: string | undefined;
    let value: string | true | undefined;
    if (tok.startsWith('--')) {
      const eq = tok.indexOf('=');
      name = eq >= 0 ? tok.slice(2, eq) : tok.slice(2);
      if (eq >= 0) value = tok.slice(eq + 1);
    } else if (tok.length >= 2 && tok[0] === '-' && !/^-\d/.test(tok)) {
      const long = shorts[tok[1]!];
      if (!long) throw usageError(Codes.CONFIG_UNKNOWN_OPTION, `unknown option ${tok}; see uwcore --help`);
      name = long;
      if (tok.length > 2) value = tok.slice(2);
    } else {
      res.positionals.push(tok);
      continue;
    }
    if (name === '') throw usageError(Codes.CONFIG_UNKNOWN_OPTION, `malformed option ${tok}`);
    if (value === undefined) {
      const flag = isFlag(name);
      const next = argv[i + 1];
      if (flag === true) value = true;
      else if (next !== undefined && (flag === false || !next.startsWith('-') || /^-\d/.test(next))) { value = next; i++; }
      else value = true;
    }
    res.entries.push({ key: name, value, source: 'cli', baseDir: cwd, where: 'command line' });
  }
  return res;
}

/** UWCORE_PROCESSES=2 → processes=2 (upper-case, `_` → `-`). */
export function readEnv(env: NodeJS.ProcessEnv): Entry[] {
  const out: Entry[] = [];
  const cwd = process.cwd();
  for (const [k, v] of Object.entries(env)) {
    if (!k.startsWith('UWCORE_') || v === undefined) continue;
    const key = k.slice(7).toLowerCase().replace(/_/g, '-');
    if (key === '' || key.startsWith('-')) continue; // internal variables
    out.push({ key, value: v, source: 'env', baseDir: cwd, where: `environment ${k}` });
  }
  return out;
}

export interface IniRead { entries: Entry[]; file: string; section: string; found: boolean }

/** `file.ini:section` → [file, section|undefined]. A Windows-less world: the last colon after the extension. */
export function splitIniSpec(spec: string): [string, string | undefined] {
  const m = /^(.*?\.ini):([^/\\]*)$/i.exec(spec);
  if (m) return [m[1]!, m[2] || undefined];
  return [spec, undefined];
}

/** Magic variables of a config file (uWSGI's %d, %p, %s, %n, %e, %c, %v, %h, %k, %%). */
function magic(file: string): Record<string, string> {
  const abs = path.resolve(file);
  const dir = path.dirname(abs);
  const base = path.basename(abs);
  const ext = path.extname(base);
  return {
    d: dir.endsWith('/') ? dir : dir + '/', p: abs, s: base, n: base.slice(0, base.length - ext.length), e: ext.replace(/^\./, ''),
    c: path.basename(dir), v: process.cwd(), h: os.hostname(), k: String(os.cpus().length), '%': '%',
  };
}

/**
 * Read one section of a uWSGI-style ini file, keeping every line in order (the order of `route*` rules across
 * keys matters, and errors name the line). uWSGI's syntax: `;`/`#` comments at line start, `key = value`
 * split at the first `=`, a bare key is a flag, no quotes and no inline comments.
 */
export function readIni(spec: string, baseCwd = process.cwd()): IniRead {
  const [fileRaw, sectionWanted] = splitIniSpec(spec);
  const file = path.resolve(baseCwd, fileRaw);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new UwError(Codes.CONFIG_FILE, `cannot read config file ${file}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`, { exitCode: 1 });
  }
  const mg = magic(file);
  const dir = path.dirname(file);
  const sections = new Map<string, Entry[]>();
  let current: Entry[] | null = null;
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '' || line.startsWith(';') || line.startsWith('#')) continue;
    const sec = /^\[([^\]]*)\]$/.exec(line);
    if (sec) {
      const name = sec[1]!.trim();
      current = sections.get(name) ?? [];
      sections.set(name, current);
      continue;
    }
    if (!current) continue; // keys before any section are ignored, as uWSGI does
    const eq = line.indexOf('=');
    const key = (eq >= 0 ? line.slice(0, eq) : line).trim();
    const raw = eq >= 0 ? line.slice(eq + 1).trim() : true;
    const value = raw === true ? true : raw.replace(/%([dpsnecvhk%])/g, (_m, c: string) => mg[c] ?? _m);
    current.push({ key, value, source: 'ini', baseDir: dir, where: `${file}:${i + 1}` });
  }
  let section = sectionWanted;
  if (section === undefined) section = sections.has('uwcore') ? 'uwcore' : 'uwsgi';
  const entries = sections.get(section);
  if (!entries) {
    const have = [...sections.keys()];
    throw new UwError(Codes.CONFIG_FILE, `config file ${file} has no [${section}] section${have.length ? ` (it has: ${have.map((s) => `[${s}]`).join(', ')}; pick one with --ini ${fileRaw}:SECTION)` : ''}`, { exitCode: 1 });
  }
  return { entries, file, section, found: true };
}

/**
 * Expand `$(ENV)` and `%(name)` in every entry. A `%(name)` refers to a placeholder (a key that is not an option,
 * or one declared with set-placeholder) or to an option's value. Undefined references are left as written.
 * Returns the names referenced, so unknown keys that serve as placeholders are not errors.
 */
export function expandPlaceholders(entries: Entry[], isOption: (key: string) => boolean): Set<string> {
  const vars = new Map<string, string>();
  for (const e of entries) {
    if (e.value === true) continue;
    if (e.key === 'set-placeholder' || e.key === 'set-ph') {
      const eq = e.value.indexOf('=');
      if (eq > 0) vars.set(e.value.slice(0, eq).trim(), e.value.slice(eq + 1).trim());
    } else {
      vars.set(e.key, e.value);
    }
  }
  const referenced = new Set<string>();
  const expand = (s: string, depth: number): string => {
    let out = s.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, name: string) => process.env[name] ?? m);
    out = out.replace(/%\(([^)]+)\)/g, (m, name: string) => {
      const key = name.trim();
      referenced.add(key);
      const v = vars.get(key);
      if (v === undefined || depth > 8) return m;
      return expand(v, depth + 1);
    });
    return out;
  };
  for (const e of entries) {
    if (e.value !== true && (e.value.includes('%(') || e.value.includes('$('))) e.value = expand(e.value, 0);
  }
  void isOption;
  return referenced;
}
