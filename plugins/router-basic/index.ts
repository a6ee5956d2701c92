// The everyday route actions (continue, break, return, addheader, delheader, redirect, rewrite, setvar, log,
// donotlog) and the route-if conditions (equal, startswith, endswith, contains, regexp, empty, isfile, isdir …).
// Everything is compiled when the rule is: per request an action does only what its rule asks.
import { Buffer } from 'node:buffer';
import fs from 'node:fs';
import net from 'node:net';
import { STATUS_CODES } from 'node:http';
import {
  definePlugin, percentDecode, type HeaderList, type RequestContext, type RouteConditionSpec, type RouteResult, type RouteRule,
  type RouteTemplate, type RouterAction, type RouterActionFactory, type RouteTest, type Transform,
} from '../../sdk/index.js';

// ---------------------------------------------------------------------------------------------
// helpers

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const FRAMING = new Set(['content-length', 'transfer-encoding']);
const NOT_PLAIN = /[^\t\x20-\x7e]/;

/**
 * A header value that is safe whatever the request held: control characters (CR, LF …) are dropped and
 * non-ASCII text is percent-encoded as UTF-8 (node:http would otherwise send it as Latin-1 or UTF-8
 * depending on the body's type).
 */
export function headerValue(v: string): string {
  if (!NOT_PLAIN.test(v)) return v;
  let out = '';
  for (const ch of v) {
    const c = ch.codePointAt(0)!;
    if (c === 9 || (c >= 0x20 && c < 0x7f)) out += ch;
    else if (c < 0x20 || c === 0x7f) continue;
    else { try { out += encodeURIComponent(ch); } catch { out += '%EF%BF%BD'; } }
  }
  return out;
}

/** A Location value: printable ASCII, anything else percent-encoded as UTF-8, control characters dropped. */
export function locationValue(v: string): string {
  return headerValue(v).replace(/[ \t]/g, (c) => (c === ' ' ? '%20' : '%09'));
}

function statusOf(text: string, what: string): { status: number; reason: string } {
  const m = /^\s*(\d{3})(?:\s+(.*))?$/.exec(text);
  if (!m) throw new Error(`${what} needs a status code from 100 to 599, e.g. ${what}404 (got ${JSON.stringify(text)})`);
  const status = Number(m[1]);
  if (status < 100 || status > 599) throw new Error(`status ${status} is out of range 100-599`);
  const reason = (m[2] ?? '').trim() || STATUS_CODES[status] || 'Unknown';
  if (/[\r\n]/.test(reason)) throw new Error('the reason phrase cannot hold a line break');
  return { status, reason };
}

/** Percent-decode a path as UTF-8 (the SDK's, the same the core applies to PATH_INFO). */
export const decodePath = percentDecode;

/** Remove `.` and `..` segments, never above the root. */
export function normalizePath(p: string): string {
  const abs = p.startsWith('/') ? p : '/' + p;
  if (!abs.includes('/.')) return abs;
  const out: string[] = [];
  const segs = abs.split('/');
  for (let i = 1; i < segs.length; i++) {
    const s = segs[i]!;
    const last = i === segs.length - 1;
    if (s === '.') { if (last) out.push(''); continue; }
    if (s === '..') { out.pop(); if (last) out.push(''); continue; }
    out.push(s);
  }
  return '/' + out.join('/');
}

function noArgs(name: string): (args: string) => void {
  return (args) => { if (args.trim() !== '') throw new Error(`${name}: takes no argument (got ${JSON.stringify(args)})`); };
}

const textPlain: [string, string] = ['Content-Type', 'text/plain'];

// ---------------------------------------------------------------------------------------------
// actions

const next = (): RouteResult => 'next';
const cont = (): RouteResult => 'continue';
const brk = (): RouteResult => 'break';

function answer(status: number, reason: string, extra: HeaderList | null, body: string): RouterAction {
  const len = String(Buffer.byteLength(body));
  return (ctx) => {
    const h: HeaderList = extra === null ? [textPlain, ['Content-Length', len]] : [...extra, textPlain, ['Content-Length', len]];
    ctx.start(status, reason, h);
    ctx.end(body);
    return 'break';
  };
}

/** break: closes the connection with no response (uWSGI); break:STATUS [REASON] answers that status, empty. */
const breakAction: RouterActionFactory = (args) => {
  if (args.trim() === '') return brk;
  const { status, reason } = statusOf(args, 'break:');
  return answer(status, reason, null, '');
};

/** return:STATUS answers the status with its reason phrase as a text/plain body. */
const returnAction: RouterActionFactory = (args) => {
  const { status, reason } = statusOf(args, 'return:');
  return answer(status, reason, null, reason);
};

function redirect(status: number): RouterActionFactory {
  return (args, rule) => {
    if (args.trim() === '') throw new Error('needs a URL, e.g. redirect:https://example.com/new');
    const tpl = rule.template(args.trim());
    const reason = STATUS_CODES[status]!;
    const len = String(Buffer.byteLength(reason));
    return (ctx, match) => {
      ctx.start(status, reason, [['Location', locationValue(tpl(ctx, match))], textPlain, ['Content-Length', len]]);
      ctx.end(reason);
      return 'break';
    };
  };
}

function parseHeaderArg(args: string, what: string): { name: string; value: string } {
  const c = args.indexOf(':');
  if (c <= 0) throw new Error(`expected ${what}Name: value (got ${JSON.stringify(args)})`);
  const name = args.slice(0, c).trim();
  if (!TOKEN.test(name)) throw new Error(`${JSON.stringify(name)} is not a valid header name`);
  return { name, value: args.slice(c + 1).trim() };
}

const addHeaderAction: RouterActionFactory = (args, rule) => {
  const { name, value } = parseHeaderArg(args, 'addheader:');
  if (FRAMING.has(name.toLowerCase())) throw new Error(`${name} is set by the server from the body; it cannot be added by a rule`);
  const tpl = rule.template(value);
  if (tpl.constant !== null) {
    const pair: [string, string] = [name, headerValue(tpl.constant)];
    const t: Transform = { name: 'addheader', headers(_ctx, h) { h.push(pair); } };
    return (ctx) => { ctx.addTransform(t); return 'next'; };
  }
  return (ctx, match) => {
    const pair: [string, string] = [name, headerValue(tpl(ctx, match))];
    ctx.addTransform({ name: 'addheader', headers(_ctx, h) { h.push(pair); } });
    return 'next';
  };
};

const delHeaderAction: RouterActionFactory = (args) => {
  const name = args.trim();
  if (!TOKEN.test(name)) throw new Error(`expected delheader:Name (got ${JSON.stringify(args)})`);
  const lower = name.toLowerCase();
  if (FRAMING.has(lower)) throw new Error(`${name} is set by the server from the body; it cannot be removed by a rule`);
  const t: Transform = {
    name: 'delheader',
    headers(_ctx, h) { return h.filter((e) => e[0].toLowerCase() !== lower); },
  };
  return (ctx) => { ctx.addTransform(t); return 'next'; };
};

/** rewrite:/path?qs — new PATH_INFO (decoded) and QUERY_STRING (rule's first, then the request's); REQUEST_URI stays. */
function rewrite(result: RouteResult): RouterActionFactory {
  return (args, rule) => {
    const text = args.trim();
    if (text === '') throw new Error('needs a path, e.g. rewrite:/index.js?page=$1');
    const tpl = rule.template(text);
    return (ctx, match) => {
      const target = tpl(ctx, match);
      const q = target.indexOf('?');
      const env = ctx.env;
      env.PATH_INFO = normalizePath(decodePath(q < 0 ? target : target.slice(0, q)));
      if (q >= 0) {
        const qs = target.slice(q + 1);
        const old = env.QUERY_STRING;
        env.QUERY_STRING = qs !== '' && old !== '' ? `${qs}&${old}` : qs || old;
      }
      return result;
    };
  };
}

const VAR_NAME = /^[A-Za-z_][A-Za-z0-9_.\-]*$/;

const setVarAction: RouterActionFactory = (args, rule) => {
  const eq = args.indexOf('=');
  const key = (eq < 0 ? '' : args.slice(0, eq)).trim();
  if (!VAR_NAME.test(key)) throw new Error(`expected KEY=VALUE with KEY a variable name such as MY_VAR (got ${JSON.stringify(args)})`);
  if (key.startsWith('wsgi.')) throw new Error(`${key} belongs to the server`);
  const tpl = rule.template(args.slice(eq + 1));
  return (ctx, match) => { ctx.env[key] = tpl(ctx, match); return 'next'; };
};

const logAction: RouterActionFactory = (args, rule) => {
  const tpl = rule.template(args);
  const where = rule.source;
  return (ctx, match) => { ctx.log.info({ route: where }, tpl(ctx, match)); return 'next'; };
};

const doNotLogAction: RouterActionFactory = (args) => {
  noArgs('donotlog')(args);
  return (ctx) => { ctx.noLog = true; return 'next'; };
};

function fixed(name: string, fn: () => RouteResult): RouterActionFactory {
  return (args) => { noArgs(name)(args); return fn; };
}

// ---------------------------------------------------------------------------------------------
// conditions

type Pair = (subject: string, pattern: string) => boolean;

/** SUBJECT;VALUE, split at the first `;` before expansion (a `;` inside an expanded value is data). */
function pair(name: string, fn: Pair): RouteConditionSpec {
  return {
    compile(args, rule): RouteTest {
      const sc = args.indexOf(';');
      if (sc < 0) throw new Error(`condition ${name} expects SUBJECT;VALUE, e.g. ${name}:\${PATH_INFO};/foo (got ${JSON.stringify(args)})`);
      const s = rule.template(args.slice(0, sc));
      const p = rule.template(args.slice(sc + 1));
      const pc = p.constant;
      if (pc !== null) return (ctx, m) => fn(s(ctx, m), pc);
      return (ctx, m) => fn(s(ctx, m), p(ctx, m));
    },
  };
}

function single(fn: (value: string) => boolean): RouteConditionSpec {
  return {
    compile(args, rule): RouteTest {
      const v = rule.template(args);
      return (ctx, m) => fn(v(ctx, m));
    },
  };
}

function num(s: string): number {
  const t = s.trim();
  return t === '' ? NaN : Number(t);
}

function statIs(test: (st: fs.Stats) => boolean, link = false): (p: string) => boolean {
  return (p) => {
    if (p === '' || p.includes('\0')) return false;
    try {
      const st = link ? fs.lstatSync(p, { throwIfNoEntry: false }) : fs.statSync(p, { throwIfNoEntry: false });
      return st !== undefined && test(st);
    } catch { return false; }
  };
}

function isExec(p: string): boolean {
  if (p === '' || p.includes('\0')) return false;
  try { fs.accessSync(p, fs.constants.X_OK); return fs.statSync(p).isFile(); } catch { return false; }
}

/** regexp:SUBJECT;PATTERN — true with captures for the action ($1…$9). */
const regexpCondition: RouteConditionSpec = {
  compile(args, rule: RouteRule): RouteTest {
    const sc = args.indexOf(';');
    if (sc < 0) throw new Error(`condition regexp expects SUBJECT;REGEX, e.g. regexp:\${HTTP_HOST};^www\\.(.+)$ (got ${JSON.stringify(args)})`);
    const s = rule.template(args.slice(0, sc));
    const p: RouteTemplate = rule.template(args.slice(sc + 1));
    if (p.constant !== null) {
      const re = rule.regex(p.constant);
      return (ctx, m) => re.exec(s(ctx, m));
    }
    // a pattern built per request: compiled under the same rules, the last one kept
    let lastSrc = '';
    let lastRe: RegExp | null = null;
    return (ctx, m) => {
      const src = p(ctx, m);
      if (src !== lastSrc || lastRe === null) {
        try { lastRe = rule.regex(src); lastSrc = src; } catch { return false; }
      }
      return lastRe.exec(s(ctx, m));
    };
  },
};

function ipIn(family: 'ipv4' | 'ipv6'): RouteConditionSpec {
  const parse = (cidr: string): net.BlockList | null => {
    const [addr, bits] = cidr.trim().split('/');
    const list = new net.BlockList();
    const max = family === 'ipv4' ? 32 : 128;
    const prefix = bits === undefined ? max : Number(bits);
    if (!addr || net.isIP(addr) !== (family === 'ipv4' ? 4 : 6) || !Number.isInteger(prefix) || prefix < 0 || prefix > max) return null;
    list.addSubnet(addr, prefix, family);
    return list;
  };
  const has = (list: net.BlockList, ip: string) => {
    const a = family === 'ipv4' && ip.startsWith('::ffff:') ? ip.slice(7) : ip;
    return net.isIP(a) === (family === 'ipv4' ? 4 : 6) && list.check(a, family);
  };
  return {
    compile(args, rule): RouteTest {
      const sc = args.indexOf(';');
      if (sc < 0) throw new Error(`condition ${family}in expects ADDRESS;NETWORK/BITS, e.g. ${family}in:\${REMOTE_ADDR};${family === 'ipv4' ? '10.0.0.0/8' : 'fd00::/8'}`);
      const s = rule.template(args.slice(0, sc));
      const p = rule.template(args.slice(sc + 1));
      if (p.constant !== null) {
        const list = parse(p.constant);
        if (list === null) throw new Error(`${JSON.stringify(p.constant)} is not an ${family} network (ADDRESS/BITS)`);
        return (ctx, m) => has(list, s(ctx, m));
      }
      return (ctx, m) => { const l = parse(p(ctx, m)); return l !== null && has(l, s(ctx, m)); };
    },
  };
}

// ---------------------------------------------------------------------------------------------

const ACTIONS: Record<string, RouterActionFactory> = {
  'continue': fixed('continue', cont),
  'break': breakAction,
  'return': returnAction,
  'break-with-status': returnAction,
  'addheader': addHeaderAction,
  'delheader': delHeaderAction,
  'remheader': delHeaderAction,
  'redirect': redirect(302),
  'redirect-302': redirect(302),
  'redirect-301': redirect(301),
  'redirect-permanent': redirect(301),
  'redirect-307': redirect(307),
  'redirect-308': redirect(308),
  'rewrite': rewrite('next'),
  'rewrite-last': rewrite('continue'),
  'setvar': setVarAction,
  'addvar': setVarAction,
  'log': logAction,
  'donotlog': doNotLogAction,
};
void next;

const eq = pair('equal', (a, b) => a === b);
const gt = pair('ishigher', (a, b) => num(a) > num(b));
const lt = pair('islower', (a, b) => num(a) < num(b));
const ge = pair('ishigherequal', (a, b) => num(a) >= num(b));
const le = pair('islowerequal', (a, b) => num(a) <= num(b));
const contains = pair('contains', (a, b) => a.includes(b));
const CONDITIONS: Record<string, RouteConditionSpec> = {
  'equal': eq, 'isequal': eq, 'eq': eq, '==': eq,
  'startswith': pair('startswith', (a, b) => a.startsWith(b)),
  'endswith': pair('endswith', (a, b) => a.endsWith(b)),
  'contains': contains, 'contain': contains,
  'regexp': regexpCondition, 're': regexpCondition,
  'ishigher': gt, '>': gt, 'islower': lt, '<': lt, 'ishigherequal': ge, '>=': ge, 'islowerequal': le, '<=': le,
  'empty': single((v) => v === ''),
  'exists': single(statIs(() => true, true)),
  'isfile': single(statIs((s) => s.isFile())),
  'isdir': single(statIs((s) => s.isDirectory())),
  'islink': single(statIs((s) => s.isSymbolicLink(), true)),
  'isexec': single(isExec),
  'ipv4in': ipIn('ipv4'),
  'ipv6in': ipIn('ipv6'),
};

export default definePlugin({
  name: 'router-basic',
  version: '1.0.0',
  sdk: '^1.1.0',
  description: 'everyday route actions (break, return, addheader, redirect, rewrite, setvar, log …) and route-if conditions',
  provides: { routerActions: Object.keys(ACTIONS), routeConditions: Object.keys(CONDITIONS) },
  setup(api) {
    for (const [name, f] of Object.entries(ACTIONS)) api.routerActions.register(name, f);
    for (const [name, c] of Object.entries(CONDITIONS)) api.routeConditions.register(name, c);
  },
});

export type { RequestContext };
