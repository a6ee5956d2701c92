// The static plugin must never read outside its roots: traversal in every encoding, NUL bytes,
// backslashes, absolute paths, symlinks out (unless into --static-safe) and sibling directories that share
// the root's name as a prefix (/srv/www vs /srv/www-private). Raw bytes over real sockets.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { freePort, startUwcore, tmpDir, writeFile, rawRequest, parseResponse, type Running } from '../helpers/server.js';

const APP = `export function application(env, start_response) {
  const b = 'APP ' + env.PATH_INFO + '\\n';
  start_response('404 Not Found', [['Content-Type', 'text/plain'], ['Content-Length', String(Buffer.byteLength(b))]]);
  return [b];
}
`;

describe('static: no way out of the roots', () => {
  let srv: Running;
  let port: number;
  let dir: string;

  before(async () => {
    dir = tmpDir('uwcore-static-sec-');
    port = await freePort();
    const s = path.join(dir, 'srv');
    writeFile(path.join(s, 'www/ok.txt'), 'ok\n');
    writeFile(path.join(s, 'www/sub/inner.txt'), 'inner\n');
    fs.mkdirSync(path.join(s, 'www/listme'));
    writeFile(path.join(s, 'www/listme/visible-name.txt'), 'x');
    writeFile(path.join(s, 'www-private/x.txt'), 'SECRET-SIBLING\n');
    writeFile(path.join(s, 'www2/secret.txt'), 'SECRET-WWW2\n');
    writeFile(path.join(s, 'outside.txt'), 'SECRET-OUTSIDE\n');
    writeFile(path.join(s, 'safe/allowed.txt'), 'allowed via static-safe\n');
    writeFile(path.join(s, 'safe-private/no.txt'), 'SECRET-SAFE-SIBLING\n');
    fs.symlinkSync('../outside.txt', path.join(s, 'www/link-out'));
    fs.symlinkSync('../www-private/x.txt', path.join(s, 'www/link-sibling'));
    fs.symlinkSync('../www-private', path.join(s, 'www/dir-sibling'));
    fs.symlinkSync('ok.txt', path.join(s, 'www/link-in'));
    fs.symlinkSync('../safe/allowed.txt', path.join(s, 'www/link-safe'));
    fs.symlinkSync('../safe', path.join(s, 'www/dir-safe'));
    fs.symlinkSync('../safe-private/no.txt', path.join(s, 'www/link-safe-sibling'));
    fs.symlinkSync('/etc/passwd', path.join(s, 'www/passwd'));
    writeFile(path.join(dir, 'app.js'), APP);
    writeFile(path.join(dir, 'u.ini'), `[uwcore]
http = 127.0.0.1:${port}
app = app.js
check-static = srv/www
static-map = /s=srv/www
static-map = /f=srv/www/ok.txt
static-safe = srv/safe
`);
    srv = await startUwcore(['u.ini'], { cwd: dir });
  });
  after(async () => { await srv?.stop(); fs.rmSync(dir, { recursive: true, force: true }); });

  async function get(target: string): Promise<ReturnType<typeof parseResponse>> {
    const raw = await rawRequest(port, `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    return parseResponse(raw);
  }

  const attacks = [
    '/%2e%2e/www-private/x.txt', '/%2E%2E/www-private/x.txt', '/.%2e/www-private/x.txt', '/%2e./outside.txt',
    '/..%2fwww-private%2fx.txt', '/%2e%2e%2f%2e%2e%2foutside.txt', '/sub/%2e%2e/%2e%2e/outside.txt',
    '/s/%2e%2e/www2/secret.txt', '/s/%2e%2e/www-private/x.txt', '/s/../www2/secret.txt', '/s/..%2fwww2/secret.txt',
    '/%252e%252e/outside.txt', '/%252e%252e%252foutside.txt', '/%c0%ae%c0%ae/outside.txt', '/%c0%ae%c0%ae%c0%afoutside.txt',
    '/%e0%80%ae%e0%80%ae/outside.txt', '/..%c0%afoutside.txt', '/..%5coutside.txt', '/%5c..%5coutside.txt', '/..\\outside.txt',
    '/sub\\..\\..\\outside.txt', '/ok.txt%00', '/%00../outside.txt', '/..%00/outside.txt', '//etc/passwd', '/etc/passwd',
    '/%2fetc%2fpasswd', '/passwd', '/link-out', '/link-sibling', '/dir-sibling/x.txt', '/link-safe-sibling',
    '/s/link-sibling', '/s/dir-sibling/x.txt', '/f/../outside.txt', '/f/%2e%2e/outside.txt',
    'http://x/%2e%2e/outside.txt', '/../../../../../../etc/passwd', '/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd',
    '/s%2f..%2foutside.txt', '/./../outside.txt', '/sub/./../../outside.txt',
  ];

  it('every traversal, encoding, NUL, backslash, absolute path and symlink attempt stays inside', async () => {
    for (const a of attacks) {
      const r = await get(a);
      const text = r.raw.toString('latin1');
      assert.doesNotMatch(text, /SECRET/, `${a} leaked: ${text}`);
      assert.doesNotMatch(text, /root:x?:0:0/, `${a} leaked /etc/passwd`);
      assert.ok(r.status === 404 || r.status === 400, `${a}: status ${r.status}`);
    }
  });

  it('the sibling-prefix case uWSGI gets wrong: /srv/www does not serve /srv/www-private', async () => {
    const r = await get('/link-sibling');
    assert.equal(r.status, 404);
    assert.equal(r.body.toString(), 'APP /link-sibling\n');
    const r2 = await get('/dir-sibling/x.txt');
    assert.equal(r2.body.toString(), 'APP /dir-sibling/x.txt\n');
  });

  it('inside the roots, and symlinks into --static-safe, are served', async () => {
    assert.equal((await get('/ok.txt')).body.toString(), 'ok\n');
    assert.equal((await get('/link-in')).body.toString(), 'ok\n');
    assert.equal((await get('/s/ok.txt')).body.toString(), 'ok\n');
    assert.equal((await get('/s/sub/inner.txt')).body.toString(), 'inner\n');
    assert.equal((await get('/sub/../ok.txt')).body.toString(), 'ok\n', 'literal dot segments are resolved by the parser');
    assert.equal((await get('/%6fk.txt')).body.toString(), 'ok\n', 'percent-encoded ordinary characters are fine');
    assert.equal((await get('/f')).body.toString(), 'ok\n');
    assert.equal((await get('/link-safe')).body.toString(), 'allowed via static-safe\n');
    assert.equal((await get('/dir-safe/allowed.txt')).body.toString(), 'allowed via static-safe\n');
  });

  it('directories are never listed', async () => {
    for (const p of ['/', '/listme', '/listme/', '/s/listme/', '/sub/']) {
      const r = await get(p);
      assert.equal(r.status, 404, p);
      assert.doesNotMatch(r.body.toString(), /visible-name|inner\.txt/, p);
    }
  });

  it('the server keeps serving after all of it', async () => {
    assert.equal((await get('/ok.txt')).status, 200);
  });
});
