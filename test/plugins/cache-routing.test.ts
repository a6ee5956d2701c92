// Integration with the rest of the server: the `cache` and `cachestore` router actions (through the SDK
// registry with the core's real request context, and end to end once the rule engine exists), the stats
// server's caches[] section, and the seed's example through nginx on a uwsgi socket.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { spawn } from 'node:child_process';
import pino from 'pino';
import type { HeaderList, ListenerInfo, RouteRule, RouterActionFactory, Wire } from '../../sdk/index.js';
import { Server } from '../../core/server.js';
import { Ctx } from '../../core/context.js';
import cachePlugin, { type CacheApi } from '../../plugins/cache/index.js';
import { freePort, httpGet, runUwcore, startUwcore, tmpDir, writeFile } from '../helpers/server.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let helpText: Promise<string> | null = null;
/** Is `--name` an option of this build (uwcore --help lists it)? */
async function knownOption(name: string): Promise<boolean> {
  helpText ??= runUwcore(['--help']).then((r) => r.stdout);
  return new RegExp(`^\\s+(?:-\\w, )?--${name}[ ,]`, 'm').test(await helpText);
}

class FakeWire implements Wire {
  headersSent = false;
  writableEnded = false;
  destroyed = false;
  status = 0;
  headers: HeaderList = [];
  body: Buffer[] = [];
  writeHead(status: number, _reason: string, headers: HeaderList): unknown { this.status = status; this.headers = headers; this.headersSent = true; return this; }
  write(chunk: string | Uint8Array): boolean { this.body.push(Buffer.from(chunk)); return true; }
  end(chunk?: string | Uint8Array): unknown { if (chunk !== undefined) this.write(chunk); this.writableEnded = true; return this; }
  destroy(): unknown { this.destroyed = true; return this; }
  once(): unknown { return this; }
  removeListener(): unknown { return this; }
  header(name: string): string | undefined { return this.headers.find((h) => h[0].toLowerCase() === name)?.[1]; }
}

const LISTENER: ListenerInfo = { option: 'http', protocol: 'http', address: { kind: 'tcp', host: '127.0.0.1', port: 1, raw: ':1' }, keepAlive: true };

test('router actions cache and cachestore (SDK registry, the core\'s request context): store a 200 page with its Content-Type, serve hits; the stats hook', async () => {
  const options = { cache2: ['name=pages,items=10,blocksize=64', 'name=other,items=2'], 'cache-expire-freq': 3, 'cache-store-sync': 1 } as Record<string, unknown>;
  const server = new Server({ options, root: pino({ level: 'silent' }), role: 'single', workerId: 1 });
  await server.setupPlugins([{ plugin: cachePlugin, origin: 'builtin', file: '', requested: 'cache' }], new Map([['cache', ['cache2', 'cache-expire-freq', 'cache-store-sync']]]));
  try {
    assert.deepEqual(cachePlugin.provides?.routerActions, ['cache', 'cachestore', 'cache-store']);
    const rule = { source: 'test', option: 'route', text: 'test', template: () => { throw new Error('unused'); }, regex: (p: string) => new RegExp(p), expand: (t: string, ctx: { env: Record<string, unknown> }) => t.replace(/\$\{(\w+)\}/g, (_, v: string) => String(ctx.env[v] ?? '')) } as unknown as RouteRule;
    const get = server.routerActions.get('cache') as RouterActionFactory;
    const store = server.routerActions.get('cachestore') as RouterActionFactory;
    assert.ok(server.routerActions.get('cache-store'));
    const serve = get('key=${REQUEST_URI},name=pages', rule);
    const keep = store('key=${REQUEST_URI},name=pages,expires=60', rule);
    const req = (uri: string, method = 'GET') => {
      const wire = new FakeWire();
      const env = { REQUEST_METHOD: method, REQUEST_URI: uri, PATH_INFO: uri, QUERY_STRING: '', SERVER_PROTOCOL: 'HTTP/1.1' };
      return { wire, ctx: new Ctx(server, env, new PassThrough() as never, wire, LISTENER) };
    };

    // miss: next; cachestore adds a transform; the app's 200 streams through unchanged and is stored
    let { wire, ctx } = req('/page?a=1');
    assert.equal(await serve(ctx, null), 'next');
    assert.equal(await keep(ctx, null), 'next');
    ctx.start(200, 'OK', [['Content-Type', 'text/html; charset=utf-8']]);
    ctx.write('<p>hello ');
    ctx.write(Buffer.from('world</p>'));
    ctx.end();
    assert.equal(Buffer.concat(wire.body).toString(), '<p>hello world</p>');
    await sleep(5);

    // hit: served with the stored Content-Type, Content-Length and Expires; break
    ({ wire, ctx } = req('/page?a=1'));
    assert.equal(await serve(ctx, null), 'break');
    assert.equal(wire.status, 200);
    assert.equal(wire.header('content-type'), 'text/html; charset=utf-8');
    assert.equal(wire.header('content-length'), '18');
    const exp = Date.parse(wire.header('expires') ?? '');
    assert.ok(exp > Date.now() + 55_000 && exp <= Date.now() + 61_000, wire.header('expires'));
    assert.equal(Buffer.concat(wire.body).toString(), '<p>hello world</p>');
    // only GET/HEAD are served from the cache
    ({ ctx } = req('/page?a=1', 'POST'));
    assert.equal(await serve(ctx, null), 'next');
    // a cached value stored through the API (no Content-Type) is served as application/octet-stream
    // unless content_type= is given; the value read back by the API is the body
    const api = server.apis.get('cache') as CacheApi;
    assert.equal((await api.cache('pages').get('/page?a=1'))?.toString(), '<p>hello world</p>');
    await api.cache('pages').set('/raw', 'bytes');
    ({ wire, ctx } = req('/raw'));
    assert.equal(await serve(ctx, null), 'break');
    assert.equal(wire.header('content-type'), 'application/octet-stream');
    assert.equal(wire.header('expires'), undefined);
    ({ wire, ctx } = req('/raw'));
    assert.equal(await get('key=${REQUEST_URI},name=pages,content_type=text/plain', rule)(ctx, null), 'break');
    assert.equal(wire.header('content-type'), 'text/plain');

    // not stored: a 404, a body larger than blocksize, an empty body
    for (const [uri, status, body] of [['/404', 404, 'nope'], ['/huge', 200, 'x'.repeat(65)], ['/empty', 200, '']] as const) {
      ({ ctx } = req(uri));
      await keep(ctx, null);
      ctx.respond(status, [['Content-Type', 'text/plain']], body);
      await sleep(5);
      assert.equal(await api.cache('pages').exists(uri), false, uri);
    }
    // status=404 stores 404s instead
    ({ ctx } = req('/gone'));
    await store('key=${REQUEST_URI},name=pages,status=404', rule)(ctx, null);
    ctx.respond(404, [['Content-Type', 'text/plain']], 'gone');
    await sleep(5);
    assert.equal((await api.cache('pages').get('/gone'))?.toString(), 'gone');

    // bad rules fail when compiled (at startup), naming the action and the problem
    assert.throws(() => get('name=pages', rule), /router action cache needs key=/);
    assert.throws(() => get('key=x,name=nope', rule), (e: Error & { code?: string }) => e.code === 'UW_ERR_CACHE_UNKNOWN');
    assert.throws(() => store('key=x,colour=red', rule), /router action cachestore: unknown key "colour"/);
    assert.throws(() => store('key=x,expires=soon', rule), /expires=soon is not a number of seconds/);

    // the stats hook (a sync waterfall in the master) adds caches[] after what other plugins added
    const doc = server.hooks.stats.call({ version: 'x', caches: [{ name: 'from-another-plugin' }] }) as { caches: Array<Record<string, unknown>> };
    assert.deepEqual(doc.caches.map((c) => c.name), ['from-another-plugin', 'pages', 'other']);
    const pages = doc.caches[1]!;
    assert.equal(pages.items, 3);
    assert.equal(pages.max_items, 10);
    assert.equal(pages.blocksize, 64);
    assert.ok((pages.hits as number) >= 3 && (pages.miss as number) >= 1, JSON.stringify(pages));
    for (const k of ['full', 'evictions', 'size', 'keysize', 'last_modified_at']) assert.equal(typeof pages[k], 'number', k);
  } finally {
    await server.runClose();
  }
});

const PAGE_APP = `import { cache } from 'uwcore';
export async function application(env, start_response) {
  if (env.PATH_INFO === '/spin') {
    const end = Date.now() + 300; while (Date.now() < end);
    start_response('200 OK', [['Content-Type', 'text/plain']]);
    return [String(process.pid)];
  }
  const n = await cache('counters').inc('renders');
  const body = '<h1>rendered by ' + process.pid + ' (render #' + n + ')</h1>';
  start_response('200 OK', [['Content-Type', 'text/html; charset=utf-8'], ['X-Pid', String(process.pid)]]);
  return [body];
}
`;

test('routing: route = ^/page cache:… and cachestore:… serve a page cached across workers', async (t) => {
  if (!(await knownOption('route'))) { t.skip('the rule engine is not in this build (uwcore --help lists no --route): skipped until the routing branch lands'); return; }
  const dir = tmpDir();
  writeFile(path.join(dir, 'app.js'), PAGE_APP);
  const port = await freePort();
  writeFile(path.join(dir, 'uwsgi.ini'), [
    '[uwsgi]', `http = 127.0.0.1:${port}`, 'wsgi-file = app.js', 'master = true', 'processes = 2', 'disable-logging = true',
    'cache2 = name=pages,items=100', 'cache2 = name=counters,items=10',
    'route = ^/page cache:key=${REQUEST_URI},name=pages',
    'route = ^/page cachestore:key=${REQUEST_URI},name=pages,expires=60', '',
  ].join('\n'));
  const s = await startUwcore(['uwsgi.ini'], { cwd: dir });
  try {
    const first = await httpGet(port, '/page/1');
    assert.equal(first.status, 200);
    assert.match(first.body.toString(), /render #1\)/);
    const renderer = Number(first.headers['x-pid']);
    await sleep(50);
    // ask again while the renderer is busy: the other worker answers from the cache, with the original type
    for (let i = 0; i < 20; i++) {
      const spin = httpGet(port, '/spin');
      await sleep(60);
      const hit = await httpGet(port, '/page/1');
      const spun = await spin;
      assert.equal(hit.status, 200);
      assert.equal(hit.body.toString(), first.body.toString(), 'rendered once, served from the cache');
      assert.equal(hit.headers['content-type'], 'text/html; charset=utf-8');
      assert.ok(hit.headers.expires, 'Expires from the item\'s expiry');
      assert.equal(hit.headers['x-pid'], undefined, 'only the body and its type are cached');
      if (Number(spun.body.toString()) === renderer) return; // the renderer was blocked: the other worker served the hit
    }
    assert.fail('never got the renderer busy while asking again');
  } finally {
    await s.stop();
  }
});

test('stats: the stats server\'s caches[] has items, hits, miss, full, evictions and size', async (t) => {
  if (!(await knownOption('stats'))) { t.skip('the stats server is not in this build (uwcore --help lists no --stats): skipped until the process-model branch lands'); return; }
  const dir = tmpDir();
  writeFile(path.join(dir, 'app.js'), `import { cache } from 'uwcore';
export async function application(env, sr) {
  const c = cache();
  await c.set('a', 'x'); await c.set('b', 'y'); await c.get('a'); await c.get('nope');
  sr('200 OK', [['Content-Type', 'text/plain']]);
  return ['ok'];
}
`);
  const port = await freePort();
  const stats = await freePort();
  const s = await startUwcore(['--http', `127.0.0.1:${port}`, '--app', 'app.js', '--stats', `127.0.0.1:${stats}`, '--cache2', 'name=one,items=1', '--cache2', 'name=two,items=5'], { cwd: dir });
  try {
    assert.equal((await httpGet(port, '/')).status, 200);
    const raw = await new Promise<string>((resolve, reject) => {
      let out = '';
      net.connect(stats, '127.0.0.1').on('data', (d) => (out += d)).on('end', () => resolve(out)).on('error', reject);
    });
    const doc = JSON.parse(raw.slice(raw.indexOf('{'))) as { caches: Array<Record<string, unknown>> };
    assert.equal(doc.caches.length, 2);
    const one = doc.caches[0]!;
    assert.equal(one.name, 'one');
    for (const k of ['items', 'hits', 'miss', 'full', 'evictions', 'size']) assert.equal(typeof one[k], 'number', k);
    assert.equal(one.items, 1);
    assert.equal(one.full, 1);
    assert.equal(one.hits, 1);
    assert.equal(one.miss, 1);
  } finally {
    await s.stop();
  }
});

test('the seed\'s Low Level API example through nginx (uwsgi_pass to uwsgi-socket)', async (t) => {
  if (!(await knownOption('uwsgi-socket'))) { t.skip('the uwsgi protocol is not in this build (uwcore --help lists no --uwsgi-socket): skipped until the protocols branch lands'); return; }
  const dir = tmpDir();
  const up = await freePort();
  const front = await freePort();
  writeFile(path.join(dir, 'uwsgi_module.js'), `import { cache } from 'uwcore';
export async function application(env, start_response) {
  const data = 'Hello World';
  await cache('mycache').set('return_data', data);
  start_response('200 OK', [['Content-Type', 'text/plain'], ['Content-Length', String(data.length)]]);
  return [await cache('mycache').get('return_data')];
}
`);
  writeFile(path.join(dir, 'uwsgi.ini'), `[uwsgi]\nuwsgi-socket = 127.0.0.1:${up}\nwsgi-file = uwsgi_module.js\nprocesses = 2\nthreads = 2\nmaster = true\ncache2 = name=mycache,items=100\n`);
  writeFile(path.join(dir, 'nginx.conf'), `daemon off;\npid ${dir}/nginx.pid;\nerror_log ${dir}/error.log;\nevents {}\nhttp {\n  access_log off;\n  client_body_temp_path ${dir}/t1; proxy_temp_path ${dir}/t2; fastcgi_temp_path ${dir}/t3; uwsgi_temp_path ${dir}/t4; scgi_temp_path ${dir}/t5;\n  server {\n    listen 127.0.0.1:${front};\n    location / { include /etc/nginx/uwsgi_params; uwsgi_pass 127.0.0.1:${up}; }\n  }\n}\n`);
  const s = await startUwcore(['uwsgi.ini'], { cwd: dir });
  const ngx = spawn('nginx', ['-p', dir, '-c', path.join(dir, 'nginx.conf')], { stdio: 'ignore' });
  try {
    let r = await httpGet(front, '/').catch(() => null);
    for (let i = 0; i < 50 && r === null; i++) { await sleep(100); r = await httpGet(front, '/').catch(() => null); }
    for (let i = 0; i < 4; i++) {
      r = await httpGet(front, '/');
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-type'], 'text/plain');
      assert.equal(r.body.toString(), 'Hello World');
    }
  } finally {
    ngx.kill('SIGTERM');
    await s.stop();
  }
});
