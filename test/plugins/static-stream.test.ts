// Streaming big files: a file that changes during a download never yields a response that claims to be
// complete, descriptors are released on completion and abort, memory stays flat for huge files.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { freePort, startUwcore, tmpDir, writeFile, httpGet, type Running } from '../helpers/server.js';

const MB = 1024 * 1024;

/** GET with a client that stops reading after the first bytes until `whilePaused` resolves. */
function pausedDownload(port: number, target: string, whilePaused: () => Promise<void>): Promise<{ contentLength: number; body: number; head: string; bytes: Buffer[] }> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let paused = false;
    s.on('connect', () => s.write(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));
    s.on('data', (d) => {
      chunks.push(d);
      if (!paused) {
        paused = true;
        s.pause();
        setTimeout(() => { whilePaused().then(() => s.resume(), reject); }, 150);
      }
    });
    const done = () => {
      const all = Buffer.concat(chunks);
      const end = all.indexOf('\r\n\r\n');
      const head = all.subarray(0, end).toString('latin1');
      const cl = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? -1);
      resolve({ contentLength: cl, body: all.length - end - 4, head, bytes: [all.subarray(end + 4)] });
    };
    s.on('close', done);
    s.on('error', () => { /* reset: close follows */ });
  });
}

function fdCount(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

function rss(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}

describe('static: streaming', () => {
  let srv: Running;
  let port: number;
  let dir: string;
  const SIZE = 32 * MB;

  before(async () => {
    dir = tmpDir('uwcore-static-stream-');
    port = await freePort();
    writeFile(path.join(dir, 'app.js'), `export function application(env, sr) { sr('404 Not Found', [['Content-Length', '0']]); return []; }\n`);
    fs.mkdirSync(path.join(dir, 'www'));
    // single process: the pid we spawn is the one serving (for /proc/PID/fd and RSS)
    srv = await startUwcore(['--http', `127.0.0.1:${port}`, '--app', 'app.js', '--check-static', 'www', '--static-cache-paths', '0', '--disable-logging'], { cwd: dir });
  });
  after(async () => { await srv?.stop(); fs.rmSync(dir, { recursive: true, force: true }); });

  it('a file rewritten in place during a download: the response is cut short, never complete', async () => {
    const f = path.join(dir, 'www/inplace.bin');
    fs.writeFileSync(f, Buffer.alloc(SIZE, 0x61));
    const r = await pausedDownload(port, '/inplace.bin', async () => {
      const fd = fs.openSync(f, 'r+');
      fs.writeSync(fd, Buffer.alloc(MB, 0x62), 0, MB, SIZE - MB);
      fs.closeSync(fd);
    });
    assert.match(r.head, /^HTTP\/1\.1 200/);
    assert.equal(r.contentLength, SIZE);
    assert.ok(r.body < SIZE, `received ${r.body} of ${SIZE} bytes: the changed file must not be delivered as complete`);
  });

  it('a file truncated during a download: the response is cut short', async () => {
    const f = path.join(dir, 'www/trunc.bin');
    fs.writeFileSync(f, Buffer.alloc(SIZE, 0x61));
    const r = await pausedDownload(port, '/trunc.bin', async () => { fs.truncateSync(f, 20 * MB); });
    assert.equal(r.contentLength, SIZE);
    assert.ok(r.body < SIZE, `received ${r.body} of ${SIZE}`);
  });

  it('a file replaced by rename during a download: the old version arrives complete and intact', async () => {
    const f = path.join(dir, 'www/swap.bin');
    fs.writeFileSync(f, Buffer.alloc(SIZE, 0x61));
    const r = await pausedDownload(port, '/swap.bin', async () => {
      fs.writeFileSync(f + '.new', Buffer.alloc(SIZE / 2, 0x62));
      fs.renameSync(f + '.new', f);
    });
    assert.equal(r.body, SIZE);
    const body = Buffer.concat(r.bytes);
    assert.equal(body.indexOf(0x62), -1, 'no byte of the new version');
    const next = await httpGet(port, '/swap.bin', { Range: 'bytes=0-0' });
    assert.equal(next.headers['content-range'], `bytes 0-0/${SIZE / 2}`, 'the next request sees the new file');
  });

  it('descriptors are closed after completion and after client aborts', async () => {
    const f = path.join(dir, 'www/abort.bin');
    fs.writeFileSync(f, Buffer.alloc(16 * MB, 0x61));
    await httpGet(port, '/abort.bin', { Range: 'bytes=0-0' });
    await new Promise((r) => setTimeout(r, 100));
    const base = fdCount(srv.proc.pid!);
    const aborts = Array.from({ length: 6 }, () => new Promise<void>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.on('connect', () => s.write('GET /abort.bin HTTP/1.1\r\nHost: x\r\n\r\n'));
      s.once('data', () => { s.destroy(); resolve(); });
      s.on('error', () => resolve());
    }));
    await Promise.all(aborts);
    await httpGet(port, '/abort.bin');
    let n = -1;
    for (let i = 0; i < 20; i++) {
      await new Promise((r) => setTimeout(r, 50));
      n = fdCount(srv.proc.pid!);
      if (n <= base) break;
    }
    assert.ok(n <= base, `open descriptors ${n}, baseline ${base}`);
    assert.equal((await httpGet(port, '/abort.bin', { Range: 'bytes=5-9' })).body.toString(), 'aaaaa', 'still serving');
  });

  it('a huge (sparse) file streams with flat memory', async () => {
    const f = path.join(dir, 'www/huge.bin');
    const HUGE = 256 * MB;
    const fd = fs.openSync(f, 'w');
    fs.ftruncateSync(fd, HUGE);
    fs.closeSync(fd);
    const before = rss(srv.proc.pid!);
    let peak = before;
    const timer = setInterval(() => { try { peak = Math.max(peak, rss(srv.proc.pid!)); } catch { /* exited */ } }, 20);
    const total = await new Promise<number>((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1');
      let n = 0;
      s.on('connect', () => s.write('GET /huge.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
      s.on('data', (d) => { n += d.length; });
      s.on('close', () => resolve(n));
      s.on('error', reject);
    });
    clearInterval(timer);
    assert.ok(total > HUGE, `received ${total}`);
    assert.ok(peak - before < 64 * MB, `RSS grew by ${((peak - before) / MB).toFixed(1)} MB while streaming ${HUGE / MB} MB`);
    fs.unlinkSync(f);
  });
});
