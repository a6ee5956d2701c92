// Startup pays only for what is used: a built-in plugin that is neither named nor has one of its options used
// is never imported. A module-load hook records every plugin module the server imports.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, freePort, httpGet, runUwcore, startUwcore, tmpDir } from '../helpers/server.js';

const dir = tmpDir('uwcore-imports-');
const record = path.join(dir, 'imported.txt');
const hooks = `import fs from 'node:fs';
export async function load(url, context, next) {
  if (url.includes('/dist/plugins/')) fs.appendFileSync(${JSON.stringify(record)}, url + '\\n');
  return next(url, context);
}`;
const preload = `import { register } from 'node:module'; register(${JSON.stringify('data:text/javascript,' + encodeURIComponent(hooks))});`;
const env = { NODE_OPTIONS: `--import=${'data:text/javascript,' + encodeURIComponent(preload)}` };
const imported = () => (fs.existsSync(record) ? fs.readFileSync(record, 'utf8').trim().split('\n').map((u) => path.relative(path.join(ROOT, 'dist/plugins'), new URL(u).pathname)).sort() : []);
const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, 'dist/plugins/manifest.json'), 'utf8')) as Array<{ name: string; entry: string }>;

test('uwcore --http --app imports the http plugin and no other', async () => {
  fs.rmSync(record, { force: true });
  fs.copyFileSync(path.join(ROOT, 'examples/hello/app.js'), path.join(dir, 'app.mjs'));
  const port = await freePort();
  const srv = await startUwcore(['--http', `127.0.0.1:${port}`, '--app', 'app.mjs'], { cwd: dir, env });
  try {
    assert.equal((await httpGet(port, '/')).body.toString(), 'Hello World');
  } finally { await srv.stop(); }
  assert.deepEqual([...new Set(imported().map((f) => f.split('/')[0]))], ['http'], 'only the http plugin\'s folder');
});

test('the probe sees plugin imports: --list-plugins imports every built-in', async () => {
  fs.rmSync(record, { force: true });
  const r = await runUwcore(['--list-plugins'], { cwd: dir, env });
  assert.equal(r.code, 0, r.stderr);
  // every built-in's entry is imported (a plugin may import more files of its own folder)
  assert.deepEqual(imported().filter((f) => f.endsWith('/index.js')), manifest.map((m) => m.entry).sort());
});
