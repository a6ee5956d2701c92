// uwcore build: one self-contained file that runs from an empty directory without node_modules, in single
// and master mode, carries exactly the plugins asked for, and says so when an option needs one it lacks.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT, freePort, httpGet, runUwcore, tmpDir, writeFile } from '../helpers/server.js';
import { buildExample, startNode } from './plugins-fixture.js';

const out = tmpDir('uwcore-build-');
const bundle = path.join(out, 'dist/server.mjs');
let built = { code: null as number | null, stdout: '', stderr: '' };

before(async () => {
  built = await runUwcore(['build', '--plugins', 'http', '--out', bundle], { cwd: out, timeoutMs: 60_000 });
});

/** An empty directory: no package.json, no node_modules anywhere above it that knows uwcore. */
function emptyDir(): string {
  const d = tmpDir('uwcore-bundle-run-');
  fs.copyFileSync(bundle, path.join(d, 'server.mjs'));
  fs.copyFileSync(path.join(ROOT, 'examples/hello/app.js'), path.join(d, 'app.mjs'));
  return d;
}

function node(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}) {
  return spawnSync(process.execPath, args, { cwd, encoding: 'utf8', timeout: 20_000, env: { ...process.env, ...env } });
}

test('uwcore build writes one file and prints its size', () => {
  assert.equal(built.code, 0, built.stderr);
  assert.match(built.stdout, /^wrote dist\/server\.mjs: [\d.]+ KiB \((\d+) bytes\), uwcore \S+ with plugins http in \d+ ms$/m);
  const bytes = Number(/\((\d+) bytes\)/.exec(built.stdout)![1]);
  assert.equal(fs.statSync(bundle).size, bytes);
  assert.deepEqual(fs.readdirSync(path.dirname(bundle)), ['server.mjs']);
  const text = fs.readFileSync(bundle, 'utf8');
  assert.ok(text.startsWith('#!/usr/bin/env node\n'));
  assert.ok(!text.includes(ROOT), 'no path of the build machine is baked in');
  assert.ok(!/from\s*["'](pino|semver|tapable|ini)["']/.test(text), 'dependencies are bundled, not imported');
});

test('the bundle serves from an empty directory without node_modules; apps import uwcore (ESM and CommonJS)', async () => {
  const d = emptyDir();
  writeFile(path.join(d, 'rt.mjs'), `import { worker, HttpError } from 'uwcore';\nimport { SDK_VERSION } from 'uwcore/sdk';\nexport function application(env, sr) {\n  if (env.PATH_INFO === '/teapot') throw new HttpError(418, 'teapot');\n  sr('200 OK', [['Content-Type', 'text/plain']]);\n  return ['worker ' + worker.id + ' sdk ' + SDK_VERSION];\n}\n`);
  writeFile(path.join(d, 'rt.cjs'), `const { worker } = require('uwcore');\nexports.application = (env, sr) => { sr('200 OK', []); return ['cjs worker ' + worker.id]; };\n`);
  let port = await freePort();
  let srv = await startNode(['server.mjs', '--http', `127.0.0.1:${port}`, '--app', 'app.mjs'], { cwd: d, env: { NODE_PATH: '' } });
  try {
    const r = await httpGet(port, '/');
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), 'Hello World');
    assert.match(srv.output(), /plugins: http 1\.0\.0 \(builtin\)/);
  } finally { assert.equal(await srv.stop(), 0); }
  port = await freePort();
  srv = await startNode(['server.mjs', '--http', `127.0.0.1:${port}`, '--app', 'rt.mjs'], { cwd: d });
  try {
    assert.match((await httpGet(port, '/')).body.toString(), /^worker 1 sdk \d+\.\d+\.\d+$/);
    assert.equal((await httpGet(port, '/teapot')).status, 418, 'HttpError from `uwcore` is the server\'s own class');
  } finally { await srv.stop(); }
  port = await freePort();
  srv = await startNode(['server.mjs', '--http', `127.0.0.1:${port}`, '--app', 'rt.cjs'], { cwd: d });
  try {
    assert.equal((await httpGet(port, '/')).body.toString(), 'cjs worker 1');
  } finally { await srv.stop(); }
});

test('the bundle runs a master with workers forked from itself', async () => {
  const d = emptyDir();
  const port = await freePort();
  const srv = await startNode(['server.mjs', '--master', '--processes', '2', '--http', `127.0.0.1:${port}`, '--app', 'app.mjs'], { cwd: d });
  try {
    assert.match(srv.output(), /uwcore is ready: 2 workers serving/);
    for (let i = 0; i < 4; i++) assert.equal((await httpGet(port, '/')).body.toString(), 'Hello World');
  } finally { assert.equal(await srv.stop(), 0); }
});

test('--list-plugins, --version and --help in the bundle show what it carries', () => {
  const d = emptyDir();
  const list = node(['server.mjs', '--list-plugins'], d);
  assert.equal(list.status, 0, list.stderr);
  const rows = list.stdout.trim().split('\n').slice(2).map((l) => l.split('\t')[0]);
  assert.deepEqual(rows, ['http']);
  assert.match(node(['server.mjs', '--version'], d).stdout, /^uwcore \d+\.\d+\.\d+ \(SDK \d+\.\d+\.\d+, node v\d+/);
  const dev = node(['server.mjs', 'build', '--plugins', 'http', '--out', 'x.mjs'], d);
  assert.equal(dev.status, 2);
  assert.match(dev.stderr, /not part of a bundled build/);
});

test('an option of a plugin that is not in the build names the plugin and the build', async (t) => {
  // in-process: a build carrying http, from a distribution that also has spooler, static and cache
  const script = `
    const http = (await import(${JSON.stringify(pathToFileURL(path.join(ROOT, 'dist/plugins/http/index.js')).href)})).default;
    globalThis.__UWCORE_EMBEDDED__ = {
      manifest: [{ name: 'http', version: http.version, description: '', entry: '', options: http.options.map((o) => ({ name: o.name, type: o.type, alias: o.alias, multiple: o.multiple })) }],
      modules: { http }, all: ['cache', 'http', 'spooler', 'static'],
      allOptions: { spooler: 'spooler', 'spooler-processes': 'spooler', 'check-static': 'static', cache2: 'cache' },
    };
    const { main } = await import(${JSON.stringify(pathToFileURL(path.join(ROOT, 'dist/core/cli.js')).href)});
    await main(process.argv.slice(1));`;
  const d = tmpDir('uwcore-notin-');
  const opt = node(['--input-type=module', '-e', script, '--', '--http', '127.0.0.1:0', '--spooler', 'spool'], d);
  assert.equal(opt.status, 2);
  assert.match(opt.stderr, /UW_ERR_CONFIG_UNKNOWN_OPTION: unknown option --spooler \(command line\); plugin `spooler` is not in this build \(built with: http\)/);
  const named = node(['--input-type=module', '-e', script, '--', '--http', '127.0.0.1:0', '--plugins', 'static'], d);
  assert.equal(named.status, 1);
  assert.match(named.stderr, /UW_ERR_PLUGIN_NOT_IN_BUILD \[plugin static\]: plugin `static` is not in this build \(built with: http\); rebuild with uwcore build --plugins http,static/);
  // and with the real bundle, when this tree has another built-in to leave out
  const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, 'dist/plugins/manifest.json'), 'utf8')) as Array<{ name: string; options: Array<{ name: string; type: string }> }>;
  const other = manifest.find((m) => m.name !== 'http' && m.options.length > 0);
  if (!other) { t.diagnostic('only the http built-in exists in this tree: the real-bundle case needs another one'); return; }
  const o = other.options[0]!;
  const r = node(['server.mjs', '--http', '127.0.0.1:0', `--${o.name}`, ...(o.type === 'bool' ? [] : ['x'])], emptyDir());
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, new RegExp(`plugin \`${other.name}\` is not in this build \\(built with: http\\)`));
});

test('a build can carry a third-party plugin (the example package), options autoloading it like a built-in', async () => {
  const pkg = buildExample();
  const d = tmpDir('uwcore-build-hello-');
  const file = path.join(d, 'hello-server.mjs');
  const r = await runUwcore(['build', '--plugins', `http,${pkg}`, '--out', file], { cwd: d, timeoutMs: 60_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /with plugins http, hello/);
  fs.rmSync(pkg, { recursive: true, force: true }); // the bundle must not need the package any more
  fs.copyFileSync(path.join(ROOT, 'examples/hello/app.js'), path.join(d, 'app.mjs'));
  const port = await freePort();
  const srv = await startNode([file, '--http', `127.0.0.1:${port}`, '--hello-header', 'X-Hello=1', '--app', 'app.mjs'], { cwd: d });
  try {
    const h = await httpGet(port, '/hello?name=bundle');
    assert.equal(h.body.toString(), 'Hello, bundle!\n');
    assert.equal(h.headers['x-hello'], '1');
    assert.equal((await httpGet(port, '/')).body.toString(), 'Hello World');
  } finally { await srv.stop(); }
});

test('usage errors exit 2 with one line', async () => {
  const noOut = await runUwcore(['build', '--plugins', 'http'], { cwd: out });
  assert.equal(noOut.code, 2);
  assert.match(noOut.stderr, /needs --out FILE/);
  const noPlugins = await runUwcore(['build', '--out', 'x.mjs'], { cwd: out });
  assert.equal(noPlugins.code, 2);
  assert.match(noPlugins.stderr, /needs --plugins LIST/);
  const missing = await runUwcore(['build', '--plugins', 'http,nonexistent-thing', '--out', 'x.mjs'], { cwd: out });
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /UW_ERR_PLUGIN_NOT_FOUND \[plugin nonexistent-thing\]/);
  assert.ok(!fs.existsSync(path.join(out, 'x.mjs')));
});
