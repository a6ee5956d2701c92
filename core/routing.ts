// The internal routing engine (route, route-run, route-if …): rules compiled once at startup, run in order per
// request; actions and conditions come from the registries plugins fill (router-basic, router-chunked,
// router-last, third-party plugins). `goto` and `route-label` are the engine's own. See docs/routing.md.
import v8 from 'node:v8';
import type {
  RequestContext, RouteCondition, RouteConditionSpec, RouteResult, RouteRule, RouteTemplate, RouteTest, RouterAction,
} from '../sdk/index.js';
import { Codes, UwError, tagError } from './errors.js';
import type { Ctx } from './context.js';
import type { NamedRegistry } from './hooks.js';
import { builtinManifest } from './plugins.js';
import type { RouterActionFactory, Logger } from '../sdk/index.js';

export interface Router {
  /** Run the rules for one request: a string when every action answered synchronously (the usual case). */
  run(ctx: Ctx): RouteResult | Promise<RouteResult>;
  readonly size: number;
}

export interface RuleSource { option: string; value: string; where: string }

/** Rule options whose subject is a request variable matched by a regular expression. */
export const ROUTE_SUBJECTS: Readonly<Record<string, string>> = Object.freeze({
  'route': 'PATH_INFO',
  'route-uri': 'REQUEST_URI',
  'route-qs': 'QUERY_STRING',
  'route-host': 'HTTP_HOST',
  'route-remote-addr': 'REMOTE_ADDR',
  'route-user-agent': 'HTTP_USER_AGENT',
  'route-referer': 'HTTP_REFERER',
  'route-remote-user': 'REMOTE_USER',
});

/** Every option that declares a rule (kept in the order written, across options, in `options.__routes`). */
export const ROUTE_OPTIONS: ReadonlySet<string> = new Set([...Object.keys(ROUTE_SUBJECTS), 'route-if', 'route-if-not', 'route-run', 'route-label']);

/** A backward `goto` may run this many times per request; one more is a routing loop (500). */
export const MAX_BACKWARD_JUMPS = 100;

/** Longest pattern accepted for a regular expression (rule or condition). */
const MAX_PATTERN = 4096;

// ---------------------------------------------------------------------------------------------
// parsing

export interface ParsedRule {
  kind: 'match' | 'cond' | 'run' | 'label';
  /** match: the env var; cond: the condition name */
  subject?: string;
  pattern?: string;
  condName?: string;
  condArgs?: string;
  negate?: boolean;
  action?: string;
  args?: string;
  label?: string;
}

/** Split a rule's text the way uWSGI does (first space, first colon). Throws a plain message on bad syntax. */
export function parseRule(option: string, value: string): ParsedRule {
  const v = value.trim();
  if (v === '') throw new Error('the rule is empty');
  const action = (text: string): { action: string; args: string } => {
    const t = text.trim();
    const c = t.indexOf(':');
    if (c < 0) throw new Error(`action "${t}" has no colon: write it as ${t}: (name, colon, arguments)`);
    const name = t.slice(0, c).trim();
    if (name === '' || /\s/.test(name)) throw new Error(`"${t}" is not an action: write NAME:ARGS, e.g. addheader:X-Foo: bar`);
    return { action: name, args: t.slice(c + 1) };
  };
  if (option === 'route-label') {
    if (/\s/.test(v)) throw new Error('a label is one word');
    return { kind: 'label', label: v };
  }
  if (option === 'route-run') return { kind: 'run', ...action(v) };
  const sp = v.search(/\s/);
  if (sp < 0) {
    throw new Error(option === 'route-if' || option === 'route-if-not'
      ? 'expected "CONDITION:ARGS ACTION:ARGS" (a space between the condition and the action)'
      : 'expected "REGEX ACTION:ARGS" (a space between the regular expression and the action)');
  }
  const head = v.slice(0, sp);
  const rest = v.slice(sp + 1);
  if (option === 'route-if' || option === 'route-if-not') {
    const c = head.indexOf(':');
    if (c <= 0) throw new Error(`condition "${head}" has no colon: write it as NAME:ARGS, e.g. equal:\${PATH_INFO};/foo`);
    return { kind: 'cond', condName: head.slice(0, c), condArgs: head.slice(c + 1), negate: option === 'route-if-not', ...action(rest) };
  }
  const subject = ROUTE_SUBJECTS[option];
  if (subject === undefined) throw new Error(`${option} is not a routing option`);
  return { kind: 'match', subject, pattern: head, ...action(rest) };
}

// ---------------------------------------------------------------------------------------------
// regular expressions

let linear: boolean | null = null;

/**
 * Turn on V8's linear-time regexp engine as a fallback for expressions that backtrack too much (the whole
 * process: application regexes benefit too) and enable the `l` flag used to check a pattern can run on it.
 */
function linearEngine(): boolean {
  if (linear !== null) return linear;
  try {
    v8.setFlagsFromString('--enable-experimental-regexp-engine');
    v8.setFlagsFromString('--enable-experimental-regexp-engine-on-excessive-backtracks');
    new RegExp('a', 'l');
    linear = true;
  } catch {
    linear = false;
  }
  return linear;
}

const NOT_LINEAR_SYNTAX = /\\[1-9]|\\k<|\(\?<?[=!]/;

/**
 * Compile a user-supplied regular expression: JavaScript syntax, unanchored, case-sensitive unless it starts
 * with `(?i)`. Backreferences and lookaround are refused: every accepted pattern can run in linear time, and
 * V8 switches to its linear engine when one backtracks excessively, so hostile input cannot stall a worker.
 */
export function compileUserRegex(pattern: string): RegExp {
  let src = pattern;
  const flags = '';
  if (src.length > MAX_PATTERN) throw new Error(`the regular expression is longer than ${MAX_PATTERN} characters`);
  // V8's linear engine has no `i` flag: fold the case into the pattern itself ([aA]), which it can run
  if (src.startsWith('(?i)')) src = foldCase(src.slice(4));
  if (src.length > MAX_PATTERN * 4) throw new Error(`the case-folded regular expression is too long`);
  let re: RegExp;
  try {
    re = new RegExp(src, flags);
  } catch (e) {
    { const msg = (e as Error).message; throw new Error(`invalid regular expression ${JSON.stringify(pattern)}: ${msg.slice(msg.lastIndexOf(': ') + 2)}`); }
  }
  let linearOk = true;
  if (linearEngine()) {
    try { new RegExp(src, flags + 'l'); } catch { linearOk = false; }
  } else if (NOT_LINEAR_SYNTAX.test(src)) linearOk = false;
  if (!linearOk) {
    throw new Error(`regular expression ${JSON.stringify(pattern)} uses a backreference or a lookaround ((?=, (?!, (?<=, (?<!, \\1, \\k<name>), which routing refuses (it cannot be matched in linear time); rewrite it without them`);
  }
  return re;
}

function otherCase(c: string): string {
  const l = c.toLowerCase();
  const u = c.toUpperCase();
  const o = c === l ? u : l;
  return o !== c && o.length === 1 ? o : '';
}

function classEsc(c: string): string {
  return c === ']' || c === '\\' || c === '^' || c === '-' ? '\\' + c : c;
}

/** The case-folded form of a character class body's range lo..hi: the other-case ranges to add. */
function foldRange(lo: number, hi: number): string {
  let extra = '';
  const add = (from: number, to: number, delta: number) => {
    const a = Math.max(lo, from), b = Math.min(hi, to);
    if (a <= b) extra += String.fromCharCode(a + delta) + (b > a ? '-' + String.fromCharCode(b + delta) : '');
  };
  add(97, 122, -32);
  add(65, 90, 32);
  for (let c = Math.max(lo, 0xc0); c <= Math.min(hi, 0x24f); c++) extra += classEsc(otherCase(String.fromCharCode(c)));
  return extra;
}

/**
 * Rewrite a pattern so that it matches case-insensitively without the `i` flag: a letter `a` becomes `[aA]`,
 * a class gets the other case of its letters and ranges. Escapes (`\w`, `\D` …) and group names are kept.
 */
export function foldCase(src: string): string {
  let out = '';
  let i = 0;
  const n = src.length;
  const escapeAt = (k: number): number => {
    // length of the escape sequence starting at src[k] === '\\'
    const c = src[k + 1];
    if (c === undefined) return 1;
    if (c === 'x') return 4;
    if (c === 'u') return src[k + 2] === '{' ? Math.max(2, src.indexOf('}', k) - k + 1) : 6;
    if (c === 'c') return 3;
    if ((c === 'p' || c === 'P') && src[k + 2] === '{') return Math.max(2, src.indexOf('}', k) - k + 1);
    return 2;
  };
  while (i < n) {
    const c = src[i]!;
    if (c === '\\') {
      const l = escapeAt(i);
      const esc = src.slice(i, i + l);
      const hex = (esc[1] === 'x' && l === 4) || (esc[1] === 'u' && l === 6) ? parseInt(esc.slice(2), 16) : NaN;
      const o = Number.isNaN(hex) ? '' : otherCase(String.fromCharCode(hex));
      out += o ? `[${esc}${classEsc(o)}]` : esc;
      i += l;
      continue;
    }
    if (c === '(' && src[i + 1] === '?' && src[i + 2] === '<' && src[i + 3] !== '=' && src[i + 3] !== '!') {
      const e = src.indexOf('>', i);
      if (e > 0) { out += src.slice(i, e + 1); i = e + 1; continue; }
    }
    if (c === '{') {
      const e = src.indexOf('}', i);
      if (e > 0 && /^\{\d*,?\d*\}$/.test(src.slice(i, e + 1))) { out += src.slice(i, e + 1); i = e + 1; continue; }
    }
    if (c === '[') {
      // a character class: copy it, then add the other case of its letters and ranges
      let j = i + 1;
      let body = '';
      let extra = '';
      if (src[j] === '^') { body += '^'; j++; }
      if (src[j] === ']') { body += '\\]'; j++; }
      let prev = -1;
      while (j < n && src[j] !== ']') {
        let item: string;
        let code = -1;
        if (src[j] === '\\') {
          const l = escapeAt(j);
          item = src.slice(j, j + l);
          if (l === 2 && !/[dDwWsSbBfnrtv0]/.test(item[1]!)) code = item.charCodeAt(1);
          else if (l === 4 && item[1] === 'x') code = parseInt(item.slice(2), 16);
          j += l;
        } else {
          item = src[j]!;
          code = item.charCodeAt(0);
          j++;
        }
        if (item === '-' && prev >= 0 && src[j] !== ']' && j < n) {
          // a range prev-next
          let hiItem: string;
          let hi = -1;
          if (src[j] === '\\') { const l = escapeAt(j); hiItem = src.slice(j, j + l); if (l === 2) hi = hiItem.charCodeAt(1); else if (l === 4 && hiItem[1] === 'x') hi = parseInt(hiItem.slice(2), 16); j += l; } else { hiItem = src[j]!; hi = hiItem.charCodeAt(0); j++; }
          body += '-' + hiItem;
          if (hi >= prev) extra += foldRange(prev, hi);
          prev = -1;
          continue;
        }
        body += item === '-' ? '\\-' : item;
        if (code >= 0) extra += classEsc(otherCase(String.fromCharCode(code)));
        prev = code;
      }
      out += '[' + body + extra + ']';
      i = j + 1;
      continue;
    }
    const o = otherCase(c);
    out += o ? `[${c}${o}]` : c;
    i++;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// templates: $1…$9 and ${VAR}

const T_TEXT = 0, T_CAPTURE = 1, T_VAR = 2, T_QS = 3, T_COOKIE = 4, T_TIME = 5, T_PID = 6, T_WID = 7;
type Part = { t: number; v: string; n: number };

function envString(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  return '';
}

function decodeComponent(s: string): string {
  const t = s.includes('+') ? s.replace(/\+/g, ' ') : s;
  if (!t.includes('%')) return t;
  try { return decodeURIComponent(t); } catch { return t; }
}

/** Index of char code `c` in s[from, to), or `to` (never scans past `to`: lookups stay linear). */
function charIn(s: string, c: number, from: number, to: number): number {
  for (let i = from; i < to; i++) if (s.charCodeAt(i) === c) return i;
  return to;
}

/** The first value of `name` in a query string (`a=1&b=2`), decoded; '' when absent. No regex: linear. */
export function queryParam(qs: string, name: string): string {
  let start = 0;
  while (start <= qs.length) {
    let end = qs.indexOf('&', start);
    if (end < 0) end = qs.length;
    const keyEnd = charIn(qs, 61 /* = */, start, end);
    if (decodeComponent(qs.slice(start, keyEnd)) === name) return keyEnd === end ? '' : decodeComponent(qs.slice(keyEnd + 1, end));
    start = end + 1;
  }
  return '';
}

/** The value of cookie `name` in a Cookie header; '' when absent. */
export function cookieValue(header: string, name: string): string {
  let start = 0;
  while (start < header.length) {
    let end = header.indexOf(';', start);
    if (end < 0) end = header.length;
    const eq = charIn(header, 61 /* = */, start, end);
    if (eq < end && header.slice(start, eq).trim() === name) {
      let v = header.slice(eq + 1, end).trim();
      if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
      return v;
    }
    start = end + 1;
  }
  return '';
}

function parseTemplate(text: string): Part[] {
  const parts: Part[] = [];
  let lit = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c !== '$' || i + 1 >= text.length) { lit += c; continue; }
    const d = text.charCodeAt(i + 1);
    if (d >= 48 && d <= 57) {
      if (lit) { parts.push({ t: T_TEXT, v: lit, n: 0 }); lit = ''; }
      parts.push({ t: T_CAPTURE, v: '', n: d - 48 });
      i++;
      continue;
    }
    if (d !== 123 /* { */) { lit += c; continue; }
    const close = text.indexOf('}', i + 2);
    if (close < 0) throw new Error(`unterminated \${ in ${JSON.stringify(text)}: write \${NAME}`);
    const name = text.slice(i + 2, close).trim();
    if (name === '') throw new Error(`empty \${} in ${JSON.stringify(text)}`);
    if (lit) { parts.push({ t: T_TEXT, v: lit, n: 0 }); lit = ''; }
    const m = /^([a-z]+)\[([^\]]*)\]$/.exec(name);
    if (m) {
      const [, mod, arg] = m as unknown as [string, string, string];
      if (mod === 'qs') parts.push({ t: T_QS, v: arg, n: 0 });
      else if (mod === 'cookie') parts.push({ t: T_COOKIE, v: arg, n: 0 });
      else if (mod === 'time' && arg === 'unix') parts.push({ t: T_TIME, v: '', n: 0 });
      else if (mod === 'uwsgi' && arg === 'pid') parts.push({ t: T_PID, v: '', n: 0 });
      else if (mod === 'uwsgi' && arg === 'wid') parts.push({ t: T_WID, v: '', n: 0 });
      else throw new Error(`unknown variable \${${name}}: supported are \${VAR}, \${qs[NAME]}, \${cookie[NAME]}, \${time[unix]}, \${uwsgi[pid]}, \${uwsgi[wid]}`);
    } else if (/^[A-Za-z_][A-Za-z0-9_.\-]*$/.test(name)) {
      parts.push({ t: T_VAR, v: name, n: 0 });
    } else {
      throw new Error(`malformed variable \${${name}}: a request variable name such as \${HTTP_HOST}`);
    }
    i = close;
  }
  if (lit) parts.push({ t: T_TEXT, v: lit, n: 0 });
  return parts;
}

/** Compile a template once; the result expands it per request. */
export function compileTemplate(text: string): RouteTemplate {
  const parts = parseTemplate(text);
  if (parts.length === 0 || (parts.length === 1 && parts[0]!.t === T_TEXT)) {
    const constant = parts.length ? parts[0]!.v : '';
    const f = (() => constant) as unknown as RouteTemplate;
    Object.defineProperty(f, 'constant', { value: constant });
    return f;
  }
  const f = function expandTemplate(ctx: RequestContext, match: RegExpExecArray | null): string {
    let out = '';
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      switch (p.t) {
        case T_TEXT: out += p.v; break;
        case T_CAPTURE: if (match !== null) out += match[p.n] ?? ''; break;
        case T_VAR: out += envString(ctx.env[p.v]); break;
        case T_QS: out += queryParam(envString(ctx.env.QUERY_STRING), p.v); break;
        case T_COOKIE: out += cookieValue(envString(ctx.env.HTTP_COOKIE), p.v); break;
        case T_TIME: out += String(Math.floor(Date.now() / 1000)); break;
        case T_PID: out += String(process.pid); break;
        case T_WID: out += envString(ctx.env['uwcore.worker_id']); break;
      }
    }
    return out;
  } as unknown as RouteTemplate;
  Object.defineProperty(f, 'constant', { value: null });
  return f;
}

const expandCache = new Map<string, RouteTemplate>();
function expandOnce(template: string, ctx: RequestContext, match: RegExpExecArray | null): string {
  let t = expandCache.get(template);
  if (t === undefined) {
    t = compileTemplate(template);
    if (expandCache.size < 1024) expandCache.set(template, t);
  }
  return t(ctx, match);
}

// ---------------------------------------------------------------------------------------------
// compiling and running

const K_LABEL = 0, K_MATCH = 1, K_COND = 2, K_RUN = 3;

interface Compiled {
  kind: number;
  subject: string;
  re: RegExp | null;
  test: RouteTest | null;
  negate: boolean;
  action: RouterAction | null;
  /** plugin that registered the action (errors are tagged with it) */
  owner: string;
  /** plugin that registered the condition */
  condOwner: string;
  /** index of the goto target, -1 when the action is not goto */
  jump: number;
  where: string;
  text: string;
}

export interface RouterDeps {
  routerActions: NamedRegistry<RouterActionFactory>;
  routeConditions: NamedRegistry<RouteCondition | RouteConditionSpec>;
  log: Logger;
}

function show(r: RuleSource): string {
  const t = `${r.option} = ${r.value}`;
  return JSON.stringify(t.length > 160 ? t.slice(0, 157) + '...' : t);
}

function ruleError(r: RuleSource, index: number, problem: string): UwError {
  return new UwError(Codes.ROUTE, `route rule #${index} ${show(r)} (${r.where}): ${problem}`, { exitCode: 2 });
}

/** Names registered now, plus those the built-ins provide (a rule naming one loads it). */
function known(reg: { entries(): Array<[string, unknown]> }, kind: 'routerActions' | 'routeConditions'): string {
  const n = new Set(reg.entries().map(([k]) => k));
  try { for (const m of builtinManifest()) for (const x of m.provides?.[kind] ?? []) n.add(x); } catch { /* no manifest */ }
  return n.size ? [...n].sort().join(', ') : 'none';
}

/** Compile every rule; throws a UW_ERR_ROUTE naming the first rule that does not compile. */
export function createRouter(deps: RouterDeps, rules: RuleSource[], opts: { verbose?: boolean } = {}): Router {
  const compiled: Compiled[] = [];
  const labels = new Map<string, number>();
  const gotos: Array<{ index: number; target: string }> = [];
  rules.forEach((src, index) => {
    let p: ParsedRule;
    try { p = parseRule(src.option, src.value); } catch (e) { throw ruleError(src, index, (e as Error).message); }
    const rule: RouteRule = Object.freeze({
      source: src.where,
      option: src.option,
      text: src.value,
      expand: expandOnce,
      template: compileTemplate,
      regex: compileUserRegex,
    });
    const c: Compiled = { kind: K_RUN, subject: '', re: null, test: null, negate: false, action: null, owner: 'core', condOwner: 'core', jump: -1, where: src.where, text: src.value };
    try {
      if (p.kind === 'label') {
        if (labels.has(p.label!)) throw new Error(`label "${p.label}" is already defined by rule #${labels.get(p.label!)}`);
        labels.set(p.label!, index);
        c.kind = K_LABEL;
      } else {
        if (p.kind === 'match') {
          c.kind = K_MATCH;
          c.subject = p.subject!;
          c.re = compileUserRegex(p.pattern!);
        } else if (p.kind === 'cond') {
          c.kind = K_COND;
          c.negate = p.negate === true;
          const cond = deps.routeConditions.get(p.condName!);
          c.condOwner = deps.routeConditions.owner(p.condName!) ?? 'core';
          if (cond === undefined) throw new Error(`unknown condition "${p.condName}" (known: ${known(deps.routeConditions, 'routeConditions')}); a plugin providing it must be loaded (--plugins NAME)`);
          if (typeof cond === 'function') {
            const tpl = compileTemplate(p.condArgs!);
            const fn = cond;
            c.test = (ctx, match) => fn(tpl(ctx, match), ctx);
          } else if (cond !== null && typeof cond === 'object' && typeof cond.compile === 'function') {
            c.test = cond.compile(p.condArgs!, rule);
            if (typeof c.test !== 'function') throw new Error(`condition "${p.condName}" did not compile to a function (plugin ${deps.routeConditions.owner(p.condName!)})`);
          } else throw new Error(`condition "${p.condName}" is neither a function nor { compile() } (plugin ${deps.routeConditions.owner(p.condName!)})`);
        }
        if (p.action === 'goto') {
          const target = p.args!.trim();
          if (target === '') throw new Error('goto needs a label: goto:NAME');
          gotos.push({ index, target });
        } else {
          const factory = deps.routerActions.get(p.action!);
          if (factory === undefined) throw new Error(`unknown action "${p.action}" (known: goto, ${known(deps.routerActions, 'routerActions')}); a plugin providing it must be loaded (--plugins NAME)`);
          c.owner = deps.routerActions.owner(p.action!) ?? 'core';
          let action: RouterAction;
          try {
            action = factory(p.args!, rule);
          } catch (e) {
            throw new Error(`action ${p.action}: ${(e as Error)?.message ?? String(e)}`);
          }
          if (typeof action !== 'function') throw new Error(`action ${p.action} (plugin ${c.owner}) did not return a function`);
          c.action = action;
        }
      }
    } catch (e) {
      if (e instanceof UwError) throw e;
      throw ruleError(src, index, (e as Error)?.message ?? String(e));
    }
    compiled.push(c);
  });
  for (const g of gotos) {
    let t = labels.get(g.target);
    if (t === undefined && /^\d+$/.test(g.target) && Number(g.target) < compiled.length) t = Number(g.target);
    if (t === undefined) {
      throw ruleError(rules[g.index]!, g.index, `goto to a missing label "${g.target}" (labels: ${labels.size ? [...labels.keys()].join(', ') : 'none'}; declare it with route-label = ${g.target})`);
    }
    compiled[g.index]!.jump = t;
  }
  if (compiled.length) {
    const level = opts.verbose ? 'info' : 'debug';
    if (deps.log.isLevelEnabled(level)) {
      compiled.forEach((c, i) => deps.log[level]({ rule: i, option: rules[i]!.option, where: c.where }, `[rule: ${i}] ${rules[i]!.option} = ${c.text}`));
    }
  }
  return new RuleRunner(compiled);
}

const BAD_RESULT = (c: Compiled, i: number, r: unknown) => new UwError(Codes.ROUTE, `action of route rule #${i} (${c.where}) returned ${JSON.stringify(r) ?? typeof r}; actions return 'next', 'continue' or 'break'`, { plugin: c.owner, hook: 'route' });

class RuleRunner implements Router {
  constructor(private readonly rules: Compiled[]) {}
  get size(): number { return this.rules.length; }

  run(ctx: Ctx): RouteResult | Promise<RouteResult> {
    return this.from(ctx, 0, 0);
  }

  private from(ctx: Ctx, start: number, jumps: number): RouteResult | Promise<RouteResult> {
    const rules = this.rules;
    const env = ctx.env;
    const n = rules.length;
    let i = start;
    while (i < n) {
      const c = rules[i]!;
      let m: RegExpExecArray | null = null;
      if (c.kind === K_MATCH) {
        const s = env[c.subject];
        m = c.re!.exec(typeof s === 'string' ? s : envString(s));
        if (m === null) { i++; continue; }
      } else if (c.kind === K_COND) {
        let t: boolean | RegExpExecArray | null;
        try { t = c.test!(ctx, null); } catch (e) { throw tagError(e, c.condOwner, 'route'); }
        if (c.negate) { if (t !== false && t !== null) { i++; continue; } } else if (t === false || t === null) { i++; continue; } else if (t !== true) m = t;
      } else if (c.kind === K_LABEL) { i++; continue; }
      if (c.jump >= 0) {
        if (c.jump <= i && ++jumps > MAX_BACKWARD_JUMPS) {
          throw new UwError(Codes.ROUTE_LOOP, `routing loop: goto in route rule #${i} (${c.where}) jumped back more than ${MAX_BACKWARD_JUMPS} times for one request; answered 500`, { hook: 'route' });
        }
        i = c.jump;
        continue;
      }
      let r: RouteResult | Promise<RouteResult>;
      try { r = c.action!(ctx, m); } catch (e) { throw tagError(e, c.owner, 'route'); }
      if (r === 'next') { i++; continue; }
      if (r === 'continue' || r === 'break') return r;
      if (r !== null && typeof r === 'object' && typeof (r as Promise<RouteResult>).then === 'function') {
        const next = i + 1;
        const j = jumps;
        const idx = i;
        return (r as Promise<RouteResult>).then(
          (v): RouteResult | Promise<RouteResult> => {
            if (v === 'next') return this.from(ctx, next, j);
            if (v === 'continue' || v === 'break') return v;
            throw BAD_RESULT(c, idx, v);
          },
          (e: unknown) => { throw tagError(e, c.owner, 'route'); },
        );
      }
      throw BAD_RESULT(c, i, r);
    }
    return 'continue';
  }
}
