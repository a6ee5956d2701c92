// The rule engine in-process: parsing, templates, the regex guard, goto/labels, loops, async actions, and the
// built-in plugins' registrations against their manifest declarations.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import type { RouteCondition, RouteConditionSpec, RouterActionFactory, RequestContext, PluginApi } from '../../sdk/index.js';
import { NamedRegistry } from '../../core/hooks.js';
import { asLogger } from '../../core/logger.js';
import { builtinManifest, builtinProvider } from '../../core/plugins.js';
import {
  compileTemplate, compileUserRegex, cookieValue, createRouter, foldCase, MAX_BACKWARD_JUMPS, parseRule, queryParam,
  type RuleSource,
} from '../../core/routing.js';
import type { Ctx } from '../../core/context.js';
import basic from '../../plugins/router-basic/index.js';
import chunked from '../../plugins/router-chunked/index.js';
import last from '../../plugins/router-last/index.js';

const log = asLogger(pino({ level: 'silent' }));

function fakeCtx(env: Record<string, unknown>): Ctx {
  return { env: { REQUEST_METHOD: 'GET', REQUEST_URI: '/', PATH_INFO: '/', QUERY_STRING: '', SERVER_PROTOCOL: 'HTTP/1.1', ...env }, trail: [] as string[] } as unknown as Ctx;
}
const trail = (ctx: Ctx) => (ctx as unknown as { trail: string[] }).trail;

function deps(extra?: (a: NamedRegistry<RouterActionFactory>, c: NamedRegistry<RouteCondition | RouteConditionSpec>) => void) {
  const routerActions = new NamedRegistry<RouterActionFactory>('router action');
  const routeConditions = new NamedRegistry<RouteCondition | RouteConditionSpec>('route condition');
  const a = routerActions.forPlugin('test');
  // mark:X records X and goes on; stop:X records X and ends routing with 'continue'
  a.register('mark', (args, rule) => { const t = rule.template(args); return (ctx, m) => { trail(ctx as Ctx).push(t(ctx, m)); return 'next'; }; });
  a.register('stop', (args) => (ctx) => { trail(ctx as Ctx).push(args); return 'continue'; });
  a.register('later', (args) => async (ctx) => { await new Promise((r) => setTimeout(r, 2)); trail(ctx as Ctx).push(args); return 'next' as const; });
  a.register('bogus', () => () => 'nope' as never);
  routeConditions.forPlugin('test').register('yes', () => true);
  extra?.(routerActions, routeConditions);
  return { routerActions, routeConditions, log };
}

const rules = (...r: Array<[string, string]>): RuleSource[] => r.map(([option, value], i) => ({ option, value, where: `t.ini:${i + 1}` }));

test('parseRule splits like uWSGI: first space, first colon', () => {
  assert.deepEqual(parseRule('route', '^/a/(.*) addheader:X-A: b c'), { kind: 'match', subject: 'PATH_INFO', pattern: '^/a/(.*)', action: 'addheader', args: 'X-A: b c' });
  assert.deepEqual(parseRule('route-if-not', 'equal:${X};a;b last:'), { kind: 'cond', condName: 'equal', condArgs: '${X};a;b', negate: true, action: 'last', args: '' });
  assert.deepEqual(parseRule('route-run', 'chunked:'), { kind: 'run', action: 'chunked', args: '' });
  assert.deepEqual(parseRule('route-label', 'top'), { kind: 'label', label: 'top' });
  assert.throws(() => parseRule('route', '^/a'), /space between the regular expression and the action/);
  assert.throws(() => parseRule('route', '^/a last'), /has no colon/);
  assert.throws(() => parseRule('route-if', 'equal last:'), /condition "equal" has no colon/);
  assert.throws(() => parseRule('route-run', ''), /empty/);
});

test('templates: $1…$9, ${VAR}, ${qs[]}, ${cookie[]}; constants are recognised', () => {
  const ctx = fakeCtx({ HTTP_HOST: 'h:1', QUERY_STRING: 'a=1&b=x%20y&a=2&c', HTTP_COOKIE: 'k=v; sid="abc"', N: 5 });
  const m = /^\/(\w+)\/(\w+)$/.exec('/one/two');
  assert.equal(compileTemplate('$2-$1-$3 at ${HTTP_HOST} ${N} ${MISSING}.')(ctx, m), 'two-one- at h:1 5 .');
  assert.equal(compileTemplate('${qs[b]}|${qs[a]}|${qs[c]}|${qs[zz]}|${cookie[sid]}|${cookie[k]}')(ctx, null), 'x y|1|||abc|v');
  assert.equal(compileTemplate('plain $ text $x').constant, 'plain $ text $x');
  assert.equal(compileTemplate('${PATH_INFO}').constant, null);
  assert.throws(() => compileTemplate('${PATH_INFO'), /unterminated/);
  assert.throws(() => compileTemplate('${foo[bar]}'), /unknown variable/);
  assert.throws(() => compileTemplate('${a b}'), /malformed variable/);
});

test('query and cookie lookups stay linear on hostile input', () => {
  const qs = 'a&'.repeat(200_000) + 'a=&'.repeat(100_000) + 'x=%E0%A4%A';
  const t = performance.now();
  assert.equal(queryParam(qs, 'x'), '%E0%A4%A');
  assert.equal(cookieValue(';'.repeat(600_000), 'x'), '');
  assert.ok(performance.now() - t < 1500);
});

test('regex guard: backreferences and lookaround refused, catastrophic patterns run in linear time', () => {
  for (const bad of ['(a)\\1', '(?=a)b', '(?!a)b', '(?<=a)b', '(?<!a)b', '(?<n>a)\\k<n>']) {
    assert.throws(() => compileUserRegex(bad), /backreference or a lookaround/, bad);
  }
  assert.throws(() => compileUserRegex('(unclosed'), /invalid regular expression "\(unclosed"/);
  assert.throws(() => compileUserRegex('a'.repeat(5000)), /longer than 4096/);
  const cases: Array<[string, string]> = [['^(a+)+$', 'a'.repeat(40) + 'X'], ['^(.*)/(.*)/(.*)x$', '/'.repeat(5000)], ['(?i)^(A|a)+$', 'a'.repeat(40) + '!'], ['^(\\w+\\s?)*$', 'word '.repeat(30) + '!']];
  for (const [p, s] of cases) {
    const re = compileUserRegex(p);
    const t = performance.now();
    assert.equal(re.exec(s), null);
    const ms = performance.now() - t;
    assert.ok(ms < 2000, `${p} took ${ms} ms (unguarded, these take from seconds to years)`);
  }
});

test('(?i) folds case into the pattern with the same matches as the i flag', () => {
  const pats = ['^/ADMIN', '\\.JPG$', '[a-f0-9]+$', '^[^A-Z_]+$', '(?<Name>ab){2}\\w\\D', '[x-]y', 'Straße', '[\\]a]', 'q\\x41'];
  const subjects = ['/admin', '/Admin/x', 'A.jpg', 'x.JpG', 'DEADbeef', 'abc_', 'ABC', 'abAB1x', 'ABab_Y', 'X-Y', 'x-y', '-Y', 'STRAßE', 'straße', ']', 'A', 'qA', 'QA', 'qa'];
  for (const p of pats) {
    const mine = compileUserRegex('(?i)' + p);
    const ref = new RegExp(p, 'i');
    for (const s of subjects) assert.equal(mine.test(s), ref.test(s), `${p} on ${JSON.stringify(s)} (folded: ${foldCase(p)})`);
  }
});

test('rules run in order; goto jumps to a label; route-if-not inverts; captures reach the action', () => {
  const r = createRouter(deps(), rules(
    ['route-run', 'mark:1'],
    ['route', '^/skip/(\\w+) goto:after'],
    ['route-run', 'mark:2'],
    ['route-label', 'after'],
    ['route-if', 'yes: mark:3'],
    ['route-if-not', 'yes: mark:never'],
    ['route-qs', '^id=(\\d+)$ mark:id $1'],
    ['route', '^/stop stop:here'],
    ['route-run', 'mark:end'],
  ));
  const a = fakeCtx({ PATH_INFO: '/skip/x', QUERY_STRING: 'id=42' });
  assert.equal(r.run(a), 'continue');
  assert.deepEqual(trail(a), ['1', '3', 'id 42', 'end']);
  const b = fakeCtx({ PATH_INFO: '/stop' });
  assert.equal(r.run(b), 'continue');
  assert.deepEqual(trail(b), ['1', '2', '3', 'here']);
});

test('a backward goto loop is cut with UW_ERR_ROUTE_LOOP after a fixed number of jumps', () => {
  const r = createRouter(deps(), rules(['route-label', 'top'], ['route-run', 'mark:x'], ['route', '^/loop goto:top']));
  const ctx = fakeCtx({ PATH_INFO: '/loop' });
  assert.throws(() => r.run(ctx), (e: Error & { code?: string }) => e.code === 'UW_ERR_ROUTE_LOOP' && /t\.ini:3/.test(e.message));
  assert.equal(trail(ctx).length, MAX_BACKWARD_JUMPS + 1);
  // a bounded backward jump is fine
  const ok = fakeCtx({ PATH_INFO: '/other' });
  assert.equal(r.run(ok), 'continue');
});

test('asynchronous actions: routing resumes after the promise', async () => {
  const r = createRouter(deps(), rules(['route-run', 'mark:a'], ['route-run', 'later:b'], ['route-run', 'mark:c']));
  const ctx = fakeCtx({});
  const res = r.run(ctx);
  assert.equal(typeof res, 'object');
  assert.equal(await res, 'continue');
  assert.deepEqual(trail(ctx), ['a', 'b', 'c']);
  // no promise at all when every action is synchronous
  const sync = createRouter(deps(), rules(['route', '^/x mark:x'], ['route-run', 'stop:s']));
  assert.equal(sync.run(fakeCtx({})), 'continue');
});

test('an action returning something else is an error naming the rule', () => {
  const r = createRouter(deps(), rules(['route-run', 'bogus:']));
  assert.throws(() => r.run(fakeCtx({})), /route rule #0 \(t\.ini:1\) returned "nope"/);
});

test('compile errors name the rule, its source and the problem', () => {
  const d = deps();
  const bad: Array<[RuleSource[], RegExp]> = [
    [rules(['route', '^/(a last:']), /route rule #0 "route = \^\/\(a last:" \(t\.ini:1\): invalid regular expression/],
    [rules(['route-run', 'mark:1'], ['route-run', 'nosuch:x']), /route rule #1 .*\(t\.ini:2\): unknown action "nosuch" \(known: goto, addheader, .*bogus, .*later, .*mark, .*stop/],
    [rules(['route-if', 'nocond:x mark:1']), /unknown condition "nocond" \(known: .*contains, .*yes\)/],
    [rules(['route', '^/ goto:nowhere']), /goto to a missing label "nowhere"/],
    [rules(['route-label', 'a'], ['route-label', 'a']), /label "a" is already defined by rule #0/],
    [rules(['route-run', 'mark:${oops']), /action mark: unterminated/],
  ];
  for (const [r, re] of bad) {
    assert.throws(() => createRouter(d, r), (e: Error & { code?: string; exitCode?: number }) => {
      assert.equal(e.code, 'UW_ERR_ROUTE');
      assert.equal(e.exitCode, 2);
      assert.match(e.message, re);
      assert.ok(!e.message.includes('\n'));
      return true;
    });
  }
});

test('built-ins register exactly what their manifest entry provides', async () => {
  for (const p of [basic, chunked, last]) {
    const acts: string[] = [];
    const conds: string[] = [];
    const api = { routerActions: { register: (n: string) => acts.push(n) }, routeConditions: { register: (n: string) => conds.push(n) } } as unknown as PluginApi;
    await p.setup!(api);
    const m = builtinManifest().find((x) => x.name === p.name)!;
    assert.deepEqual(acts.sort(), [...(m.provides?.routerActions ?? [])].sort(), p.name);
    assert.deepEqual(conds.sort(), [...(m.provides?.routeConditions ?? [])].sort(), p.name);
  }
  assert.equal(builtinProvider('routerActions', 'chunked'), 'router-chunked');
  assert.equal(builtinProvider('routerActions', 'last'), 'router-last');
  assert.equal(builtinProvider('routerActions', 'rewrite'), 'router-basic');
  assert.equal(builtinProvider('routeConditions', 'regexp'), 'router-basic');
  assert.equal(builtinProvider('routerActions', 'nope'), undefined);
});

test('router-basic refuses malformed arguments at startup', () => {
  const d = deps((a, c) => {
    const api = { routerActions: a.forPlugin('router-basic'), routeConditions: c.forPlugin('router-basic') } as unknown as PluginApi;
    void basic.setup!(api);
  });
  const bad: Array<[string, string, RegExp]> = [
    ['route-run', 'return:abc', /needs a status code/],
    ['route-run', 'break:999', /out of range/],
    ['route-run', 'addheader:NoColon', /expected addheader:Name: value/],
    ['route-run', 'addheader:Content-Length: 5', /set by the server/],
    ['route-run', 'delheader:Transfer-Encoding', /set by the server/],
    ['route-run', 'redirect:', /needs a URL/],
    ['route-run', 'rewrite:', /needs a path/],
    ['route-run', 'setvar:=x', /KEY=VALUE/],
    ['route-run', 'donotlog:x', /takes no argument/],
    ['route-if', 'equal:nosemicolon last:', /SUBJECT;VALUE/],
    ['route-if', 'regexp:${X};(a)\\1 last:', /backreference/],
    ['route-if', 'ipv4in:${REMOTE_ADDR};10.0.0.0/40 last:', /not an ipv4 network/],
  ];
  for (const [option, value, re] of bad) {
    assert.throws(() => createRouter(d, [{ option, value, where: 'command line' }]), re, value);
  }
  void ({} as RequestContext);
});
