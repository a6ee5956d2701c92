// The SDK's documentation contract: every export and every hook/registry carries @since, the hook catalogue
// the core implements is the one the SDK declares, and the author's guide covers each of them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from '../helpers/server.js';
import { HOOK_SPECS } from '../../core/hooks.js';
import { SDK_VERSION } from '../../sdk/index.js';

const sdkSrc = fs.readFileSync(path.join(ROOT, 'sdk/index.ts'), 'utf8');
const guide = fs.readFileSync(path.join(ROOT, 'sdk/README.md'), 'utf8');

/** The doc comment right above line i (or on the same line, for one-line member docs). */
function docAbove(lines: string[], i: number): string {
  let doc = '';
  let j = i - 1;
  while (j >= 0 && (/^\s*(\/\*\*|\*|\/\/)/.test(lines[j]!) || lines[j]!.includes('*/'))) { doc = lines[j] + '\n' + doc; j--; }
  return doc;
}

function membersOf(src: string, iface: string): Array<{ name: string; line: number }> {
  const lines = src.split('\n');
  const start = lines.findIndex((l) => l.startsWith(`export interface ${iface} `));
  assert.ok(start >= 0, `interface ${iface} not found`);
  const out: Array<{ name: string; line: number }> = [];
  for (let i = start + 1; i < lines.length && lines[i] !== '}'; i++) {
    const m = /^ {2}(?:readonly )?([a-zA-Z]+)[?]?[:(<]/.exec(lines[i]!);
    if (m) out.push({ name: m[1]!, line: i });
  }
  return out;
}

for (const file of ['sdk/index.ts', 'sdk/testing.ts']) {
  test(`every export of ${file} has TSDoc with @since`, () => {
    const lines = fs.readFileSync(path.join(ROOT, file), 'utf8').split('\n');
    const missing = lines.map((l, i) => [l, i] as const).filter(([l]) => /^export (?!\{|\*)/.test(l)).filter(([, i]) => !/@since \d+\.\d+\.\d+/.test(docAbove(lines, i))).map(([l, i]) => `${i + 1}: ${l}`);
    assert.deepEqual(missing, []);
  });
}

test('every hook and every PluginApi member (registries, rpc, listen, use …) has @since', () => {
  const lines = sdkSrc.split('\n');
  for (const iface of ['Hooks', 'PluginApi']) {
    const missing = membersOf(sdkSrc, iface).filter((m) => !/@since \d+\.\d+\.\d+/.test(docAbove(lines, m.line) + lines[m.line]!)).map((m) => m.name);
    assert.deepEqual(missing, [], `${iface} members without @since`);
  }
});

test('the core implements exactly the hooks the SDK declares, none newer than SDK_VERSION', () => {
  const declared = membersOf(sdkSrc, 'Hooks').map((m) => m.name).sort();
  assert.deepEqual(Object.keys(HOOK_SPECS).sort(), declared);
  const [maj, min] = SDK_VERSION.split('.').map(Number);
  for (const [name, spec] of Object.entries(HOOK_SPECS)) {
    const [a, b] = spec.since.split('.').map(Number);
    assert.ok(a! < maj! || (a === maj && b! <= min!), `hook ${name} since ${spec.since} > SDK ${SDK_VERSION}`);
  }
});

test('the author\'s guide documents every hook, every registry and the compatibility promise', () => {
  for (const h of Object.keys(HOOK_SPECS)) assert.match(guide, new RegExp('`' + h + '`'), `hook ${h} missing from sdk/README.md`);
  for (const r of ['protocols', 'routerActions', 'routeConditions', 'appKinds', 'services', 'rpc', 'addTransform', 'api.use', 'requires', 'impliesMaster', 'multiple', 'alias', 'createTestServer', 'inject']) {
    assert.ok(guide.includes(r), `${r} missing from sdk/README.md`);
  }
  assert.match(guide, /minor/i);
  assert.match(guide, /major/i);
  assert.match(guide, /UW_ERR_SDK_MISMATCH/);
});

test('package.json exports the SDK and its test helpers', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { exports: Record<string, { default: string }> };
  for (const k of ['./sdk', './sdk/testing']) assert.ok(fs.existsSync(path.join(ROOT, pkg.exports[k]!.default)), k);
});
