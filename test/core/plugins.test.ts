// Unit tests: plugin resolution order, validation, requires/topological order, hooks facade, catalogue.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { loadPlugins, resolvePlugin } from '../../core/plugins.js';
import { createFacade, createHooks, HOOK_SPECS } from '../../core/hooks.js';
import { OptionTable } from '../../core/config/resolve.js';
import { tmpDir, writeFile } from '../helpers/server.js';

const plugin = (name: string, extra = '') => `export default { name: '${name}', version: '1.0.0', sdk: '^1.0.0', ${extra} setup() { return { from: '${name}' }; } };\n`;

test('resolution order: built-in, then --plugins-dir, then node_modules, then a path', async () => {
  const dir = tmpDir();
  writeFile(path.join(dir, 'pdir', 'http', 'index.js'), plugin('http'));
  writeFile(path.join(dir, 'pdir', 'alpha', 'index.js'), plugin('alpha'));
  writeFile(path.join(dir, 'node_modules', 'uwcore-plugin-alpha', 'package.json'), JSON.stringify({ name: 'uwcore-plugin-alpha', type: 'module', exports: { '.': { default: './index.js' } } }));
  writeFile(path.join(dir, 'node_modules', 'uwcore-plugin-alpha', 'index.js'), plugin('alpha'));
  writeFile(path.join(dir, 'node_modules', '@uwcore', 'plugin-beta', 'package.json'), JSON.stringify({ name: '@uwcore/plugin-beta', main: 'index.mjs' }));
  writeFile(path.join(dir, 'node_modules', '@uwcore', 'plugin-beta', 'index.mjs'), plugin('beta'));
  writeFile(path.join(dir, 'local.mjs'), plugin('gamma'));
  const http = resolvePlugin('http', [path.join(dir, 'pdir')], dir);
  assert.equal('origin' in http && http.origin, 'builtin');
  const a1 = resolvePlugin('alpha', [path.join(dir, 'pdir')], dir);
  assert.equal('origin' in a1 && a1.origin, 'plugins-dir');
  const a2 = resolvePlugin('alpha', [], dir);
  assert.equal('origin' in a2 && a2.origin, 'npm');
  const b = resolvePlugin('beta', [], dir);
  assert.equal('origin' in b && b.origin, 'npm');
  const g = resolvePlugin('./local.mjs', [], dir);
  assert.equal('origin' in g && g.origin, 'path');
  const none = resolvePlugin('nope', [path.join(dir, 'pdir')], dir);
  assert.ok('tried' in none && none.tried.some((t) => t.includes('uwcore-plugin-nope')));
});

test('validation: malformed names, bad versions, sdk ranges, requires, cycles, duplicates', async () => {
  const dir = tmpDir();
  const d = path.join(dir, 'p');
  writeFile(path.join(d, 'Bad_Name.js'), plugin('Bad_Name'));
  writeFile(path.join(d, 'nover.js'), "export default { name: 'nover', version: 'x', sdk: '^1.0.0' };\n");
  writeFile(path.join(d, 'badsdk.js'), "export default { name: 'badsdk', version: '1.0.0', sdk: 'whatever' };\n");
  writeFile(path.join(d, 'notplugin.js'), 'export default 42;\n');
  writeFile(path.join(d, 'a.js'), plugin('a', "requires: ['b'],"));
  writeFile(path.join(d, 'b.js'), plugin('b', "requires: ['c'],"));
  writeFile(path.join(d, 'c.js'), plugin('c'));
  writeFile(path.join(d, 'x.js'), plugin('x', "requires: ['y'],"));
  writeFile(path.join(d, 'y.js'), plugin('y', "requires: ['x'],"));
  writeFile(path.join(d, 'misnamed.js'), plugin('other'));
  const load = (n: string) => loadPlugins([n], [d], dir);
  await assert.rejects(load('Bad_Name'), /UW_ERR_PLUGIN_INVALID|malformed/);
  await assert.rejects(load('nover'), /no valid semver version/);
  await assert.rejects(load('badsdk'), /not a semver range/);
  await assert.rejects(load('notplugin'), /is not a uwcore plugin/);
  await assert.rejects(load('misnamed'), /calls itself `other`/);
  await assert.rejects(load('x'), (e: Error & { code: string }) => e.code === 'UW_ERR_PLUGIN_CYCLE');
  const order = await loadPlugins(['a'], [d], dir);
  assert.deepEqual(order.map((p) => p.plugin.name), ['c', 'b', 'a']);
});

test('option collisions between plugins are refused', () => {
  const t = new OptionTable();
  t.add('core', [{ name: 'processes', type: 'int', help: '' }]);
  t.add('one', [{ name: 'one-x', type: 'string', alias: ['ox'], help: '' }]);
  assert.throws(() => t.add('two', [{ name: 'processes', type: 'int', help: '' }]), /already declared by the core/);
  assert.throws(() => t.add('two', [{ name: 'two-y', type: 'int', alias: ['ox'], help: '' }]), /already declared by plugin `one`/);
});

test('hook facade: tap-only, tap names, error tagging, unknown hooks, sealing', async () => {
  const hooks = createHooks();
  let sealed = false;
  const f = createFacade(hooks, 'demo', 1, () => sealed);
  assert.equal((f.request as unknown as { call?: unknown }).call, undefined);
  assert.equal((f.request as unknown as { intercept?: unknown }).intercept, undefined);
  assert.throws(() => f.request.tapPromise('other', async () => undefined), /tap names must be "demo"/);
  f.request.tapPromise('demo:detail', async () => { throw new Error('bad tap'); });
  await assert.rejects(hooks.request.promise({}), (e: Error & { code: string; plugin: string; hook: string }) => e.code === 'UW_ERR_PLUGIN' && e.plugin === 'demo' && e.hook === 'request');
  f.headers.tap('demo', () => { throw Object.assign(new Error('sync'), { code: 'E_MINE' }); });
  assert.throws(() => hooks.headers.call([], {}), (e: Error & { plugin: string; hook: string; pluginCode: string }) => e.plugin === 'demo' && e.hook === 'headers' && e.pluginCode === 'E_MINE');
  assert.throws(() => (f as unknown as Record<string, unknown>).onRequest, (e: Error & { code: string }) => e.code === 'UW_ERR_HOOK_UNKNOWN');
  sealed = true;
  assert.throws(() => f.finish.tap('demo', () => undefined), (e: Error & { code: string }) => e.code === 'UW_ERR_HOOK_SEALED');
});

test('the hook catalogue (a change here is an SDK change: update sdk/README.md and SDK_VERSION)', () => {
  assert.deepEqual(Object.fromEntries(Object.entries(HOOK_SPECS).map(([k, v]) => [k, `${v.kind}(${v.args.join(',')})`])), {
    configure: 'SyncWaterfall(options)', masterStart: 'AsyncSeries()', workerStart: 'AsyncSeries()', ready: 'AsyncParallel()',
    reload: 'AsyncSeries()', close: 'AsyncSeries()', request: 'AsyncSeriesBail(ctx)', handle: 'AsyncSeriesBail(ctx)',
    error: 'AsyncSeriesBail(err,ctx)', headers: 'SyncWaterfall(headers,ctx)', finish: 'Sync(ctx)', stats: 'SyncWaterfall(stats)',
  });
});

test('close hooks run in reverse plugin order', async () => {
  const hooks = createHooks();
  const order: string[] = [];
  createFacade(hooks, 'first', 1, () => false).close.tapPromise('first', async () => { order.push('first'); });
  createFacade(hooks, 'second', 2, () => false).close.tapPromise('second', async () => { order.push('second'); });
  await hooks.close.promise();
  assert.deepEqual(order, ['second', 'first']);
});
