// Third-party plugins through the real CLI: the example package uwcore-plugin-hello loaded from a project's
// node_modules, from --plugins-dir and from a path (the same loader path as any package), its own tests,
// the routing action (when the rule engine is present), and a scaffolded plugin that builds and passes its test.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, freePort, httpGet, runUwcore, startUwcore, tmpDir, writeFile } from '../helpers/server.js';
import { buildExample, installInto, linkDevDeps } from './plugins-fixture.js';

let pkg = '';
// a nested node --test must report on its own (not to this runner) and npm must not look for updates
const childEnv = { ...process.env, NODE_TEST_CONTEXT: undefined, npm_config_update_notifier: 'false', npm_config_fund: 'false' };
before(() => { pkg = buildExample(); });

function project(): { dir: string; app: string } {
  const dir = tmpDir('uwcore-hello-proj-');
  const app = writeFile(path.join(dir, 'app.js'), fs.readFileSync(path.join(ROOT, 'examples/hello/app.js'), 'utf8'));
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'proj', private: true, type: 'module' }));
  return { dir, app };
}

test('the example package passes its own tests (its npm test, after the build above)', () => {
  const r = spawnSync(process.execPath, ['--test', 'dist/test/hello.test.js'], { cwd: pkg, env: childEnv, encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /# pass 4/);
  assert.match(r.stdout, /# fail 0/);
});

test('its exports resolve for both require and import', () => {
  const { dir } = project();
  const installed = installInto(pkg, path.join(dir, 'node_modules'));
  const viaRequire = createRequire(path.join(dir, 'x.js')).resolve('uwcore-plugin-hello');
  assert.equal(viaRequire, path.join(installed, 'dist/index.js'));
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', "console.log(import.meta.resolve('uwcore-plugin-hello'))"], { cwd: dir, encoding: 'utf8' });
  assert.equal(r.stdout.trim(), 'file://' + path.join(installed, 'dist/index.js'));
  assert.ok(!fs.existsSync(path.join(installed, 'dist/test')), 'tests are not part of the installed package');
});

test('installed in node_modules: uwcore --plugins hello --hello-header X-Hello=1 adds the header and answers /hello', async () => {
  const { dir, app } = project();
  installInto(pkg, path.join(dir, 'node_modules'));
  const port = await freePort();
  const srv = await startUwcore(['--plugins', 'hello', '--http', `127.0.0.1:${port}`, '--hello-header', 'X-Hello=1', '--app', app], { cwd: dir });
  try {
    assert.match(srv.output(), /plugins: .*hello 1\.0\.0 \(npm\)/);
    const r = await httpGet(port, '/');
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), 'Hello World');
    assert.equal(r.headers['x-hello'], '1');
    const h = await httpGet(port, '/hello?name=uwcore');
    assert.equal(h.status, 200);
    assert.equal(h.body.toString(), 'Hello, uwcore!\n');
    assert.equal(h.headers['x-hello'], '1');
    const list = await runUwcore(['--plugins', 'hello', '--list-plugins'], { cwd: dir });
    assert.match(list.stdout, /^hello\t1\.0\.0\tnpm \(.*node_modules\/uwcore-plugin-hello\/dist\/index\.js\)\t--hello-header --hello-path --hello-greeting$/m);
    const help = await runUwcore(['--help', 'hello'], { cwd: dir });
    assert.match(help.stdout, /--hello-greeting, --hello-text TEXT/);
  } finally { await srv.stop(); }
});

test('from --plugins-dir, and from a path, in an ini file too', async () => {
  const { dir, app } = project();
  const plugins = path.join(dir, 'vendor');
  installInto(pkg, plugins);
  let port = await freePort();
  let srv = await startUwcore(['--plugins', 'hello', '--plugins-dir', plugins, '--http', `127.0.0.1:${port}`, '--hello-header', 'X-From=dir', '--app', app], { cwd: dir });
  try {
    assert.match(srv.output(), /hello 1\.0\.0 \(plugins-dir\)/);
    assert.equal((await httpGet(port, '/x')).headers['x-from'], 'dir');
  } finally { await srv.stop(); }
  port = await freePort();
  const ini = writeFile(path.join(dir, 'uwsgi.ini'), `[uwsgi]\nplugins = ./vendor/uwcore-plugin-hello\nhttp = 127.0.0.1:${port}\nhello-header = X-From=path\nhello-greeting = Hej\nwsgi-file = app.js\n`);
  srv = await startUwcore([ini], { cwd: dir });
  try {
    assert.match(srv.output(), /hello 1\.0\.0 \(path\)/);
    const r = await httpGet(port, '/hello');
    assert.equal(r.body.toString(), 'Hej, world!\n');
    assert.equal(r.headers['x-from'], 'path');
  } finally { await srv.stop(); }
});

test('a bad --hello-header stops startup with one line naming the option (exit 2)', async () => {
  const { dir, app } = project();
  installInto(pkg, path.join(dir, 'node_modules'));
  const r = await runUwcore(['--plugins', 'hello', '--http', '127.0.0.1:0', '--hello-header', 'Bad Name=1', '--app', app], { cwd: dir });
  assert.equal(r.code, 2);
  assert.match(r.stderr.trim(), /^uwcore: UW_ERR_CONFIG_BAD_VALUE \[plugin hello\]: invalid value "Bad Name=1" for option --hello-header: expected NAME=VALUE/);
  assert.equal(r.stderr.trim().split('\n').length, 1);
});

test('the hello: router action routes a request (skipped when the rule engine is not in this build)', async (t) => {
  const help = await runUwcore(['--help']);
  if (!/^\s+--route\b/m.test(help.stdout)) { t.skip('no --route option: the routing plugin is not in this tree'); return; }
  const { dir, app } = project();
  installInto(pkg, path.join(dir, 'node_modules'));
  const port = await freePort();
  const srv = await startUwcore(['--plugins', 'hello', '--http', `127.0.0.1:${port}`, '--route', '^/hi/(.+)$ hello:$1', '--app', app], { cwd: dir });
  try {
    assert.equal((await httpGet(port, '/hi/Ann')).body.toString(), 'Hello, Ann!\n');
    assert.equal((await httpGet(port, '/other')).body.toString(), 'Hello World');
  } finally { await srv.stop(); }
});

test('uwcore plugin new NAME: a skeleton that builds, passes its own test and loads', async () => {
  const dir = tmpDir('uwcore-scaffold-');
  const r = await runUwcore(['plugin', 'new', 'req-stamp'], { cwd: dir });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /created uwcore-plugin-req-stamp\//);
  const pdir = path.join(dir, 'uwcore-plugin-req-stamp');
  for (const f of ['package.json', 'tsconfig.json', 'src/index.ts', 'src/test/req-stamp.test.ts', 'README.md']) assert.ok(fs.existsSync(path.join(pdir, f)), f);
  const pj = JSON.parse(fs.readFileSync(path.join(pdir, 'package.json'), 'utf8')) as { exports: Record<string, Record<string, string>> };
  assert.equal(pj.exports['.']!.default, './dist/index.js');
  linkDevDeps(pdir); // stands in for `npm install` (no network in tests)
  const t = spawnSync('npm', ['test', '--silent'], { cwd: pdir, env: childEnv, encoding: 'utf8', timeout: 60_000 });
  assert.equal(t.status, 0, t.stdout + t.stderr);
  assert.match(t.stdout, /# pass 1/);
  const port = await freePort();
  const app = writeFile(path.join(dir, 'app.js'), fs.readFileSync(path.join(ROOT, 'examples/hello/app.js'), 'utf8'));
  fs.writeFileSync(path.join(dir, 'package.json'), '{"type":"module"}');
  const srv = await startUwcore(['--plugins', 'req-stamp', '--plugins-dir', '.', '--http', `127.0.0.1:${port}`, '--req-stamp-message', 'stamped', '--app', app], { cwd: dir });
  try {
    assert.equal((await httpGet(port, '/req-stamp')).body.toString(), 'stamped\n');
    assert.equal((await httpGet(port, '/')).body.toString(), 'Hello World');
  } finally { await srv.stop(); }
  const again = await runUwcore(['plugin', 'new', 'req-stamp'], { cwd: dir });
  assert.equal(again.code, 2);
  assert.match(again.stderr, /already exists and is not empty/);
  const bad = await runUwcore(['plugin', 'new', 'Req_Stamp'], { cwd: dir });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /plugin name "Req_Stamp" is malformed/);
});
