// The plugin's own tests: the real uwcore core in this process, driven through uwcore/sdk/testing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createTestServer, inject } from 'uwcore/sdk/testing';
import type { RequestContext } from 'uwcore/sdk';
import hello, { type HelloApi } from '../index.js';

function app(env: Record<string, unknown>, startResponse: (s: string, h: Array<[string, string]>) => void): string[] {
  startResponse('200 OK', [['Content-Type', 'text/plain']]);
  return [`app saw ${String(env.PATH_INFO)}`];
}

test('--hello-header adds the header to every response, the app runs as before', async () => {
  const server = await createTestServer({ plugins: [hello], options: { 'hello-header': ['X-Hello=1', 'X-Two: two'] }, app });
  try {
    const r = await server.request('GET', '/anything');
    assert.equal(r.status, 200);
    assert.equal(r.text, 'app saw /anything');
    assert.equal(r.headers['x-hello'], '1');
    assert.equal(r.headers['x-two'], 'two');
  } finally { await server.close(); }
});

test('/hello answers on the request hook, before the application', async () => {
  const server = await createTestServer({ plugins: [hello], options: { 'hello-text': 'Hi' }, app });
  try {
    const r = await inject(server, 'GET /hello?name=J%C3%BCrgen HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.equal(r.status, 200);
    assert.equal(r.text, 'Hi, Jürgen!\n');
    assert.equal(r.headers['content-type'], 'text/plain; charset=utf-8');
    const other = await server.request('GET', '/hello/not');
    assert.equal(other.text, 'app saw /hello/not');
    const post = await server.request('POST', '/hello', { body: 'x' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, 'GET, HEAD');
  } finally { await server.close(); }
});

test('the hello: router action is registered and answers with its expanded argument', async () => {
  const server = await createTestServer({ plugins: [hello], app });
  try {
    const factory = server.routerActions.get('hello');
    assert.ok(factory, 'hello: is registered');
    const rule = { source: 'test', option: 'route', text: 'route = ^/hi/(.+)$ hello:$1', expand: (t: string, _c: unknown, m: RegExpExecArray | null) => t.replace('$1', m?.[1] ?? ''), template: () => { throw new Error('unused'); }, regex: (p: string) => new RegExp(p) };
    const action = factory('$1', rule as unknown as Parameters<typeof factory>[1]);
    let sent: { status: number; body: unknown } | undefined;
    const ctx = { env: { REQUEST_METHOD: 'GET' }, respond: (status: number, _h: unknown, body: unknown) => { sent = { status, body }; } } as unknown as RequestContext;
    assert.equal(await action(ctx, /^\/hi\/(.+)$/.exec('/hi/Ann')), 'break');
    assert.deepEqual(sent, { status: 200, body: 'Hello, Ann!\n' });
    assert.equal(server.api<HelloApi>('hello').greet('Bo'), 'Hello, Bo!\n');
  } finally { await server.close(); }
});

test('a malformed --hello-header stops startup naming the option', async () => {
  await assert.rejects(createTestServer({ plugins: [hello], options: { 'hello-header': 'no equals sign' } }), (e: Error & { code?: string; plugin?: string }) => {
    assert.match(e.message, /--hello-header/);
    assert.equal(e.plugin, 'hello');
    return true;
  });
});
