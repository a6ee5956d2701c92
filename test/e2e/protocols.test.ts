// Several listeners in one server (--http, --uwsgi-socket on a UNIX socket, --http11-socket), every worker
// serving all of them; the wrong-protocol diagnostics both ways.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { freePort, httpGet, parseResponse, rawRequest, startUwcore, tmpDir, type Running } from '../helpers/server.js';
import { writeProtocolApp } from '../helpers/protocol-app.js';
import { encodePacket } from '../../plugins/uwsgi/index.js';

let srv: Running;
let httpPort: number;
let h11Port: number;
let sock: string;

before(async () => {
  const dir = tmpDir();
  httpPort = await freePort();
  h11Port = await freePort();
  sock = path.join(dir, 'run', 'uwcore', 'app.sock');
  srv = await startUwcore(['--http', `127.0.0.1:${httpPort}`, '--uwsgi-socket', sock, '--http11-socket', `127.0.0.1:${h11Port}`,
    '--app', writeProtocolApp(dir), '--processes', '2', '--master', '--disable-logging']);
});
after(async () => { await srv?.stop(); });

function uwsgiGet(uri: string): Promise<Buffer> {
  const q = uri.indexOf('?');
  return rawRequest(0, encodePacket({
    REQUEST_METHOD: 'GET', REQUEST_URI: uri, PATH_INFO: q < 0 ? uri : uri.slice(0, q), QUERY_STRING: q < 0 ? '' : uri.slice(q + 1),
    SERVER_PROTOCOL: 'HTTP/1.1', CONTENT_LENGTH: '', HTTP_HOST: 'localhost',
  }), { path: sock });
}

test('one server, three listeners, each answered by every worker', async () => {
  const seen = { http: new Set<string>(), http11: new Set<string>(), uwsgi: new Set<string>() };
  for (let round = 0; round < 5; round++) {
    const jobs: Array<Promise<void>> = [];
    for (let i = 0; i < 8; i++) {
      jobs.push(httpGet(httpPort, '/busy?15').then((r) => { seen.http.add(r.body.toString()); }));
      jobs.push(httpGet(h11Port, '/busy?15').then((r) => { seen.http11.add(r.body.toString()); }));
      jobs.push(uwsgiGet('/busy?15').then((r) => { seen.uwsgi.add(parseResponse(r).body.toString()); }));
    }
    await Promise.all(jobs);
    if (seen.http.size === 2 && seen.http11.size === 2 && seen.uwsgi.size === 2) break;
  }
  for (const [name, s] of Object.entries(seen)) {
    assert.deepEqual([...s].sort(), ['worker 1', 'worker 2'], `${name} answered by ${[...s].join(', ')}`);
  }
});

test('keep-alive on --http and --http11-socket, one request per connection on the uwsgi socket', async () => {
  for (const p of [httpPort, h11Port]) {
    const raw = await rawRequest(p, 'GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /echo-path?2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.equal((raw.toString().match(/HTTP\/1\.1 200 OK/g) ?? []).length, 2);
  }
  const u = parseResponse(await uwsgiGet('/echo-path?q=1'));
  assert.equal(u.body.toString(), '/echo-path|q=1|GET');
});

test('wrong protocol both ways: 400 and a hint naming the right option', async () => {
  const onUwsgi = await rawRequest(0, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', { path: sock });
  assert.match(onUwsgi.toString(), /^HTTP\/1\.1 400 /);
  await srv.waitFor(/HTTP request arrived on the uwsgi socket.*--http-socket/);
  const onHttp = await rawRequest(httpPort, encodePacket({ REQUEST_METHOD: 'GET', PATH_INFO: '/' }));
  assert.match(onHttp.toString(), /^HTTP\/1\.1 400 /);
  await srv.waitFor(/uwsgi packet.*--uwsgi-socket/);
  // and both keep serving
  assert.equal((await httpGet(httpPort, '/')).status, 200);
  assert.equal(parseResponse(await uwsgiGet('/')).status, 200);
});

test('TCP_NODELAY: small writes on a kept-alive connection are not delayed by Nagle', async () => {
  const s = net.connect(h11Port, '127.0.0.1');
  try {
    await new Promise((r) => s.once('connect', r));
    let buf = '';
    s.on('data', (d) => (buf += d));
    const times: number[] = [];
    for (let i = 0; i < 9; i++) {
      const t0 = performance.now();
      const before = (buf.match(/0\r\n\r\n/g) ?? []).length;
      s.write('GET /chunked HTTP/1.1\r\nHost: x\r\n\r\n');
      while ((buf.match(/0\r\n\r\n/g) ?? []).length === before) await new Promise((r) => setTimeout(r, 2));
      times.push(performance.now() - t0);
    }
    // the app sleeps 10 ms between its two writes; a Nagle/delayed-ACK stall would add ~40 ms to every
    // response (the median resists a busy shared machine)
    const median = [...times.slice(1)].sort((a, b) => a - b)[4]!;
    assert.ok(median < 35, `streamed responses took ${times.map((t) => t.toFixed(1)).join(', ')} ms`);
  } finally { s.destroy(); }
});

test('SIGTERM lets an in-flight uwsgi request finish, then exits 0', async () => {
  const dir = tmpDir();
  const sock2 = path.join(dir, 'drain.sock');
  const s = await startUwcore(['--uwsgi-socket', sock2, '--app', writeProtocolApp(dir)]);
  const pending = rawRequest(0, encodePacket({ REQUEST_METHOD: 'GET', REQUEST_URI: '/slow?400', PATH_INFO: '/slow', QUERY_STRING: '400', SERVER_PROTOCOL: 'HTTP/1.1' }), { path: sock2 });
  await new Promise((r) => setTimeout(r, 100));
  const code = s.stop('SIGTERM');
  const r = parseResponse(await pending);
  assert.equal(r.status, 200);
  assert.equal(r.body.toString(), 'slow 400');
  assert.equal(await code, 0);
});
