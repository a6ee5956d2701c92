// Coercion of raw option strings into typed values, address parsing, and "did you mean".
import path from 'node:path';
import type { Address, OptionSpec } from '../../sdk/index.js';
import { Codes, usageError } from '../errors.js';

const TRUE = new Set(['', 'true', 'yes', 'on', '1', 'y']);
const FALSE = new Set(['false', 'no', 'off', '0', 'n']);

function bad(spec: OptionSpec, raw: string, allowed: string, plugin?: string): never {
  throw usageError(Codes.CONFIG_BAD_VALUE, `invalid value ${JSON.stringify(raw)} for option --${spec.name}: ${allowed}`, plugin);
}

function range(spec: OptionSpec, n: number, raw: string, unit = '', plugin?: string): number {
  if (spec.min !== undefined && n < spec.min) bad(spec, raw, `must be at least ${spec.min}${unit}`, plugin);
  if (spec.max !== undefined && n > spec.max) bad(spec, raw, `must be at most ${spec.max}${unit}`, plugin);
  return n;
}

/** `:8000`, `8000`, `0.0.0.0:8000`, `[::1]:8000`, `localhost:0`; anything without a colon that is not a number is a UNIX path. */
export function parseAddress(raw: string, baseDir?: string): Address | null {
  const v = raw.trim();
  if (v === '') return null;
  if (/^\d+$/.test(v)) {
    const port = Number(v);
    return port <= 65535 ? { kind: 'tcp', host: '0.0.0.0', port, raw: v } : null;
  }
  if (v.startsWith('@')) return { kind: 'unix', path: '\0' + v.slice(1), raw: v };
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\[\]\s]*)):(\d+)$/.exec(v);
  if (m) {
    const port = Number(m[3]);
    if (port > 65535) return null;
    const host = m[1] ?? (m[2] === '' || m[2] === undefined ? '0.0.0.0' : m[2]);
    return { kind: 'tcp', host, port, raw: v };
  }
  if (v.includes(':') && !v.includes('/')) return null;
  return { kind: 'unix', path: path.resolve(baseDir ?? process.cwd(), v), raw: v };
}

export function parseSeconds(raw: string): number | null {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/i.exec(raw.trim());
  if (!m) return null;
  const n = Number(m[1]);
  const u = (m[2] ?? 's').toLowerCase();
  return u === 'ms' ? n / 1000 : u === 'm' ? n * 60 : u === 'h' ? n * 3600 : n;
}

export function parseSize(raw: string): number | null {
  const m = /^(\d+)\s*([kmgt]?)(?:i?b)?$/i.exec(raw.trim());
  if (!m) return null;
  const mult: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };
  return Number(m[1]) * (mult[(m[2] ?? '').toLowerCase()] ?? 1);
}

/** Coerce one raw value (a string, or true for a bare flag) to the option's type. */
export function coerce(spec: OptionSpec, raw: string | true, baseDir: string, plugin?: string): unknown {
  if (spec.type === 'bool') {
    if (raw === true) return true;
    const v = raw.trim().toLowerCase();
    if (TRUE.has(v)) return true;
    if (FALSE.has(v)) return false;
    return bad(spec, raw, 'expected true or false', plugin);
  }
  if (raw === true) return bad(spec, '', `a value is required${spec.arg ? ` (${spec.arg})` : ''}`, plugin);
  const s = raw.trim();
  switch (spec.type) {
    case 'int': {
      if (!/^[-+]?\d+$/.test(s)) bad(spec, raw, `expected a whole number${spec.min !== undefined ? ` >= ${spec.min}` : ''}`, plugin);
      return range(spec, Number(s), raw, '', plugin);
    }
    case 'seconds': {
      const n = parseSeconds(s);
      if (n === null) bad(spec, raw, 'expected seconds (e.g. 30, 30s, 500ms, 5m)', plugin);
      return range(spec, n, raw, ' seconds', plugin);
    }
    case 'size': {
      const n = parseSize(s);
      if (n === null) bad(spec, raw, 'expected a size in bytes (e.g. 65536, 64k, 10m)', plugin);
      return range(spec, n, raw, ' bytes', plugin);
    }
    case 'addr': {
      const a = parseAddress(s, baseDir);
      if (!a) bad(spec, raw, 'expected an address: :PORT, PORT, HOST:PORT, [IPv6]:PORT (port 0-65535) or a UNIX socket path', plugin);
      return a;
    }
    case 'path':
      if (s === '') bad(spec, raw, 'expected a path', plugin);
      return path.resolve(baseDir, s);
    case 'string':
    default:
      if (spec.choices && !spec.choices.includes(s)) bad(spec, raw, `expected one of ${spec.choices.join(', ')}`, plugin);
      return s;
  }
}

function distance(a: string, b: string): number {
  const dp: number[] = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0]!;
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j]!;
      dp[j] = Math.min(dp[j]! + 1, dp[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length]!;
}

/** The closest known names to `name`, best first. */
export function didYouMean(name: string, candidates: Iterable<string>): string[] {
  const scored: Array<[number, string]> = [];
  for (const c of candidates) {
    const d = distance(name, c);
    const limit = Math.max(2, Math.floor(name.length / 3));
    if (d <= limit || (name.length > 3 && (c.startsWith(name) || c.includes(name)))) scored.push([d, c]);
  }
  scored.sort((x, y) => x[0] - y[0] || x[1].localeCompare(y[1]));
  return scored.slice(0, 3).map((x) => x[1]);
}
