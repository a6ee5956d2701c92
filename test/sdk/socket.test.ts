// uwcore/sdk/socket: lean connections behave like net sockets for what protocol plugins use (reads, half
// close, queued writes and drain, pause/resume, destroy, hand-over to a net.Socket), on node's stream handles,
// on descriptors from the native acceptor (the same cases, run again in a child with UWCORE_TEST_NATIVE=1:
// listeners with deferAccept) and in the net.Socket fallback (again, in a child with UWCORE_LEAN_SOCKETS=0).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { once } from 'node:events';
import { acceptLean, leanSockets, nativeSockets, type LeanOwner, type LeanSocket } from '../../sdk/socket.js';

const fallback = process.env.UWCORE_LEAN_SOCKETS === '0';
const native = process.env.UWCORE_TEST_NATIVE === '1';

class Recorder implements LeanOwner {
  chunks: Buffer[] = [];
  events: string[] = [];
  closed: Promise<void>;
  private done!: () => void;
  constructor(readonly s: LeanSocket, readonly onDataFn?: (r: Recorder, d: Buffer) => void) {
    this.closed = new Promise((r) => { this.done = r; });
  }
  onData(d: Buffer): void { this.chunks.push(d); this.onDataFn?.(this, d); }
  onEnd(): void { this.events.push('end'); }
  onDrain(): void { this.events.push('drain'); }
  onClose(): void { this.events.push('close'); this.done(); }
  onError(e: NodeJS.ErrnoException): void { this.events.push(`error:${e.code}`); }
}

async function serve(onData?: (r: Recorder, d: Buffer) => void): Promise<{ port: number; conns: Recorder[]; close(): Promise<void> }> {
  const srv = net.createServer({ allowHalfOpen: true });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const conns: Recorder[] = [];
  acceptLean(srv, (s) => { const r = new Recorder(s, onData); conns.push(r); return r; }, native ? { deferAccept: 1 } : {});
  return { port: (srv.address() as net.AddressInfo).port, conns, close: () => new Promise((r) => srv.close(() => r())) };
}

function collect(c: net.Socket): Promise<Buffer> {
  const parts: Buffer[] = [];
  c.on('data', (d: Buffer) => parts.push(d));
  return new Promise((resolve, reject) => { c.on('close', () => resolve(Buffer.concat(parts))); c.on('error', reject); });
}

const mode = fallback ? 'net.Socket fallback' : native ? 'native acceptor' : 'stream handles';

test(`lean sockets (${mode}): the mode is the one asked for`, () => {
  assert.equal(leanSockets, !fallback);
  // on Linux `npm install` builds the native helper (scripts/build-native.mjs); a failed build shows here
  if (!fallback && process.platform === 'linux' && process.env.UWCORE_NATIVE !== '0') assert.equal(nativeSockets, true, 'native/build/Release/uwcore_native.node is built and loads');
});

test(`lean sockets (${mode}): reads, a reply, the peer's FIN, end() and close`, async () => {
  const s = await serve((r, d) => { if (d.includes('\n')) { r.s.write('got ', 'latin1'); r.s.write(Buffer.concat(r.chunks)); } });
  const c = net.connect(s.port, '127.0.0.1');
  const got = collect(c);
  c.write('hel');
  await new Promise((r) => setTimeout(r, 20));
  c.end('lo\n');
  await new Promise((r) => setTimeout(r, 50));
  const r = s.conns[0]!;
  assert.deepEqual(r.events, ['end']);
  assert.match(String(r.s.remoteAddress), /127\.0\.0\.1/);
  r.s.end();
  assert.equal((await got).toString(), 'got hello\n');
  await r.closed;
  assert.deepEqual(r.events, ['end', 'close']);
  assert.equal(r.s.destroyed, true);
  assert.equal(r.s.write('late'), false);
  await s.close();
});

test(`lean sockets (${mode}): a write larger than the socket buffer is queued, drains, and arrives whole`, async () => {
  const big = Buffer.alloc(16 << 20);
  for (let i = 0; i < big.length; i += 4096) big.writeUInt32LE(i, i);
  const s = await serve((r) => {
    const ok = r.s.write(big);
    assert.equal(ok, false);
    assert.ok(r.s.writableLength > 0);
    r.s.writev([Buffer.from('--'), Buffer.from('tail')]);
    r.s.end();
  });
  const c = net.connect(s.port, '127.0.0.1');
  c.pause();
  c.write('go');
  await new Promise((r) => setTimeout(r, 100)); // let the server's buffer fill
  const got = collect(c);
  c.resume();
  const all = await got;
  assert.equal(all.length, big.length + 6);
  assert.ok(all.subarray(0, big.length).equals(big));
  assert.equal(all.subarray(big.length).toString(), '--tail');
  const r = s.conns[0]!;
  await r.closed;
  // a net.Socket emits no 'drain' once end() was called (the fallback differs here; nothing relies on it)
  if (!fallback) assert.ok(r.events.includes('drain'));
  await s.close();
});

test(`lean sockets (${mode}): pause stops reads until resume; destroy resets; a client reset is an error then close`, async () => {
  const s = await serve((r) => { if (r.chunks.length === 1) { r.s.pause(); setTimeout(() => r.s.resume(), 100); } });
  const c = net.connect(s.port, '127.0.0.1');
  await once(c, 'connect');
  c.write('a');
  await new Promise((r) => setTimeout(r, 30));
  c.write('b');
  await new Promise((r) => setTimeout(r, 30));
  const r = s.conns[0]!;
  assert.equal(Buffer.concat(r.chunks).toString(), 'a');
  await new Promise((res) => setTimeout(res, 120));
  assert.equal(Buffer.concat(r.chunks).toString(), 'ab');
  c.resetAndDestroy();
  await r.closed;
  assert.equal(r.events.at(-1), 'close');
  // destroy from the server side: the client sees the connection end
  const c2 = net.connect(s.port, '127.0.0.1');
  const got = collect(c2).catch(() => Buffer.alloc(0));
  c2.write('x');
  await new Promise((res) => setTimeout(res, 30));
  s.conns[1]!.s.destroy();
  await got;
  await s.conns[1]!.closed;
  await s.close();
});

test(`lean sockets (${mode}): detach hands the connection to a net.Socket with nothing lost`, async () => {
  let handed: net.Socket | null = null;
  const s = await serve((r) => {
    handed = r.s.detach();
    handed.write('handed over\n');
    handed.on('data', (d: Buffer) => handed!.end(`echo ${d}`));
  });
  const c = net.connect(s.port, '127.0.0.1');
  const got = collect(c);
  c.write('first');
  await new Promise((r) => setTimeout(r, 50));
  c.write('second');
  assert.equal((await got).toString(), 'handed over\necho second');
  assert.deepEqual(s.conns[0]!.events, []);
  await s.close();
});

test(`lean sockets (${mode}): destroy() or detach() inside accept(): no data reaches the owner; a detached socket gets every byte`, { timeout: 5000 }, async () => {
  const srv = net.createServer({ allowHalfOpen: true });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  const owners: Recorder[] = [];
  let n = 0;
  acceptLean(srv, (s) => {
    const r = new Recorder(s);
    owners.push(r);
    if (n++ === 0) s.destroy();
    else {
      const ns = s.detach();
      ns.on('data', (d: Buffer) => ns.end(`echo ${d}`));
    }
    return r;
  }, native ? { deferAccept: 1 } : {});
  const ask = () => { const c = net.connect(port, '127.0.0.1', () => c.write('hello')); return collect(c).catch(() => Buffer.alloc(0)); };
  assert.equal((await ask()).toString(), '');
  await owners[0]!.closed;
  assert.deepEqual(owners[0]!.chunks, []);
  assert.deepEqual(owners[0]!.events, ['close']);
  assert.equal((await ask()).toString(), 'echo hello');
  assert.deepEqual(owners[1]!.chunks, []);
  assert.deepEqual(owners[1]!.events, []);
  await new Promise((r) => srv.close(r));
});

if (native) {
  test('native acceptor: TCP_DEFER_ACCEPT holds a silent connection back; its first bytes come with the accept', async () => {
    const s = await serve((r, d) => { r.s.write(`got ${d}`); r.s.destroy(); });
    const c = net.connect(s.port, '127.0.0.1');
    await once(c, 'connect');
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(s.conns.length, 0, 'not accepted before it sent anything');
    const got = collect(c);
    c.write('ping');
    assert.equal((await got).toString(), 'got ping');
    const r = s.conns[0]!;
    await r.closed;
    assert.deepEqual(r.events, ['close']);
    assert.equal(r.chunks.length, 1);
    await s.close();
  });

  test('native acceptor: 200 connections at once, each answered and closed during its first call; close() frees the port', async () => {
    const s = await serve((r, d) => { r.s.cork(); r.s.write('re:'); r.s.write(d); r.s.uncork(); r.s.destroy(); });
    const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => {
      const c = net.connect(s.port, '127.0.0.1', () => c.write(`n${i}`));
      return collect(c).then(String);
    }));
    assert.deepEqual(answers, Array.from({ length: 200 }, (_, i) => `re:n${i}`));
    await Promise.all(s.conns.map((r) => r.closed));
    assert.ok(s.conns.every((r) => r.events.join() === 'close'));
    await s.close();
    const again = net.createServer();
    await new Promise<void>((res, rej) => { again.once('error', rej); again.listen(s.port, '127.0.0.1', res); });
    await new Promise((res) => again.close(res));
  });
}

if (native) {
  test('native acceptor: close() during a batch, when the slab is full, neither throws nor loses the connection being answered', async () => {
    let n = 0;
    let closed: Promise<void> | null = null;
    const s = await serve((r) => {
      r.s.write('ok');
      r.s.destroy();
      // 4 first reads of 16000 bytes fill the 64 KiB slab: the batch of the 4th one hands over a new one
      if (++n === 4) closed = s.close();
    });
    const payload = Buffer.alloc(16000, 97);
    for (let i = 0; i < 4; i++) {
      const c = net.connect(s.port, '127.0.0.1', () => c.write(payload));
      assert.equal((await collect(c)).toString(), 'ok');
    }
    await closed;
    await Promise.all(s.conns.map((r) => r.closed));
  });

  test('native acceptor: a worker thread that ends with its listener open (terminate, process.exit) ends cleanly', () => {
    const socketJs = new URL('../../sdk/socket.js', import.meta.url).href;
    const inWorker = `
      import net from 'node:net';
      import { parentPort, workerData } from 'node:worker_threads';
      const { acceptLean, leanAcceptMode } = await import(${JSON.stringify(socketJs)});
      const srv = net.createServer({ allowHalfOpen: true });
      await new Promise((r) => srv.listen(0, '127.0.0.1', r));
      acceptLean(srv, (s) => ({ onData() { s.destroy(); }, onEnd() {}, onDrain() {}, onClose() {}, onError() {} }), { deferAccept: 1 });
      parentPort.postMessage(leanAcceptMode(srv));
      if (workerData === 'exit') setTimeout(() => process.exit(0), 20);
    `;
    const main = `
      import { Worker } from 'node:worker_threads';
      for (const how of ['terminate', 'exit']) {
        const w = new Worker(${JSON.stringify(inWorker)}, { eval: true, workerData: how });
        const mode = await new Promise((r, j) => { w.once('message', r); w.once('error', j); });
        if (how === 'terminate') await w.terminate();
        else await new Promise((r) => w.once('exit', r));
        console.log(how, mode);
      }
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', main], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.equal(r.stdout, 'terminate native\nexit native\n');
  });
}

if (!fallback && !native) {
  /** this file again in a child with `env` (NODE_TEST_CONTEXT cleared: an inherited one makes the child exit 0 whatever fails) */
  const runAgain = (env: Record<string, string>) => {
    const r = spawnSync(process.execPath, ['--test', fileURLToPath(import.meta.url)], { env: { ...process.env, NODE_TEST_CONTEXT: undefined, ...env }, encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, r.stdout + r.stderr);
  };

  test('lean sockets: the same cases pass on the native acceptor (UWCORE_TEST_NATIVE=1)', { skip: !nativeSockets && 'the native helper is not built' }, () => {
    runAgain({ UWCORE_TEST_NATIVE: '1' });
  });

  test('lean sockets: the same cases pass over net.Socket (UWCORE_LEAN_SOCKETS=0)', () => {
    runAgain({ UWCORE_LEAN_SOCKETS: '0' });
  });
}
