// uwcore/sdk/testing: the real core in-process, requests over an in-memory duplex.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createTestServer, inject, buildRequest, parseResponses } from '../../sdk/testing.js';
import { definePlugin, HttpError, type Plugin, type Transform } from '../../sdk/index.js';
import { freePort, httpGet } from '../helpers/server.js';

const app = (env: Record<string, unknown>, sr: (s: string, h: Array<[string, string]>) => void) => {
  sr('200 OK', [['Content-Type', 'text/plain']]);
  return [`app:${String(env.PATH_INFO)}`];
};

const upper: Transform = {
  name: 'upper',
  headers: (_ctx, h) => h.filter(([k]) => k.toLowerCase() !== 'content-length'),
  chunk: (_ctx, c) => Buffer.from(c.toString('latin1').toUpperCase(), 'latin1'),
};

const demo = definePlugin<{ count(): number }>({
  name: 'demo',
  version: '1.0.0',
  sdk: '^1.0.0',
  options: [
    { name: 'demo-tag', type: 'string', default: 'x', alias: ['demo-label'], help: 'tag' },
    { name: 'demo-size', type: 'size', default: 1024, help: 'size' },
    { name: 'demo-path', type: 'string', multiple: true, help: 'paths' },
  ],
  setup(api) {
    let n = 0;
    api.rpc.handle('count', () => n);
    api.hooks.headers.tap('demo', (h) => { h.push(['X-Demo', String(api.options['demo-tag'])]); return h; });
    api.hooks.request.tap('demo', (ctx) => {
      n++;
      if (ctx.env.PATH_INFO === '/answer') { ctx.respond(200, [['Content-Type', 'text/plain']], 'answered'); return true; }
      if (ctx.env.PATH_INFO === '/upper') ctx.addTransform(upper);
      if (ctx.env.PATH_INFO === '/throw') throw new Error('demo broke');
      if (ctx.env.PATH_INFO === '/teapot') throw new HttpError(418, 'short and stout');
      return false;
    });
    return { count: () => n };
  },
});

test('options are typed through the option table (aliases, sizes, repeatable)', async () => {
  const s = await createTestServer({ plugins: [demo], options: { 'demo-label': 'L', 'demo-size': '4k', 'demo-path': ['/a', '/b'] }, app });
  try {
    assert.equal(s.options['demo-tag'], 'L');
    assert.equal(s.options['demo-size'], 4096);
    assert.deepEqual(s.options['demo-path'], ['/a', '/b']);
  } finally { await s.close(); }
  await assert.rejects(createTestServer({ plugins: [demo], options: { 'demo-size': 'huge' } }), /demo-size/);
  await assert.rejects(createTestServer({ plugins: [demo], options: { 'demo-tga': 'x' } }), /unknown option --demo-tga.*did you mean --demo-tag/);
});

test('request hook answers (bail), headers hook edits, transforms rewrite the body, the app runs otherwise', async () => {
  const s = await createTestServer({ plugins: [demo], options: { 'demo-tag': 'T' }, app });
  try {
    const a = await s.request('GET', '/answer');
    assert.equal(a.text, 'answered');
    assert.equal(a.headers['x-demo'], 'T');
    const b = await inject(s, buildRequest('GET', '/upper'));
    assert.equal(b.text, 'APP:/UPPER');
    assert.equal(b.headers['content-length'], undefined);
    const c = await s.request('GET', '/plain');
    assert.equal(c.text, 'app:/plain');
    assert.equal(c.headers['content-type'], 'text/plain');
    assert.equal(s.api<{ count(): number }>('demo').count(), 3);
    assert.equal(await s.rpc('demo', 'count'), 3);
  } finally { await s.close(); }
});

test('a plugin that throws in a request hook gives a 500 and a log line naming plugin and hook', async () => {
  const s = await createTestServer({ plugins: [demo], app });
  try {
    const r = await s.request('GET', '/throw');
    assert.equal(r.status, 500);
    assert.ok(!r.text.includes('demo broke'), 'the message is not sent to the client');
    const line = s.logs.find((l) => l.level >= 50 && /demo broke/.test(String(l.msg)));
    assert.ok(line, JSON.stringify(s.logs));
    assert.equal(line.plugin, 'demo');
    assert.equal(line.hook, 'request');
    assert.equal(line.code, 'UW_ERR_PLUGIN');
    const t = await s.request('GET', '/teapot');
    assert.equal(t.status, 418);
    assert.match(t.text, /short and stout/);
  } finally { await s.close(); }
});

test('pipelined requests on one connection get their answers in order', async () => {
  const s = await createTestServer({ plugins: [demo], app });
  try {
    const r = await s.inject('GET /one HTTP/1.1\r\nHost: a\r\n\r\nGET /answer HTTP/1.1\r\nHost: a\r\n\r\nGET /two HTTP/1.1\r\nHost: a\r\n\r\n');
    assert.deepEqual(r.responses.map((x) => x.text), ['app:/one', 'answered', 'app:/two']);
    const head = await s.inject('HEAD /answer HTTP/1.1\r\nHost: a\r\n\r\nGET /two HTTP/1.1\r\nHost: a\r\n\r\n');
    assert.equal(head.responses.length, 2);
    assert.equal(head.responses[0]!.headers['content-length'], '8');
    assert.equal(head.responses[0]!.text, '', 'a HEAD answer has no body');
    assert.equal(head.responses[1]!.text, 'app:/two');
    const bad = await s.inject('GARBAGE\r\n\r\n');
    assert.equal(bad.status, 400);
  } finally { await s.close(); }
});

test('requires + api.use: a plugin reaches another plugin\'s API; an unlisted use is refused', async () => {
  const user = definePlugin({
    name: 'user', version: '1.0.0', sdk: '^1.0.0', requires: ['demo'],
    setup(api) {
      const d = api.use<{ count(): number }>('demo');
      api.hooks.request.tap('user', (ctx) => { ctx.respond(200, [], `seen ${d.count()}`); return true; });
    },
  });
  const s = await createTestServer({ plugins: [demo, user], app });
  try {
    assert.equal((await s.request('GET', '/x')).text, 'seen 1');
  } finally { await s.close(); }
  const sneaky = definePlugin({ name: 'sneaky', version: '1.0.0', sdk: '^1.0.0', setup(api) { api.use('demo'); } });
  await assert.rejects(createTestServer({ plugins: [demo, sneaky] }), (e: Error & { code?: string }) => e.code === 'UW_ERR_PLUGIN_NOT_REQUIRED' && /requires/.test(e.message));
  const orphan = definePlugin({ name: 'orphan', version: '1.0.0', sdk: '^1.0.0', requires: ['nope-not-here'] });
  await assert.rejects(createTestServer({ plugins: [orphan] }), /plugin `nope-not-here` not found/);
});

test('registries: router actions, protocols, services are visible to the test', async () => {
  const reg = definePlugin({
    name: 'reg', version: '1.0.0', sdk: '^1.0.0',
    setup(api) {
      api.routerActions.register('stamp', () => () => 'next');
      api.protocols.register('null', { listen: async () => ({ close: async () => undefined, closeIdle: () => undefined, connections: () => 0, destroyAll: () => undefined }) });
      api.services.register('ticker', { count: 1, title: 'ticker', run: async () => undefined });
    },
  });
  const s = await createTestServer({ plugins: [reg] });
  try {
    assert.ok(s.routerActions.has('stamp'));
    assert.ok(s.protocols.has('null'));
    assert.equal(s.services.get('ticker')?.title, 'ticker');
    assert.equal(s.routerActions.has('nothing'), false);
  } finally { await s.close(); }
  const dup = definePlugin({ name: 'dup', version: '1.0.0', sdk: '^1.0.0', setup(api) { api.routerActions.register('stamp', () => () => 'next'); } });
  await assert.rejects(createTestServer({ plugins: [reg, dup] }), /registers router action "stamp", already registered by plugin `reg`/);
});

test('close hooks and onClose handlers run at close, last registered first', async () => {
  const order: string[] = [];
  const p = definePlugin({ name: 'closer', version: '1.0.0', sdk: '^1.0.0', setup(api) {
    api.onClose(() => { order.push('first'); });
    api.onClose(() => { order.push('second'); });
    api.hooks.close.tap('closer', () => { order.push('hook'); });
  } });
  const s = await createTestServer({ plugins: [p] });
  await s.close();
  assert.deepEqual(order, ['hook', 'second', 'first']);
});

// ---------------------------------------------------------------------------------------------
// compatibility refusals (the same errors stop the real CLI: see test/e2e/plugins-refusals.test.ts)

const base = { version: '1.0.0', sdk: '^1.0.0' };

test('refused: a plugin for SDK 2.x', async () => {
  await assert.rejects(createTestServer({ plugins: [{ name: 'future', ...base, sdk: '^2.0.0' } as Plugin] }), (e: Error & { code?: string; plugin?: string }) => {
    assert.equal(e.code, 'UW_ERR_SDK_MISMATCH');
    assert.equal(e.plugin, 'future');
    assert.match(e.message, /needs uwcore SDK \^2\.0\.0, but this uwcore provides SDK 1\.\d+\.\d+; upgrade uwcore to one that provides SDK \^2\.0\.0, or install a version of the plugin built for SDK 1\.x/);
    return true;
  });
});

test('refused: a malformed name, a bad version, a non-range sdk', async () => {
  await assert.rejects(createTestServer({ plugins: [{ name: 'My_Plugin', ...base } as Plugin] }), /plugin name "My_Plugin" .*is malformed: use lower-case kebab-case/);
  await assert.rejects(createTestServer({ plugins: [{ name: 'v', ...base, version: 'one' } as Plugin] }), /no valid semver version/);
  await assert.rejects(createTestServer({ plugins: [{ name: 'r', ...base, sdk: 'latest!' } as Plugin] }), /not a semver range/);
});

test('refused: an option that collides with the core\'s or another plugin\'s', async () => {
  const a = { name: 'a', ...base, options: [{ name: 'shared-opt', type: 'string', help: 'x' }] } as Plugin;
  const b = { name: 'b', ...base, options: [{ name: 'other', type: 'string', alias: ['shared-opt'], help: 'x' }] } as Plugin;
  await assert.rejects(createTestServer({ plugins: [a, b] }), (e: Error & { code?: string; plugin?: string }) => {
    assert.equal(e.code, 'UW_ERR_PLUGIN_OPTION_COLLISION');
    assert.equal(e.plugin, 'b');
    assert.match(e.message, /plugin `b` declares option --shared-opt, already declared by plugin `a`; rename the option/);
    return true;
  });
  const c = { name: 'c', ...base, options: [{ name: 'processes', type: 'int', help: 'x' }] } as Plugin;
  await assert.rejects(createTestServer({ plugins: [c] }), /--processes, already declared by the core/);
});

test('refused: tapping a hook that does not exist (with a suggestion), or a tap named after another plugin', async () => {
  const typo = definePlugin({ name: 'typo', ...base, setup(api) { (api.hooks as unknown as Record<string, { tap(n: string, f: () => void): void }>).requset!.tap('typo', () => undefined); } });
  await assert.rejects(createTestServer({ plugins: [typo] }), (e: Error & { code?: string; plugin?: string; hook?: string }) => {
    assert.equal(e.code, 'UW_ERR_HOOK_UNKNOWN');
    assert.equal(e.plugin, 'typo');
    assert.equal(e.hook, 'requset');
    assert.match(e.message, /hook "requset", which does not exist in SDK 1\.\d+\.\d+; did you mean request\?/);
    return true;
  });
  const impostor = definePlugin({ name: 'impostor', ...base, setup(api) { api.hooks.finish.tap('http', () => undefined); } });
  await assert.rejects(createTestServer({ plugins: [impostor] }), /tap names must be "impostor" or "impostor:<detail>"/);
});

test('refused: a setup that does not finish within --plugin-timeout', async () => {
  const slow = definePlugin({ name: 'slow', ...base, setup: () => new Promise<void>(() => undefined) });
  const t0 = Date.now();
  await assert.rejects(createTestServer({ plugins: [slow], options: { 'plugin-timeout': '0.2s' } }), (e: Error & { code?: string; plugin?: string }) => {
    assert.equal(e.code, 'UW_ERR_PLUGIN_TIMEOUT');
    assert.equal(e.plugin, 'slow');
    assert.match(e.message, /did not finish setup\(\) within 200 ms \(--plugin-timeout\)/);
    return true;
  });
  assert.ok(Date.now() - t0 < 2000);
});

test('parseResponses handles chunked bodies and Content-Length, back to back', () => {
  const wire = Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno');
  const r = parseResponses(wire);
  assert.deepEqual(r.map((x) => [x.status, x.text]), [[200, 'abcde'], [404, 'no']]);
});

test('listen: true opens the listeners plugins declared (real sockets), close() stops them', async () => {
  const port = await freePort();
  const s = await createTestServer({ plugins: ['http', demo], options: { http: `127.0.0.1:${port}`, 'demo-tag': 'net' }, listen: true, app });
  try {
    assert.deepEqual(s.listeners.map((l) => [l.option, l.protocol, l.address.kind === 'tcp' ? l.address.port : 0]), [['http', 'http', port]]);
    const r = await httpGet(port, '/over-tcp');
    assert.equal(r.body.toString(), 'app:/over-tcp');
    assert.equal(r.headers['x-demo'], 'net');
  } finally { await s.close(); }
  await assert.rejects(httpGet(port, '/'), /ECONNREFUSED/);
});
