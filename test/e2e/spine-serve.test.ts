// End to end over real sockets: the hello app, the seed's command and ini, the app contract, errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { freePort, httpGet, rawRequest, ROOT, startUwcore, tmpDir, writeFile, parseResponse } from '../helpers/server.js';

test('npm start\'s command serves examples/hello: 200, text/plain, Content-Length 11, Hello World', async () => {
  const port = await freePort();
  const s = await startUwcore(['--http', `127.0.0.1:${port}`, '--app', 'examples/hello/app.js']);
  try {
    const r = await httpGet(port, '/');
    assert.match(r.raw.toString('latin1'), /^HTTP\/1\.1 200 OK\r\n/);
    assert.equal(r.headers['content-type'], 'text/plain');
    assert.equal(r.headers['content-length'], '11');
    assert.equal(r.body.toString(), 'Hello World');
    // one access-log line per request, as JSON (stdout is not a terminal)
    await s.waitFor(/"msg":"GET \/ => 200"/);
    const line = s.logs().find((l) => l.msg === 'GET / => 200')!;
    assert.equal(line.status, 200);
    assert.equal(line.bytes, 11);
    assert.match(s.output(), /Starting uwcore/);
  } finally {
    assert.equal(await s.stop(), 0);
  }
});

test('the seed\'s first command: --http :PORT --wsgi-file ... --master --processes 2 --threads 2, and --callable app', async () => {
  const port = await freePort();
  const s = await startUwcore(['--http', `:${port}`, '--wsgi-file', 'examples/hello/app.js', '--master', '--processes', '2', '--threads', '2']);
  try {
    assert.match(s.output(), /spawned uwcore worker 1 \(pid: \d+/);
    assert.match(s.output(), /spawned uwcore worker 2 \(pid: \d+/);
    assert.match(s.output(), /2 processes x 2 threads/);
    for (let i = 0; i < 6; i++) {
      const r = await httpGet(port, '/');
      assert.equal(r.status, 200);
      assert.equal(r.body.toString(), 'Hello World');
    }
  } finally {
    assert.equal(await s.stop(), 0);
  }
  const port2 = await freePort();
  const s2 = await startUwcore(['--http', `:${port2}`, '--wsgi-file', 'examples/hello/app-callable.js', '--callable', 'app', '--master', '--processes', '2']);
  try {
    assert.equal((await httpGet(port2, '/')).body.toString(), 'Hello World');
  } finally {
    await s2.stop();
  }
});

test('the seed\'s ini file as written (http = PORT is TCP), [uwcore] sections, --ini file:section, two listeners', async () => {
  const dir = tmpDir();
  fs.copyFileSync(path.join(ROOT, 'examples/hello/app.js'), path.join(dir, 'wsgi_test.js'));
  const port = await freePort();
  writeFile(path.join(dir, 'uwsgi-config.ini'), `[uwsgi]\nhttp = ${port}\nwsgi-file = wsgi_test.js\nprocesses = 2\nthreads = 2\nmaster = true\n`);
  const s = await startUwcore(['./uwsgi-config.ini'], { cwd: dir });
  try {
    assert.equal((await httpGet(port, '/')).body.toString(), 'Hello World');
  } finally {
    await s.stop();
  }
  const [p1, p2] = [await freePort(), await freePort()];
  writeFile(path.join(dir, 'multi.ini'), `[uwsgi]\nhttp = :1\n[staging]\nbase = 127.0.0.1\nhttp = %(base):${p1}\nhttp = %(base):${p2}\nwsgi-file = %dwsgi_test.js\nenv = GREETING=$(HOME)\n`);
  const s2 = await startUwcore(['--ini', `${path.join(dir, 'multi.ini')}:staging`]);
  try {
    assert.equal((await httpGet(p1, '/')).body.toString(), 'Hello World');
    assert.equal((await httpGet(p2, '/')).body.toString(), 'Hello World');
  } finally {
    await s2.stop();
  }
  const p3 = await freePort();
  writeFile(path.join(dir, 'both.ini'), `[uwsgi]\nhttp = :1\n[uwcore]\nhttp = 127.0.0.1:${p3}\nwsgi-file = wsgi_test.js\n`);
  const s3 = await startUwcore([path.join(dir, 'both.ini')], { env: { UWCORE_PROCESSES: '2' } });
  try {
    assert.equal((await httpGet(p3, '/')).body.toString(), 'Hello World');
    assert.match(s3.output(), /2 processes x 1 thread/);
  } finally {
    await s3.stop();
  }
});

test('no application: 404 saying so, one startup warning', async () => {
  const port = await freePort();
  const s = await startUwcore(['--plugins', 'http', '--http', `127.0.0.1:${port}`]);
  try {
    const r = await httpGet(port, '/anything');
    assert.equal(r.status, 404);
    assert.match(r.body.toString(), /no application is mounted/);
    assert.equal(s.logs().filter((l) => l.level === 40 && /no application mounted/.test(String(l.msg))).length, 1);
  } finally {
    await s.stop();
  }
});

const CONTRACT_APP = `
import fs from 'node:fs';
import { worker } from 'uwcore';
let n = 0;
export function application(env, sr) {
  const p = env.PATH_INFO;
  if (p === '/throw') throw new Error('boom');
  if (p === '/reject') return Promise.reject(new Error('rejected'));
  if (p === '/bad') { sr('200 OK', []); return 42; }
  if (p === '/baditem') { sr('200 OK', []); return [{}]; }
  if (p === '/twice') { sr('200 OK', []); sr('200 OK', []); return ['x']; }
  if (p === '/badheader') { sr('200 OK', [['X-Bad', 'a\\r\\nb']]); return ['x']; }
  if (p === '/badstatus') { sr('OK', []); return ['x']; }
  if (p === '/cl') { sr('200 OK', [['Content-Length', '5']]); return ['abc']; }
  if (p === '/exc') {
    sr('200 OK', [['Content-Type', 'text/plain']]);
    try { throw new Error('late'); } catch (e) { sr('503 Busy', [['Content-Type', 'text/plain']], [Error, e]); }
    return ['busy'];
  }
  if (p === '/write') { const w = sr('200 OK', [['Content-Type', 'text/plain']]); w('legacy '); w(Buffer.from('write ')); return ['and iterable']; }
  if (p === '/async') return (async () => { sr('201 Created', [['Content-Type', 'text/plain']]); return (async function* () { yield 'a'; yield Buffer.from('b'); yield ''; yield new Uint8Array([99]); })(); })();
  if (p === '/gen') { sr('200 OK', [['Content-Type', 'text/plain']]); return (function* () { yield 'line 1\\n'; yield 'line 2\\n'; })(); }
  if (p === '/empty') { sr('204 No Content', []); return []; }
  if (p === '/slow') {
    sr('200 OK', [['Content-Type', 'text/plain']]);
    const it = { i: 0, closed: false,
      [Symbol.asyncIterator]() { return this; },
      async next() { await new Promise((r) => setTimeout(r, 100)); return this.i++ < 100 ? { value: 'tick\\n', done: false } : { value: undefined, done: true }; },
      close() { fs.writeFileSync(process.env.CLOSE_MARK, 'closed'); } };
    return it;
  }
  if (p === '/echo') return (async () => {
    const input = env['wsgi.input'];
    const first = await input.read(3);
    const line = await input.readline();
    const chunks = [];
    for await (const c of input) chunks.push(c);
    sr('200 OK', [['Content-Type', 'application/octet-stream'], ['X-Had-CL', String('CONTENT_LENGTH' in env)]]);
    return [first, '|', line, '|', Buffer.concat(chunks)];
  })();
  if (p === '/readall') return (async () => { const b = await env['wsgi.input'].read(); sr('200 OK', []); return [String(b.length)]; })();
  if (p.startsWith('/env')) {
    sr('200 OK', [['Content-Type', 'application/json']]);
    const o = {};
    for (const [k, v] of Object.entries(env)) if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') o[k] = v;
    o.worker = worker.id; o.envvar = process.env.GREETING ?? null; o.cwd = process.cwd();
    return [JSON.stringify(o)];
  }
  sr('200 OK', [['Content-Type', 'text/plain']]);
  return ['ok ' + (++n)];
}
`;

test('the application contract: env, wsgi.input, bodies of every shape, errors give 500 and the next request is served', async () => {
  const dir = tmpDir('uwcore-bare-');
  writeFile(path.join(dir, 'app.js'), CONTRACT_APP); // a bare directory: no package.json, no node_modules
  const mark = path.join(dir, 'closed.txt');
  const port = await freePort();
  const s = await startUwcore(['--http', `127.0.0.1:${port}`, '--app', 'app.js', '--env', 'GREETING=hi', '--chdir', dir], { env: { CLOSE_MARK: mark } });
  try {
    for (const p of ['/throw', '/reject', '/bad', '/baditem', '/twice', '/badheader', '/badstatus', '/cl']) {
      const r = await httpGet(port, p);
      assert.equal(r.status, 500, p);
      assert.equal(r.body.toString(), 'Internal Server Error\n');
      assert.equal((await httpGet(port, '/')).status, 200, `served after ${p}`);
    }
    const errs = s.logs().filter((l) => l.level === 50);
    assert.ok(errs.some((l) => l.code === 'UW_ERR_APP_THREW' && l.plugin === 'app' && l.hook === 'handle' && /boom/.test(JSON.stringify(l.err))), 'stack logged with code/plugin/hook');
    assert.ok(errs.some((l) => /start_response\(\) was called a second time/.test(String(l.msg))));
    let r = await httpGet(port, '/exc');
    assert.equal(r.status, 503);
    assert.equal(r.body.toString(), 'busy');
    r = await httpGet(port, '/write');
    assert.equal(r.body.toString(), 'legacy write and iterable');
    r = await httpGet(port, '/async');
    assert.equal(r.status, 201);
    assert.equal(r.body.toString(), 'abc');
    assert.equal(r.headers['transfer-encoding'], 'chunked');
    r = await httpGet(port, '/gen');
    assert.equal(r.body.toString(), 'line 1\nline 2\n');
    r = await httpGet(port, '/empty');
    assert.equal(r.status, 204);
    // HTTP/1.0 without keep-alive: close-delimited body, no chunking
    const raw10 = (await rawRequest(port, 'GET /gen HTTP/1.0\r\n\r\n')).toString();
    assert.match(raw10, /^HTTP\/1\.1 200 OK/);
    assert.doesNotMatch(raw10, /Transfer-Encoding/i);
    assert.match(raw10, /\r\n\r\nline 1\nline 2\n$/);
    // wsgi.input: read(n), readline(), async iteration; Content-Length body and chunked body
    r = await httpGet(port, '/echo', { 'Content-Type': 'text/plain' }, 'POST', 'abcdef\nrest of body');
    assert.equal(r.body.toString(), 'abc|def\n|rest of body');
    assert.equal(r.headers['x-had-cl'], 'true');
    const chunkedReq = `POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n5\r\nef\nxy\r\n0\r\n\r\n`;
    r = parseResponse(await rawRequest(port, chunkedReq));
    assert.equal(r.body.toString(), 'abc|def\n|xy');
    assert.equal(r.headers['x-had-cl'], 'false', 'CONTENT_LENGTH absent while the body is chunked');
    const big = Buffer.alloc(3 * 1024 * 1024, 120);
    r = await httpGet(port, '/readall', {}, 'POST', big);
    assert.equal(r.body.toString(), String(big.length));
    // env
    r = await httpGet(port, '/env/%C3%A9t%C3%A9?a=1&b=%20', { 'X-Foo': '1', 'User-Agent': 'test' });
    const env = JSON.parse(r.body.toString()) as Record<string, unknown>;
    assert.equal(env.REQUEST_METHOD, 'GET');
    assert.equal(env.PATH_INFO, '/env/été');
    assert.equal(env.REQUEST_URI, '/env/%C3%A9t%C3%A9?a=1&b=%20');
    assert.equal(env.QUERY_STRING, 'a=1&b=%20');
    assert.equal(env.SERVER_PROTOCOL, 'HTTP/1.1');
    assert.equal(env.SERVER_PORT, String(port));
    assert.equal(env.SERVER_NAME, '127.0.0.1');
    assert.equal(env.REMOTE_ADDR, '127.0.0.1');
    assert.equal(env.HTTP_X_FOO, '1');
    assert.equal(env.HTTP_USER_AGENT, 'test');
    assert.equal(env.SCRIPT_NAME, '');
    assert.equal(env['wsgi.url_scheme'], 'http');
    assert.equal(env['uwcore.worker_id'], 1);
    assert.equal(env.worker, 1);
    assert.equal(env.envvar, 'hi');
    assert.equal(fs.realpathSync(String(env.cwd)), fs.realpathSync(dir));
    const dup = parseResponse(await rawRequest(port, 'GET /env HTTP/1.1\r\nHost: x\r\nX-Foo: 1\r\nX-Foo: 2\r\nX_Foo: spoof\r\nConnection: close\r\n\r\n'));
    assert.equal((JSON.parse(dup.body.toString()) as Record<string, string>).HTTP_X_FOO, '1, 2');
    // a client that disconnects mid-response: close() is still called and the server keeps serving
    await new Promise<void>((resolve) => {
      const c = net.connect(port, '127.0.0.1', () => c.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\n'));
      c.once('data', () => { c.destroy(); resolve(); });
    });
    for (let i = 0; i < 50 && !fs.existsSync(mark); i++) await new Promise((res) => setTimeout(res, 50));
    assert.equal(fs.readFileSync(mark, 'utf8'), 'closed');
    assert.equal((await httpGet(port, '/')).status, 200);
  } finally {
    assert.equal(await s.stop(), 0);
  }
});

test('CommonJS apps, require(\'uwcore\'), module.exports as the callable; --disable-logging and --logto', async () => {
  const dir = tmpDir('uwcore-cjs-');
  writeFile(path.join(dir, 'app.cjs'), "const { worker } = require('uwcore');\nmodule.exports = function (env, sr) { sr('200 OK', [['Content-Type', 'text/plain']]); return ['cjs worker ' + worker.id]; };\n");
  const log = path.join(dir, 'logs', 'uwcore.log');
  const port = await freePort();
  const s = await startUwcore(['--http', `127.0.0.1:${port}`, '--app', path.join(dir, 'app.cjs'), '--disable-logging', '--logto', log], { ready: null });
  try {
    for (let i = 0; i < 100 && !(fs.existsSync(log) && /uwcore is ready/.test(fs.readFileSync(log, 'utf8'))); i++) await new Promise((r) => setTimeout(r, 50));
    const r = await httpGet(port, '/x');
    assert.equal(r.body.toString(), 'cjs worker 1');
  } finally {
    assert.equal(await s.stop(), 0);
  }
  const text = fs.readFileSync(log, 'utf8');
  assert.match(text, /uwcore is ready/);
  assert.doesNotMatch(text, /GET \/x/, 'no access log with --disable-logging');
  assert.equal(s.output(), '', 'nothing on stdout with --logto');
});

test('--http-socket answers one request per connection with Connection: close', async () => {
  const port = await freePort();
  const s = await startUwcore(['--http-socket', `127.0.0.1:${port}`, '--app', 'examples/hello/app.js']);
  try {
    const raw = (await rawRequest(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', { idleMs: 3000 })).toString();
    assert.match(raw, /^HTTP\/1\.1 200 OK/);
    assert.match(raw, /Connection: close/i);
    assert.match(raw, /Hello World$/);
  } finally {
    await s.stop();
  }
});

test('SIGTERM stops gracefully: an in-flight request finishes, the pidfile is removed, exit 0', async () => {
  const dir = tmpDir();
  writeFile(path.join(dir, 'slow.js'), "export async function application(env, sr) { await new Promise((r) => setTimeout(r, 700)); sr('200 OK', [['Content-Type', 'text/plain']]); return ['done']; }\n");
  const pid = path.join(dir, 'uw.pid');
  const port = await freePort();
  const s = await startUwcore(['--http', `127.0.0.1:${port}`, '--app', path.join(dir, 'slow.js'), '--master', '--pidfile', pid]);
  assert.equal(fs.readFileSync(pid, 'utf8').trim(), String(s.proc.pid));
  const pending = httpGet(port, '/');
  await new Promise((r) => setTimeout(r, 200));
  const code = s.stop('SIGTERM');
  const r = await pending;
  assert.equal(r.status, 200);
  assert.equal(r.body.toString(), 'done');
  assert.equal(await code, 0);
  assert.equal(fs.existsSync(pid), false);
  assert.match(s.output(), /SIGTERM received: stopping gracefully/);
});
