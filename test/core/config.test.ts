// Unit tests: value coercion, addresses, the ini reader, placeholders, did-you-mean, option precedence.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { coerce, didYouMean, parseAddress, parseSeconds, parseSize } from '../../core/config/values.js';
import { expandPlaceholders, readArgv, readIni } from '../../core/config/sources.js';
import { loadConfig } from '../../core/config/index.js';
import { tmpDir } from '../helpers/server.js';

test('addresses: ports, hosts, IPv6 and UNIX paths', () => {
  assert.deepEqual(parseAddress(':8000'), { kind: 'tcp', host: '0.0.0.0', port: 8000, raw: ':8000' });
  assert.deepEqual(parseAddress('8000'), { kind: 'tcp', host: '0.0.0.0', port: 8000, raw: '8000' });
  assert.deepEqual(parseAddress('127.0.0.1:9090'), { kind: 'tcp', host: '127.0.0.1', port: 9090, raw: '127.0.0.1:9090' });
  assert.deepEqual(parseAddress('[::1]:8000'), { kind: 'tcp', host: '::1', port: 8000, raw: '[::1]:8000' });
  assert.deepEqual(parseAddress('app.sock', '/run'), { kind: 'unix', path: '/run/app.sock', raw: 'app.sock' });
  assert.equal(parseAddress(':99999'), null);
  assert.equal(parseAddress('99999'), null);
  assert.equal(parseAddress('host:port'), null);
});

test('seconds and sizes', () => {
  assert.equal(parseSeconds('30'), 30);
  assert.equal(parseSeconds('500ms'), 0.5);
  assert.equal(parseSeconds('5m'), 300);
  assert.equal(parseSeconds('abc'), null);
  assert.equal(parseSize('64k'), 65536);
  assert.equal(parseSize('1M'), 1048576);
  assert.equal(parseSize('12'), 12);
  assert.equal(parseSize('x'), null);
});

test('coercion names the option and what is allowed', () => {
  assert.equal(coerce({ name: 'master', type: 'bool', help: '' }, true, '/'), true);
  assert.equal(coerce({ name: 'master', type: 'bool', help: '' }, 'false', '/'), false);
  assert.equal(coerce({ name: 'master', type: 'bool', help: '' }, 'Off', '/'), false);
  assert.throws(() => coerce({ name: 'master', type: 'bool', help: '' }, 'maybe', '/'), /--master: expected true or false/);
  assert.throws(() => coerce({ name: 'processes', type: 'int', min: 1, help: '' }, 'abc', '/'), (e: Error & { code: string; exitCode: number }) => e.code === 'UW_ERR_CONFIG_BAD_VALUE' && e.exitCode === 2 && /--processes/.test(e.message));
  assert.throws(() => coerce({ name: 'threads', type: 'int', min: 1, help: '' }, '0', '/'), /--threads: must be at least 1/);
  assert.throws(() => coerce({ name: 'http', type: 'addr', help: '' }, ':99999', '/'), /--http: expected an address/);
  assert.equal(coerce({ name: 'app', type: 'path', help: '' }, 'x.js', '/srv'), '/srv/x.js');
});

test('did you mean', () => {
  assert.deepEqual(didYouMean('proceses', ['processes', 'threads', 'master']), ['processes']);
  assert.equal(didYouMean('htp', ['http', 'app', 'threads'])[0], 'http');
});

test('argv: --k v, --k=v, flags, short options, positionals', () => {
  const r = readArgv(['--http', ':8000', '--master', '-p', '2', '--threads=4', 'conf.ini', '-M'], (k) => (k === 'master' ? true : k === 'http' || k === 'threads' || k === 'processes' ? false : undefined), { p: 'processes', M: 'master' });
  assert.deepEqual(r.entries.map((e) => [e.key, e.value]), [['http', ':8000'], ['master', true], ['processes', '2'], ['threads', '4'], ['master', true]]);
  assert.deepEqual(r.positionals, ['conf.ini']);
});

test('ini: sections, comments, bare keys, repeated keys in order, line numbers, magic %d', () => {
  const dir = tmpDir();
  const f = path.join(dir, 'a.ini');
  fs.writeFileSync(f, '; comment\n# another\n[other]\nhttp = :1\n[uwsgi]\nhttp = 8000\nmaster\nroute-run = chunked:\nroute-run = last:\nchdir = %d\nname = "quoted ; kept"\n');
  const r = readIni(f);
  assert.equal(r.section, 'uwsgi');
  assert.deepEqual(r.entries.map((e) => [e.key, e.value]), [['http', '8000'], ['master', true], ['route-run', 'chunked:'], ['route-run', 'last:'], ['chdir', dir + '/'], ['name', '"quoted ; kept"']]);
  assert.equal(r.entries[2]!.where, `${f}:8`);
  assert.deepEqual(readIni(`${f}:other`).entries.map((e) => e.value), [':1']);
  assert.throws(() => readIni(`${f}:nope`), /has no \[nope\] section/);
  assert.throws(() => readIni(path.join(dir, 'missing.ini')), /cannot read config file/);
  fs.writeFileSync(f, '[uwsgi]\nhttp = 1\n[uwcore]\nhttp = 2\n');
  assert.deepEqual(readIni(f).entries.map((e) => e.value), ['2']);
});

test('placeholders: custom keys, set-ph, option references, $(ENV), undefined left as is', () => {
  process.env.UWCORE_TEST_PORT = '9123';
  const e = (key: string, value: string) => ({ key, value, source: 'ini' as const, baseDir: '/', where: 'x' });
  const entries = [e('http', ':%(port)'), e('port', '$(UWCORE_TEST_PORT)'), e('set-ph', 'base=/srv'), e('chdir', '%(base)/app'), e('app', '%(chdir)/a.js'), e('x', '%(nope)')];
  const refs = expandPlaceholders(entries, () => false);
  assert.equal(entries[0]!.value, ':9123');
  assert.equal(entries[3]!.value, '/srv/app');
  assert.equal(entries[4]!.value, '/srv/app/a.js');
  assert.equal(entries[5]!.value, '%(nope)');
  assert.ok(refs.has('port'));
});

test('loadConfig: precedence defaults < ini < env < cli; multi-valued options accumulate', async () => {
  const dir = tmpDir();
  const f = path.join(dir, 'u.ini');
  fs.writeFileSync(f, '[uwsgi]\nprocesses = 2\nthreads = 3\nhttp = :7001\nhttp = :7002\nlog-level = warn\nenv = A=1\n');
  const cfg = await loadConfig([f, '--threads', '5', '--env', 'B=2'], { env: { UWCORE_PROCESSES: '4', UWCORE_THREADS: '9' } });
  assert.equal(cfg.options.processes, 4);
  assert.equal(cfg.options.threads, 5);
  assert.equal(cfg.options['log-level'], 'warn');
  assert.deepEqual((cfg.options.http as Array<{ port: number }>).map((a) => a.port), [7001, 7002]);
  assert.deepEqual(cfg.options.env, ['A=1', 'B=2']);
  assert.equal(cfg.options.callable, 'application');
  assert.deepEqual(cfg.plugins.map((p) => p.plugin.name), ['http']);
});

test('loadConfig: unknown ini key is an error unless it is a referenced placeholder', async () => {
  const dir = tmpDir();
  const f = path.join(dir, 'u.ini');
  fs.writeFileSync(f, '[uwsgi]\nmyport = 7005\nhttp = :%(myport)\n');
  const cfg = await loadConfig([f], { env: {} });
  assert.equal((cfg.options.http as Array<{ port: number }>)[0]!.port, 7005);
  fs.writeFileSync(f, '[uwsgi]\nprocesess = 2\n');
  await assert.rejects(loadConfig([f], { env: {} }), (e: Error & { code: string }) => e.code === 'UW_ERR_CONFIG_UNKNOWN_OPTION' && /processes/.test(e.message) && /u\.ini:2/.test(e.message));
});

test('loadConfig: uWSGI options not needed warn, not offered refuse', async () => {
  const cfg = await loadConfig(['--vacuum', '--die-on-term', '--enable-threads'], { env: {} });
  assert.equal(cfg.warnings.length, 3);
  assert.match(cfg.warnings[0]!, /vacuum.*does not need/);
  await assert.rejects(loadConfig(['--emperor', '/etc/uwsgi'], { env: {} }), /uWSGI option uwcore does not offer/);
});

test('loadConfig: relative paths resolve against the ini directory, or --chdir', async () => {
  const dir = tmpDir();
  fs.mkdirSync(path.join(dir, 'sub'));
  const f = path.join(dir, 'sub', 'u.ini');
  fs.writeFileSync(f, '[uwsgi]\nwsgi-file = app.js\n');
  const cfg = await loadConfig([f], { env: {} });
  assert.equal(cfg.options.app, path.join(dir, 'sub', 'app.js'));
  const cfg2 = await loadConfig(['--chdir', dir, '--app', 'x.js'], { env: {} });
  assert.equal(cfg2.options.app, path.join(dir, 'x.js'));
});
