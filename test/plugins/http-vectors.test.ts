// Data-driven: the public request corpora (gunicorn valid/invalid, llhttp request vectors) against a real
// `--http` listener and a real `--http-socket` listener (its own lean connections, one request per
// connection). Every valid request is answered exactly once (on --http-socket: the first of a pipelined
// series, and only it); every invalid one is refused (4xx or a closed connection) and never answered twice.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { freePort, startUwcore, tmpDir, writeFile, type Running } from '../helpers/server.js';
import { gunicornVectors, llhttpVectors, vectorsDir, type Vector } from '../helpers/vectors.js';

const dir = vectorsDir();
let srv: Running;
let one: Running;
let httpPort = 0;
let socketPort = 0;

const APP = `
export async function application(env, start_response) {
  const body = await env['wsgi.input'].read();
  start_response('200 OK', [['Content-Type', 'text/plain'], ['X-Body-Length', String(body.length)]]);
  return ['ok\\n'];
}
`;

before(async () => {
  if (!dir) return;
  const d = tmpDir();
  const app = writeFile(path.join(d, 'app.mjs'), APP);
  httpPort = await freePort();
  socketPort = await freePort();
  [srv, one] = await Promise.all([
    startUwcore(['--http', `127.0.0.1:${httpPort}`, '--app', app, '--disable-logging', '--http-timeout', '3']),
    startUwcore(['--http-socket', `127.0.0.1:${socketPort}`, '--app', app, '--disable-logging', '--http-timeout', '3']),
  ]);
});
after(async () => { await Promise.all([srv?.stop(), one?.stop()]); });

/** Send the bytes, half-close, and collect every response until the server closes. */
function exchange(port: number, bytes: Buffer): Promise<Buffer> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const t = setTimeout(() => s.destroy(), 4000);
    s.on('connect', () => { s.write(bytes); s.end(); });
    s.on('data', (d) => chunks.push(d));
    s.on('error', () => undefined);
    s.on('close', () => { clearTimeout(t); resolve(Buffer.concat(chunks)); });
  });
}

/** Split a byte stream into responses (Content-Length or chunked framing; the rest is close-delimited). */
function statuses(raw: Buffer): number[] {
  const out: number[] = [];
  let off = 0;
  while (off < raw.length) {
    const end = raw.indexOf('\r\n\r\n', off);
    if (end < 0) { out.push(-1); break; }
    const head = raw.subarray(off, end).toString('latin1');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
    if (!m) { out.push(-1); break; }
    out.push(Number(m[1]));
    const cl = /\r\ncontent-length: *(\d+)/i.exec(head);
    if (cl) { off = end + 4 + Number(cl[1]); continue; }
    if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
      let p = end + 4;
      for (;;) {
        const nl = raw.indexOf('\r\n', p);
        if (nl < 0) { p = raw.length; break; }
        const size = parseInt(raw.subarray(p, nl).toString(), 16);
        p = nl + 2 + size + 2;
        if (size === 0) break;
      }
      off = p;
      continue;
    }
    break;
  }
  return out;
}

function check(v: Vector, got: number[], perConnection: boolean): string | null {
  // one request per connection: only the first of a pipelined series is answered
  if (perConnection && v.messages > 1) v = { ...v, messages: 1 };
  const ok = got.filter((s) => s >= 200 && s < 300).length;
  const refusals = got.filter((s) => s < 200 || s >= 300);
  if (got.length > v.messages + 1) return `${got.length} responses for ${v.messages} request(s): ${got.join(',')}`;
  if (refusals.some((s) => s !== -1 && (s < 400 || s >= 500) && s !== 505)) return `refused with an unexpected status: ${got.join(',')}`;
  if (v.valid && !v.lenient) {
    if (ok !== v.messages) return `valid: expected ${v.messages} answer(s), got ${ok} (${got.join(',') || 'none'})`;
  } else if (ok > v.messages) return `answered ${ok} time(s) for ${v.messages} complete request(s): ${got.join(',')}`;
  return null;
}

async function runAll(vectors: Vector[], port: number): Promise<string[]> {
  const failures: string[] = [];
  let i = 0;
  const worker = async () => {
    while (i < vectors.length) {
      const v = vectors[i++]!;
      const got = statuses(await exchange(port, v.bytes));
      const why = check(v, got, port === socketPort);
      if (why) failures.push(`${v.name}: ${why}`);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  return failures;
}

const CORPORA = [
  { name: 'gunicorn request corpus', load: gunicornVectors, min: 130, minValid: 55 },
  { name: 'llhttp request vectors', load: llhttpVectors, min: 100, minValid: 50 },
];

for (const [option, portOf] of [['--http', () => httpPort], ['--http-socket', () => socketPort]] as const) {
  for (const c of CORPORA) {
    test(`${c.name} (${option})`, { skip: dir ? false : 'test vectors not found (../shared/test-vectors/http)' }, async () => {
      const vs = c.load(dir!);
      assert.ok(vs.length > c.min, `only ${vs.length} vectors in the ${c.name}`);
      assert.ok(vs.filter((v) => v.valid).length > c.minValid);
      const failures = await runAll(vs, portOf());
      assert.deepEqual(failures, []);
    });
  }
}
