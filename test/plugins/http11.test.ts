// --http11-socket: persistent connections, pipelining, Expect: 100-continue, response framing, and the seed's
// chunked-input example (a 25 MB chunked upload written to a file, byte for byte).
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { freePort, httpGet, startUwcore, tmpDir, writeFile, type Running } from '../helpers/server.js';
import { writeProtocolApp } from '../helpers/protocol-app.js';

let srv: Running;
let port: number;

before(async () => {
  port = await freePort();
  srv = await startUwcore(['--http11-socket', `127.0.0.1:${port}`, '--app', writeProtocolApp(), '--disable-logging']);
});
after(async () => { await srv?.stop(); });

/** A connection that reads whole responses in order (Content-Length, chunked, or close-delimited). */
class Client {
  readonly s: net.Socket;
  private buf = Buffer.alloc(0);
  closed = false;
  private wake: (() => void) | null = null;
  constructor(p: number) {
    this.s = net.connect(p, '127.0.0.1');
    this.s.on('data', (d) => { this.buf = Buffer.concat([this.buf, d]); this.wake?.(); });
    this.s.on('close', () => { this.closed = true; this.wake?.(); });
    this.s.on('error', () => undefined);
  }
  write(data: string): void { this.s.write(data); }
  private async more(): Promise<void> {
    if (this.closed) throw new Error('connection closed');
    await new Promise<void>((r) => { this.wake = r; setTimeout(r, 3000); });
    this.wake = null;
  }
  /** Next response: status, headers, body, and how it was framed. */
  async read(): Promise<{ status: number; headers: Record<string, string>; body: string; framing: string }> {
    for (;;) {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end >= 0) {
        const lines = this.buf.subarray(0, end).toString('latin1').split('\r\n');
        const status = Number(lines[0]!.split(' ')[1]);
        const headers: Record<string, string> = {};
        for (const l of lines.slice(1)) { const i = l.indexOf(':'); headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim(); }
        const rest = this.buf.subarray(end + 4);
        if (status === 100) { this.buf = rest; return { status, headers, body: '', framing: 'none' }; }
        if (headers['content-length'] !== undefined) {
          const n = Number(headers['content-length']);
          if (rest.length >= n) { this.buf = rest.subarray(n); return { status, headers, body: rest.subarray(0, n).toString(), framing: 'length' }; }
        } else if (headers['transfer-encoding'] === 'chunked') {
          const parts: Buffer[] = [];
          let off = 0;
          let done = false;
          for (;;) {
            const nl = rest.indexOf('\r\n', off);
            if (nl < 0) break;
            const size = parseInt(rest.subarray(off, nl).toString(), 16);
            if (rest.length < nl + 2 + size + 2) break;
            if (size === 0) { off = nl + 4; done = true; break; }
            parts.push(rest.subarray(nl + 2, nl + 2 + size));
            off = nl + 2 + size + 2;
          }
          if (done) { this.buf = rest.subarray(off); return { status, headers, body: Buffer.concat(parts).toString(), framing: 'chunked' }; }
        } else if (this.closed) {
          this.buf = Buffer.alloc(0);
          return { status, headers, body: rest.toString(), framing: 'close' };
        }
      }
      await this.more();
    }
  }
  async waitClosed(ms = 2000): Promise<boolean> {
    const t0 = Date.now();
    while (!this.closed && Date.now() - t0 < ms) await new Promise((r) => setTimeout(r, 20));
    return this.closed;
  }
  destroy(): void { this.s.destroy(); }
}

describe('--http11-socket', () => {
  test('keep-alive by default on HTTP/1.1; Connection: close honoured', async () => {
    const c = new Client(port);
    try {
      c.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
      assert.equal((await c.read()).body, 'Hello World');
      c.write('GET /echo-path?2 HTTP/1.1\r\nHost: x\r\n\r\n');
      assert.equal((await c.read()).body, '/echo-path|2|GET');
      c.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      const r = await c.read();
      assert.equal(r.headers.connection, 'close');
      assert.ok(await c.waitClosed(), 'server closed after Connection: close');
    } finally { c.destroy(); }
  });

  test('HTTP/1.0: closed after the response unless it asks for keep-alive', async () => {
    const a = new Client(port);
    a.write('GET / HTTP/1.0\r\n\r\n');
    await a.read();
    assert.ok(await a.waitClosed(), 'HTTP/1.0 closed');
    const b = new Client(port);
    try {
      b.write('GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
      assert.equal((await b.read()).headers.connection, 'keep-alive');
      b.write('GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
      assert.equal((await b.read()).body, 'Hello World');
      assert.equal(b.closed, false);
    } finally { b.destroy(); }
  });

  test('pipelined requests are answered in order, even when the first is slow', async () => {
    const c = new Client(port);
    try {
      c.write('GET /slow?150 HTTP/1.1\r\nHost: x\r\n\r\nGET /echo-path?b HTTP/1.1\r\nHost: x\r\n\r\nGET /slow?10 HTTP/1.1\r\nHost: x\r\n\r\n');
      assert.equal((await c.read()).body, 'slow 150');
      assert.equal((await c.read()).body, '/echo-path|b|GET');
      assert.equal((await c.read()).body, 'slow 10');
    } finally { c.destroy(); }
  });

  test('Expect: 100-continue gets 100 Continue, then the answer', async () => {
    const c = new Client(port);
    try {
      c.write('POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n');
      assert.equal((await c.read()).status, 100);
      c.write('hello');
      const r = await c.read();
      assert.match(r.body, /^5 2cf24dba/);
    } finally { c.destroy(); }
  });

  test('a response without Content-Length: chunked on HTTP/1.1 (connection kept), close-delimited on HTTP/1.0', async () => {
    const c = new Client(port);
    try {
      c.write('GET /stream HTTP/1.1\r\nHost: x\r\n\r\n');
      const r = await c.read();
      assert.equal(r.framing, 'chunked');
      assert.equal(r.body, 'chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n');
      c.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
      assert.equal((await c.read()).body, 'Hello World');
    } finally { c.destroy(); }
    const d = new Client(port);
    d.write('GET /stream HTTP/1.0\r\n\r\n');
    await d.waitClosed();
    const r = await d.read();
    assert.equal(r.framing, 'close');
    assert.equal(r.body, 'chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n');
  });

  test('an idle keep-alive connection does not hold up other clients', async () => {
    const idle = [new Client(port), new Client(port), new Client(port)];
    try {
      for (const c of idle) { c.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'); await c.read(); }
      const t0 = performance.now();
      assert.equal((await httpGet(port, '/')).status, 200);
      assert.ok(performance.now() - t0 < 500);
    } finally { for (const c of idle) c.destroy(); }
  });
});

const SEED_APP = `
import fs from 'node:fs';
// the JS twin of the seed's wsgi_chunked_input.py
export async function application(environ, start_response) {
  const input = environ['wsgi.input'];
  fs.writeFileSync('test.json', await input.read());
  const status = '200 OK';
  const body = 'Hello World\\n';
  const response_headers = [
    ['Content-Type', 'text/plain'],
    ['Content-Length', String(Buffer.byteLength(body))],
  ];
  start_response(status, response_headers);
  return [body];
}
`;

/** POST a file with Transfer-Encoding: chunked and Expect: 100-continue (what curl -H "Transfer-Encoding: chunked" -d @file does). */
function chunkedUpload(p: number, file: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: p, method: 'POST', path: '/', headers: { 'Transfer-Encoding': 'chunked', 'Content-Type': 'application/x-www-form-urlencoded', Expect: '100-continue' } });
    req.on('continue', () => { fs.createReadStream(file, { highWaterMark: 256 * 1024 }).pipe(req); });
    req.on('response', (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
  });
}

function sha256File(f: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');
}

test('seed: chunked input on --http11-socket (ini, 2 processes, master), a 25 MB file written byte for byte', async () => {
  const dir = tmpDir();
  writeFile(path.join(dir, 'wsgi_chunked_input.js'), SEED_APP);
  const p = await freePort();
  writeFile(path.join(dir, 'uwsgi.ini'), `[uwsgi]\nhttp11-socket = 127.0.0.1:${p}\nwsgi-manage-chunked-input = true\nwsgi-file = wsgi_chunked_input.js\nprocesses = 2\nthreads = 2\nmaster = true\n`);
  const big = path.join(dir, 'large-file.json');
  const fd = fs.openSync(big, 'w');
  const block = crypto.randomBytes(1024 * 1024);
  for (let i = 0; i < 25; i++) { block[0] = i; fs.writeSync(fd, block); }
  fs.closeSync(fd);
  const s = await startUwcore([path.join(dir, 'uwsgi.ini')], { cwd: dir, timeoutMs: 20_000 });
  try {
    const r = await chunkedUpload(p, big);
    assert.equal(r.status, 200);
    assert.equal(r.body, 'Hello World\n');
    assert.equal(fs.statSync(path.join(dir, 'test.json')).size, 25 * 1024 * 1024);
    assert.equal(sha256File(path.join(dir, 'test.json')), sha256File(big));
  } finally {
    await s.stop();
  }
});

test('chunked bodies are de-chunked on --http too, and CONTENT_LENGTH is absent from env', async () => {
  const p = await freePort();
  const s = await startUwcore(['--http', `127.0.0.1:${p}`, '--app', writeProtocolApp(), '--disable-logging']);
  try {
    const r = await httpGet(p, '/body', { 'Transfer-Encoding': 'chunked' }, 'POST', '5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n');
    const hello = crypto.createHash('sha256').update('hello world').digest('hex');
    assert.equal(r.body.toString(), `11 ${hello} no-content-length`);
  } finally {
    await s.stop();
  }
});
