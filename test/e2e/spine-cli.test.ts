// End to end: the CLI's answers to bad input, --help/--version/--list-plugins, startup failures.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { freePort, httpGet, runUwcore, startUwcore, tmpDir, writeFile } from '../helpers/server.js';

test('an unknown option exits 2 naming it, with a did-you-mean', async () => {
  const r = await runUwcore(['--proceses', '2']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /UW_ERR_CONFIG_UNKNOWN_OPTION.*--proceses.*did you mean --processes/);
  const r2 = await runUwcore(['--htp', ':8000']);
  assert.equal(r2.code, 2);
  assert.match(r2.stderr, /did you mean --http/);
});

test('bad values exit 2 naming the option and what is allowed', async () => {
  for (const [args, re] of [
    [['--processes', 'abc'], /--processes: expected a whole number/],
    [['--http', ':99999'], /--http: expected an address.*port 0-65535/],
    [['--threads', '0'], /--threads: must be at least 1/],
    [['--master=maybe'], /--master: expected true or false/],
    [['--log-level', 'loud'], /--log-level: expected one of/],
  ] as Array<[string[], RegExp]>) {
    const r = await runUwcore(args);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split('\n').length, 1, 'one line');
  }
});

test('uWSGI options: not needed → one warning and the server runs; not offered → refused', async () => {
  const r = await runUwcore(['--emperor', '/etc/uwsgi/vassals']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /emperor.*uWSGI option uwcore does not offer/);
});

test('--version, --help, --help PLUGIN, --list-plugins', async () => {
  const v = await runUwcore(['--version']);
  assert.equal(v.code, 0);
  assert.match(v.stdout, /^uwcore \d+\.\d+\.\d+ \(SDK \d+\.\d+\.\d+, node v\d+/);
  const h = await runUwcore(['--help']);
  assert.equal(h.code, 0);
  assert.match(h.stdout, /core options:/);
  assert.match(h.stdout, /plugin http .*:\n(.|\n)*--http ADDR/);
  assert.match(h.stdout, /--processes, --workers N/);
  const hp = await runUwcore(['--help', 'http']);
  assert.equal(hp.code, 0);
  assert.match(hp.stdout, /^plugin http/);
  assert.doesNotMatch(hp.stdout, /core options/);
  const lp = await runUwcore(['--list-plugins']);
  assert.equal(lp.code, 0);
  assert.match(lp.stdout, /^http\t\d+\.\d+\.\d+\tbuiltin\t--http --http-socket/m);
});

test('the design card\'s command: --plugins http,cache; a plugin that is not found is one clear line', async () => {
  const port = await freePort();
  const manifest = JSON.parse(fs.readFileSync(path.join(process.cwd(), 'dist/plugins/manifest.json'), 'utf8')) as Array<{ name: string }>;
  const r = await runUwcore(['--plugins', 'http,nosuchplugin', '--http', `127.0.0.1:${port}`]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^uwcore: UW_ERR_PLUGIN_NOT_FOUND \[plugin nosuchplugin\]: plugin `nosuchplugin` not found .*npm install uwcore-plugin-nosuchplugin/);
  assert.ok(manifest.some((m) => m.name === 'cache'), 'the cache plugin is built in');
  const c = await startUwcore(['--plugins', 'http,cache', '--http', `127.0.0.1:${port}`]);
  try {
    assert.match(c.output(), /plugins: http [^,]+, cache /);
    const r = await httpGet(port, '/');
    assert.equal(r.status, 404);
    assert.match(r.body.toString(), /no application is mounted/);
  } finally {
    assert.equal(await c.stop(), 0);
  }
});

test('startup failures: missing app, broken app, export not a function, --need-app, port in use', async () => {
  const dir = tmpDir();
  const port = await freePort();
  const http = ['--http', `127.0.0.1:${port}`];
  let r = await runUwcore([...http, '--app', path.join(dir, 'missing.js')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /UW_ERR_APP_NOT_FOUND.*missing\.js not found/);
  writeFile(path.join(dir, 'broken.js'), 'export function application( {\n');
  r = await runUwcore([...http, '--app', path.join(dir, 'broken.js')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /UW_ERR_APP_LOAD.*cannot load application .*broken\.js: SyntaxError/);
  writeFile(path.join(dir, 'notfn.js'), 'export const application = 42;\n');
  r = await runUwcore([...http, '--app', path.join(dir, 'notfn.js')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /UW_ERR_APP_NOT_CALLABLE.*is number, not a function/);
  writeFile(path.join(dir, 'other.js'), 'export function handler() {}\n');
  r = await runUwcore([...http, '--app', path.join(dir, 'other.js')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /exports no `application`.*it exports: handler.*--callable NAME/);
  r = await runUwcore([...http, '--need-app']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /UW_ERR_APP_NONE/);
  // the same failures reported by a worker under a master
  r = await runUwcore([...http, '--master', '--processes', '2', '--app', path.join(dir, 'notfn.js')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /UW_ERR_APP_NOT_CALLABLE/);
  const blocker = net.createServer().listen(port, '127.0.0.1');
  await new Promise((res) => blocker.once('listening', res));
  try {
    r = await runUwcore([...http, '--app', 'examples/hello/app.js']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /UW_ERR_LISTEN_IN_USE.*127\.0\.0\.1:\d+ \(--http\) is already in use/);
    r = await runUwcore([...http, '--app', 'examples/hello/app.js', '--master', '--processes', '2']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /UW_ERR_LISTEN_IN_USE/);
  } finally {
    blocker.close();
  }
});

test('a plugin whose sdk range does not match is refused with both versions', async () => {
  const dir = tmpDir();
  writeFile(path.join(dir, 'future', 'index.js'), "export default { name: 'future', version: '1.0.0', sdk: '^2.0.0', setup() {} };\n");
  const r = await runUwcore(['--plugins-dir', dir, '--plugins', 'future']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /UW_ERR_SDK_MISMATCH \[plugin future\]: plugin `future` 1\.0\.0 needs uwcore SDK \^2\.0\.0, but this uwcore provides SDK 1\.\d+\.\d+/);
});

test('an unknown ini key that nothing references is an error with did-you-mean and file:line', async () => {
  const dir = tmpDir();
  const f = writeFile(path.join(dir, 'bad.ini'), '[uwsgi]\nhttp = :0\nworkrs = 2\n');
  const r = await runUwcore([f]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown option workrs \(.*bad\.ini:3\).*did you mean workers/);
});

test('--show-config prints the merged configuration as an ini file that reads back the same', async () => {
  const dir = tmpDir();
  const f = writeFile(path.join(dir, 'app.ini'), '[uwsgi]\nhttp = :8000\nhttp = 127.0.0.1:8001\nprocesses = 2\nroute-run = addheader:X-A: 1\n');
  const r = await runUwcore([f, '--processes', '3', '--show-config'], { env: { UWCORE_THREADS: '2' } });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '[uwcore]\nprocesses = 3\nthreads = 2\nroute-run = addheader:X-A: 1\nhttp = :8000\nhttp = 127.0.0.1:8001\n');
  const again = writeFile(path.join(dir, 'shown.ini'), r.stdout);
  const r2 = await runUwcore([again, '--show-config'], { env: {} });
  assert.equal(r2.stdout, r.stdout);
});
