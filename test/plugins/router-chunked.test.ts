// The seed's "Chunked Response Support" example end to end (curl -iv --raw, byte for byte), streaming of a slow
// generator, and the same example through --http11-socket and through nginx on --uwsgi-socket (skipped until
// those options exist in this build).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { startNginx } from '../helpers/nginx.js';
import { ROOT, freePort, parseResponse, rawRequest, startUwcore, tmpDir, writeFile } from '../helpers/server.js';

const APP = path.join(ROOT, 'test/cases/routing/_apps/wsgi_chunked_output.js');
const EXACT = '7\r\nline 1\n\r\n7\r\nline 2\n\r\n0\r\n\r\n';

function seedIni(dir: string, listen: string): string {
  return writeFile(path.join(dir, 'chunked.ini'), [
    '[uwsgi]', listen, `wsgi-file = ${APP}`, 'processes = 2', 'threads = 2', 'master = true',
    'route-run = chunked:', 'route-run = last:', '',
  ].join('\n'));
}

function curl(args: string[]): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn('curl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    p.stdout.on('data', (d: Buffer) => out.push(d));
    p.stderr.on('data', (d: Buffer) => (err += d));
    const t = setTimeout(() => p.kill('SIGKILL'), 10_000);
    p.once('exit', (code) => { clearTimeout(t); resolve({ code, stdout: Buffer.concat(out), stderr: err }); });
  });
}


test('seed: route-run = chunked: + last: gives exactly the chunks curl -iv --raw shows', async () => {
  const dir = tmpDir();
  const port = await freePort();
  const srv = await startUwcore([seedIni(dir, `http = :${port}`)], { cwd: dir });
  try {
    const r = await curl(['-iv', '--raw', '-s', `http://127.0.0.1:${port}/`]);
    assert.equal(r.code, 0, r.stderr);
    const raw = r.stdout.toString('latin1');
    const head = raw.slice(0, raw.indexOf('\r\n\r\n') + 4);
    assert.match(head, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(head, /\r\nContent-type: text\/plain\r\n/);
    assert.match(head, /\r\nTransfer-Encoding: chunked\r\n/);
    assert.doesNotMatch(head, /content-length/i);
    assert.equal(raw.slice(head.length), EXACT);
    assert.match(r.stderr, /> GET \/ HTTP\/1\.1/);
    // the same bytes on a keep-alive connection, twice (the connection stays usable after the last chunk)
    const two = await rawRequest(port, `GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    const text = two.toString('latin1');
    assert.equal(text.split(EXACT).length - 1, 2, text);
  } finally {
    await srv.stop();
  }
});

test('chunked streams: each chunk a slow generator yields leaves at once', async () => {
  const dir = tmpDir();
  writeFile(path.join(dir, 'slow.js'), `
export async function* body() { yield 'first\\n'; await new Promise((r) => setTimeout(r, 600)); yield 'second\\n'; }
export function application(env, start_response) { start_response('200 OK', [['Content-Type', 'text/plain']]); return body(); }
`);
  const port = await freePort();
  const srv = await startUwcore(['--http', `127.0.0.1:${port}`, '--app', 'slow.js', '--route-run', 'chunked:', '--route-run', 'last:'], { cwd: dir });
  try {
    const t0 = performance.now();
    const arrivals: Array<{ ms: number; text: string }> = [];
    await new Promise<void>((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => s.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
      s.on('data', (d: Buffer) => arrivals.push({ ms: performance.now() - t0, text: d.toString('latin1') }));
      s.on('end', () => resolve());
      s.on('error', reject);
    });
    const all = arrivals.map((a) => a.text).join('');
    assert.match(all, /\r\n\r\n6\r\nfirst\n\r\n7\r\nsecond\n\r\n0\r\n\r\n$/);
    const first = arrivals.find((a) => a.text.includes('first\n'))!;
    const second = arrivals.find((a) => a.text.includes('second\n'))!;
    assert.ok(!first.text.includes('second'), 'the first chunk must leave before the second is produced');
    assert.ok(second.ms - first.ms >= 400, `chunks should be ~600 ms apart, got ${Math.round(second.ms - first.ms)} ms`);
  } finally {
    await srv.stop();
  }
});

test('seed through --http11-socket', async () => {
  const dir = tmpDir();
  const port = await freePort();
  const srv = await startUwcore([seedIni(dir, `http11-socket = 127.0.0.1:${port}`)], { cwd: dir });
  try {
    const r = await curl(['-i', '--raw', '-s', '--max-time', '5', `http://127.0.0.1:${port}/`]);
    const raw = r.stdout.toString('latin1');
    const head = raw.slice(0, raw.indexOf('\r\n\r\n') + 4);
    assert.match(head, /\r\nTransfer-Encoding: chunked\r\n/i);
    assert.doesNotMatch(head, /content-length/i);
    assert.equal(raw.slice(head.length), EXACT);
  } finally {
    await srv.stop();
  }
});

test('seed through nginx on --uwsgi-socket', async () => {
  const dir = tmpDir();
  const up = await freePort();
  const srv = await startUwcore([seedIni(dir, `uwsgi-socket = 127.0.0.1:${up}`)], { cwd: dir });
  const ngx = await startNginx({ '/': `127.0.0.1:${up}` }, { extra: 'uwsgi_buffering off;' });
  try {
    const raw = await rawRequest(ngx.port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', { idleMs: 3000 });
    const res = parseResponse(raw);
    assert.equal(res.status, 200, raw.toString('latin1') + ngx.errorLog());
    assert.equal(res.headers['transfer-encoding'], 'chunked');
    assert.equal(res.headers['content-length'], undefined);
    assert.equal(res.body.toString(), 'line 1\nline 2\n');
    assert.ok(raw.toString('latin1').endsWith('0\r\n\r\n'));
  } finally {
    await ngx.stop();
    await srv.stop();
  }
});
