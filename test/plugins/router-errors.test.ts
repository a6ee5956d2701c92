// Bad rules stop startup with one line (rule, source, problem) and exit 2, in single and master mode; rules from
// ini, environment and command line run in that order; a rule naming a built-in action loads its plugin.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { ROOT, freePort, httpGet, runUwcore, startUwcore, tmpDir, writeFile } from '../helpers/server.js';

const ECHO = path.join(ROOT, 'test/cases/routing/_apps/echo.js');
const PLUGINS = path.join(ROOT, 'test/cases/routing/_plugins');

function fatalLine(stderr: string): string {
  const lines = stderr.split('\n').filter((l) => l.startsWith('uwcore: '));
  assert.equal(lines.length, 1, `expected one fatal line, got:\n${stderr}`);
  return lines[0]!;
}

test('a rule that does not compile stops startup with one line naming it, its source and the problem', async () => {
  const dir = tmpDir();
  const ini = writeFile(path.join(dir, 'bad.ini'), ['[uwsgi]', `wsgi-file = ${ECHO}`, 'route-run = last:', 'route = ^/(unclosed return:404', ''].join('\n'));
  const cases: Array<{ args: string[]; re: RegExp; env?: NodeJS.ProcessEnv }> = [
    { args: [ini, '--http', '127.0.0.1:1'], re: new RegExp(`^uwcore: UW_ERR_ROUTE: route rule #1 "route = \\^/\\(unclosed return:404" \\(${ini.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:4\\): invalid regular expression "\\^/\\(unclosed": Unterminated group`) },
    { args: ['--http', '127.0.0.1:1', '--app', ECHO, '--route-run', 'frobnicate:x'], re: /^uwcore: UW_ERR_ROUTE: route rule #0 "route-run = frobnicate:x" \(command line\): unknown action "frobnicate" \(known: goto, .*\); a plugin providing it must be loaded/ },
    { args: ['--http', '127.0.0.1:1', '--app', ECHO, '--route-if', 'sunny:${HTTP_HOST} last:'], re: /\(command line\): unknown condition "sunny" \(known: .*contains.*regexp.*\)/ },
    { args: ['--http', '127.0.0.1:1', '--app', ECHO, '--route', '^/a goto:nowhere'], re: /\(command line\): goto to a missing label "nowhere"/ },
    { args: ['--http', '127.0.0.1:1', '--app', ECHO, '--route', '^/a'], re: /\(command line\): expected "REGEX ACTION:ARGS"/ },
    { args: ['--http', '127.0.0.1:1', '--app', ECHO, '--route', '^/(a)\\1 last:'], re: /backreference or a lookaround/ },
    { args: ['--http', '127.0.0.1:1', '--app', ECHO, '--route-run', 'break:99'], re: /action break: status 99 is out of range|needs a status code/ },
    { args: ['--http', '127.0.0.1:1', '--app', ECHO], env: { UWCORE_ROUTE_RUN: 'addheader:oops' }, re: /\(environment UWCORE_ROUTE_RUN\): action addheader: expected addheader:Name: value/ },
    // a third-party factory's own refusal, with the master compiling the rules before any worker starts
    { args: ['--http', '127.0.0.1:1', '--app', ECHO, '--master', '--processes', '2', '--plugins-dir', PLUGINS, '--plugins', 'tenant', '--route-if', 'longer:${PATH_INFO};ten last:'], re: /\(command line\): longer: "ten" is not a number/ },
  ];
  await Promise.all(cases.map(async (c) => {
    const r = await runUwcore(c.args, { cwd: dir, env: c.env });
    assert.equal(r.code, 2, `${c.args.join(' ')}\n${r.stderr}`);
    assert.match(fatalLine(r.stderr), c.re);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }));
});

test('rules from ini, environment and command line run in that order; actions autoload their plugin', async () => {
  const dir = tmpDir();
  const ini = writeFile(path.join(dir, 'order.ini'), ['[uwsgi]', `wsgi-file = ${ECHO}`, 'route-run = addheader:X-Order: ini-1', 'route = ^/ addheader:X-Order: ini-2', ''].join('\n'));
  const port = await freePort();
  const srv = await startUwcore([ini, '--http', `127.0.0.1:${port}`, '--route-run', 'addheader:X-Order: cli', '--route-run', 'last:', '--route-run', 'return:500'], {
    cwd: dir, env: { UWCORE_ROUTE_IF: 'equal:${PATH_INFO};/ addheader:X-Order: env' },
  });
  try {
    const r = await httpGet(port, '/');
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-order'], 'ini-1, ini-2, env, cli');
    assert.match(srv.output(), /router-basic 1\.0\.0 \(builtin\), router-last 1\.0\.0 \(builtin\)/);
    assert.doesNotMatch(srv.output(), /router-chunked/);
  } finally {
    await srv.stop();
  }
});
