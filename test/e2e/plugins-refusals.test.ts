// Compatibility is enforced at startup by the real CLI: one stderr line naming the plugin, the rule and the fix,
// a non-zero exit, no traffic served. A plugin that throws in a request hook gives a 500 and a log line naming it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { freePort, httpGet, runUwcore, startUwcore, tmpDir, writeFile } from '../helpers/server.js';

const dir = tmpDir('uwcore-refusals-');
const plugin = (file: string, body: string) => writeFile(path.join(dir, file), `export default ${body};\n`);

async function refused(args: string[]): Promise<string> {
  const r = await runUwcore(['--http', '127.0.0.1:0', ...args], { cwd: dir, timeoutMs: 15_000 });
  assert.notEqual(r.code, 0, `expected a refusal; stdout:\n${r.stdout}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line on stderr, got:\n${r.stderr}`);
  assert.doesNotMatch(r.stdout, /uwcore is ready/);
  return lines[0]!;
}

test('a plugin for SDK ^2.0.0 is refused against SDK 1.x', async () => {
  plugin('future.mjs', `{ name: 'future', version: '2.1.0', sdk: '^2.0.0' }`);
  const line = await refused(['--plugins', './future.mjs']);
  assert.match(line, /^uwcore: UW_ERR_SDK_MISMATCH \[plugin future\]: plugin `future` 2\.1\.0 needs uwcore SDK \^2\.0\.0, but this uwcore provides SDK 1\.\d+\.\d+; upgrade uwcore to one that provides SDK \^2\.0\.0, or install a version of the plugin built for SDK 1\.x$/);
});

test('a malformed plugin name is refused', async () => {
  plugin('badname.mjs', `{ name: 'Bad_Name', version: '1.0.0', sdk: '^1.0.0' }`);
  const line = await refused(['--plugins', './badname.mjs']);
  assert.match(line, /^uwcore: UW_ERR_PLUGIN_INVALID \[plugin Bad_Name\]: plugin name "Bad_Name" \(.*badname\.mjs\) is malformed: use lower-case kebab-case letters and digits, e\.g\. "my-plugin"$/);
});

test('an option colliding with another plugin\'s option is refused', async () => {
  plugin('clash.mjs', `{ name: 'clash', version: '1.0.0', sdk: '^1.0.0', options: [{ name: 'http-timeout', type: 'seconds', help: 'mine' }] }`);
  const line = await refused(['--plugins', './clash.mjs']);
  assert.match(line, /^uwcore: UW_ERR_PLUGIN_OPTION_COLLISION \[plugin clash\]: plugin `clash` declares option --http-timeout, already declared by plugin `http`; rename the option \(prefix it with the plugin name\)$/);
});

test('tapping an unknown hook is refused', async () => {
  plugin('typo.mjs', `{ name: 'typo', version: '1.0.0', sdk: '^1.0.0', setup(api) { api.hooks.onRequest.tap('typo', () => {}); } }`);
  const line = await refused(['--plugins', './typo.mjs']);
  assert.match(line, /^uwcore: UW_ERR_HOOK_UNKNOWN \[plugin typo, hook onRequest\]: plugin `typo` uses hook "onRequest", which does not exist in SDK 1\.\d+\.\d+.*; the hooks are: configure, .*; fix the name/);
});

test('a setup that does not finish within --plugin-timeout is refused', async () => {
  plugin('stuck.mjs', `{ name: 'stuck', version: '1.0.0', sdk: '^1.0.0', setup: () => new Promise(() => {}) }`);
  const t0 = Date.now();
  const line = await refused(['--plugins', './stuck.mjs', '--plugin-timeout', '0.3']);
  assert.match(line, /^uwcore: UW_ERR_PLUGIN_TIMEOUT \[plugin stuck, hook setup\]: plugin `stuck` did not finish setup\(\) within 300 ms \(--plugin-timeout\); check what it waits for$/);
  assert.ok(Date.now() - t0 < 8000);
});

test('the same refusals stop a master before any worker serves', async () => {
  plugin('future2.mjs', `{ name: 'future2', version: '1.0.0', sdk: '>=2' }`);
  const line = await refused(['--plugins', './future2.mjs', '--master', '--processes', '2']);
  assert.match(line, /UW_ERR_SDK_MISMATCH \[plugin future2\]/);
});

test('a plugin that throws in a request hook: 500, and a log line naming plugin and hook; the server keeps serving', async () => {
  plugin('boom.mjs', `{ name: 'boom', version: '1.0.0', sdk: '^1.0.0', setup(api) {
    api.hooks.request.tap('boom', (ctx) => { if (ctx.env.PATH_INFO === '/boom') throw new Error('boom went the plugin'); });
  } }`);
  const app = writeFile(path.join(dir, 'app.mjs'), `export function application(env, sr) { sr('200 OK', [['Content-Type', 'text/plain']]); return ['ok']; }\n`);
  const port = await freePort();
  const srv = await startUwcore(['--plugins', './boom.mjs', '--http', `127.0.0.1:${port}`, '--app', app], { cwd: dir });
  try {
    const r = await httpGet(port, '/boom');
    assert.equal(r.status, 500);
    assert.doesNotMatch(r.body.toString(), /boom went/);
    const line = await srv.waitFor(/boom went the plugin/);
    const rec = JSON.parse(line) as Record<string, unknown>;
    assert.equal(rec.plugin, 'boom');
    assert.equal(rec.hook, 'request');
    assert.equal(rec.code, 'UW_ERR_PLUGIN');
    assert.equal(rec.level, 50);
    assert.equal((await httpGet(port, '/fine')).body.toString(), 'ok');
  } finally { await srv.stop(); }
});
