// nginx in the loop: uwsgi_pass with the stock uwsgi_params to uwcore's --uwsgi-socket (TCP and UNIX socket).
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { freePort, httpGet, ROOT, startUwcore, tmpDir, writeFile, type Running } from '../helpers/server.js';
import { writeProtocolApp } from '../helpers/protocol-app.js';
import { findNginx, NGINX_MISSING, startNginx, type Nginx } from '../helpers/nginx.js';

const skip = findNginx() ? false : NGINX_MISSING;
let uw: Running;
let ngx: Nginx;

before(async () => {
  if (skip) return;
  const dir = tmpDir();
  const port = await freePort();
  const sock = path.join(dir, 'uwcore.sock');
  uw = await startUwcore(['--uwsgi-socket', `127.0.0.1:${port}`, '--uwsgi-socket', sock, '--app', writeProtocolApp(dir), '--processes', '2', '--master']);
  ngx = await startNginx({ '/': `127.0.0.1:${port}`, '/unix/': `unix:${sock}` });
});
after(async () => { await ngx?.stop(); await uw?.stop(); });

describe('nginx → uwcore over uwsgi_pass', { skip }, () => {
  test('the seed\'s Hello World through nginx', async () => {
    const r = await httpGet(ngx.port, '/');
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), 'Hello World');
    assert.match(r.headers.server ?? '', /nginx/);
    assert.equal(r.headers['content-length'], '11');
  });

  test('a 25 MB POST arrives intact', async () => {
    const body = crypto.randomBytes(25 * 1024 * 1024);
    const r = await new Promise<string>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: ngx.port, method: 'POST', path: '/body', headers: { 'Content-Length': body.length, 'Content-Type': 'application/octet-stream' } }, (res) => {
        let t = '';
        res.on('data', (d) => (t += d));
        res.on('end', () => resolve(`${res.statusCode} ${t}`));
      });
      req.on('error', reject);
      req.end(body);
    });
    assert.equal(r, `200 ${body.length} ${crypto.createHash('sha256').update(body).digest('hex')} content-length=${body.length}`);
  });

  test('a streamed response (no Content-Length) reaches the client whole', async () => {
    const r = await httpGet(ngx.port, '/stream');
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), 'chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n');
  });

  test('a response the application frames as chunked reaches the client de-framed once', async () => {
    const r = await httpGet(ngx.port, '/chunked');
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), 'hello world');
  });

  test('a 20 MB download streams through nginx with backpressure', async () => {
    const r = await new Promise<{ status: number; n: number; bad: number }>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: ngx.port, path: '/big?320' }, (res) => {
        let n = 0;
        let bad = 0;
        res.on('data', (d: Buffer) => { n += d.length; if (d.indexOf(0) >= 0) bad++; });
        res.on('end', () => resolve({ status: res.statusCode!, n, bad }));
      }).on('error', reject);
    });
    assert.deepEqual(r, { status: 200, n: 320 * 65536, bad: 0 });
  });

  test('HEAD: headers, no body', async () => {
    const r = await httpGet(ngx.port, '/', {}, 'HEAD');
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-length'], '11');
    assert.equal(r.body.length, 0);
  });

  test('query string and non-ASCII path', async () => {
    const q = await httpGet(ngx.port, '/echo-path?a=1&b=%C3%A9');
    assert.equal(q.body.toString(), '/echo-path|a=1&b=%C3%A9|GET');
    const env = JSON.parse((await httpGet(ngx.port, '/env?x=1')).body.toString()) as Record<string, string>;
    assert.equal(env.QUERY_STRING, 'x=1');
    assert.equal(env.REQUEST_URI, '/env?x=1');
    assert.equal(env.REQUEST_METHOD, 'GET');
    assert.equal(env.SERVER_PROTOCOL, 'HTTP/1.1');
    assert.equal(env.HTTP_HOST, `127.0.0.1:${ngx.port}`);
    const u = await httpGet(ngx.port, '/caf%C3%A9/%E2%9C%93');
    assert.equal(u.status, 200);
    const e2 = JSON.parse((await httpGet(ngx.port, '/env/caf%C3%A9')).body.toString()) as Record<string, string>;
    assert.equal(e2.PATH_INFO, '/env/café');
    assert.equal(e2.REQUEST_URI, '/env/caf%C3%A9');
  });

  test('UNIX socket', async () => {
    const r = await httpGet(ngx.port, '/unix/x?y=2');
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), 'Hello World');
    const env = JSON.parse((await httpGet(ngx.port, '/env')).body.toString()) as Record<string, string>;
    assert.ok(env.REMOTE_ADDR);
  });

  test('nginx logged no upstream errors', () => {
    assert.doesNotMatch(ngx.errorLog(), /\[(error|crit|alert|emerg)\]/);
  });
});

test('examples/nginx: the site config and the ini work as shipped (ports and socket path substituted)', { skip }, async () => {
  const dir = tmpDir();
  const ex = path.join(ROOT, 'examples/nginx');
  const upPort = await freePort();
  const sitePort = await freePort();
  const sock = path.join(dir, 'run', 'app.sock');
  const ini = fs.readFileSync(path.join(ex, 'uwcore.ini'), 'utf8')
    .replace(/^uwsgi-socket = 127.0.0.1:8087$/m, `uwsgi-socket = 127.0.0.1:${upPort}`).replace(/^uwsgi-socket = \/run\/uwcore\/app.sock$/m, `uwsgi-socket = ${sock}`).replace('wsgi-file = app.js', `wsgi-file = ${path.join(ex, 'app.js')}`);
  writeFile(path.join(dir, 'uwcore.ini'), ini);
  const site = (unix: boolean) => fs.readFileSync(path.join(ex, 'uwcore-site.conf'), 'utf8')
    .replace('listen 9898;', `listen 127.0.0.1:${sitePort};`).replace('listen [::]:9898;', '')
    .replace('server 127.0.0.1:8087;', unix ? `# tcp` : `server 127.0.0.1:${upPort};`)
    .replace('# server unix:/run/uwcore/app.sock;', unix ? `server unix:${sock};` : '');
  const u = await startUwcore([path.join(dir, 'uwcore.ini')]);
  try {
    for (const unix of [false, true]) {
      const n = await startNginx({}, { extra: site(unix) });
      try {
        const r = await httpGet(sitePort, '/');
        assert.equal(`${unix ? 'UNIX' : 'TCP'} ${r.status}`, `${unix ? 'UNIX' : 'TCP'} 200`, n.errorLog());
        assert.equal(r.body.toString(), 'Hello World');
      } finally { await n.stop(); }
    }
  } finally { await u.stop(); }
});
