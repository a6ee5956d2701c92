// The uwsgi protocol over real sockets: raw packets (whole, fragmented, malformed, hostile), the response as
// HTTP bytes, modifier dispatch, UNIX sockets, timeouts and client resets.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { freePort, parseResponse, rawRequest, startUwcore, tmpDir, writeFile, type Running } from '../helpers/server.js';
import { writeProtocolApp } from '../helpers/protocol-app.js';
import { encodePacket } from '../../plugins/uwsgi/index.js';

const NGINX_VARS = (uri: string, extra: Record<string, string> = {}): Record<string, string> => {
  const q = uri.indexOf('?');
  return {
    QUERY_STRING: q < 0 ? '' : uri.slice(q + 1),
    REQUEST_METHOD: 'GET',
    CONTENT_TYPE: '',
    CONTENT_LENGTH: '',
    REQUEST_URI: uri,
    PATH_INFO: decodeURIComponent(q < 0 ? uri : uri.slice(0, q)),
    DOCUMENT_ROOT: '/usr/share/nginx/html',
    SERVER_PROTOCOL: 'HTTP/1.1',
    REQUEST_SCHEME: 'http',
    REMOTE_ADDR: '127.0.0.1',
    REMOTE_PORT: '50000',
    SERVER_PORT: '80',
    SERVER_NAME: 'localhost',
    HTTP_HOST: 'localhost',
    ...extra,
  };
};

/** Send bytes (optionally in pieces), collect until the server closes. */
function exchange(target: { port?: number; path?: string }, pieces: Buffer[], opts: { gapMs?: number; end?: boolean; timeoutMs?: number } = {}): Promise<Buffer> {
  return new Promise((resolve) => {
    const s = target.path ? net.connect(target.path) : net.connect(target.port!, '127.0.0.1');
    s.setNoDelay(true);
    const chunks: Buffer[] = [];
    const t = setTimeout(() => s.destroy(), opts.timeoutMs ?? 5000);
    s.on('connect', async () => {
      for (const p of pieces) {
        if (s.destroyed) break;
        s.write(p);
        if (opts.gapMs !== undefined) await new Promise((r) => setTimeout(r, opts.gapMs));
      }
      if (opts.end) s.end();
    });
    s.on('data', (d) => chunks.push(d));
    s.on('error', () => undefined);
    s.on('close', () => { clearTimeout(t); resolve(Buffer.concat(chunks)); });
  });
}

function split(b: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < b.length; i += size) out.push(b.subarray(i, i + size));
  return out;
}

let dir: string;
let app: string;
let srv: Running;
let port: number;
let sock: string;

const PING_PLUGIN = `
export default {
  name: 'ping-test', version: '1.0.0', sdk: '^1.0.0', requires: ['uwsgi'],
  setup(api) {
    api.use('uwsgi').registerModifier(100, (pkt) => {
      pkt.socket.end(Buffer.from([100, 0, 0, 1]));
    });
  },
};
`;

before(async () => {
  dir = tmpDir();
  app = writeProtocolApp(dir);
  const plugin = writeFile(path.join(dir, 'ping-test.mjs'), PING_PLUGIN);
  port = await freePort();
  sock = path.join(dir, 'run', 'app.sock');
  srv = await startUwcore(['--uwsgi-socket', `127.0.0.1:${port}`, '--socket', sock, '--chmod-socket', '660', '--app', app,
    '--buffer-size', '8k', '--limit-post', '2m', '--socket-timeout', '1', '--plugins', plugin]);
});
after(async () => { await srv?.stop(); });

function warnings(re: RegExp): number {
  return srv.logs().filter((l) => l.level === 40 && re.test(String(l.msg))).length;
}

async function stillServes(): Promise<void> {
  const r = parseResponse(await exchange({ port }, [encodePacket(NGINX_VARS('/'))]));
  assert.equal(r.status, 200);
  assert.equal(r.body.toString(), 'Hello World');
}

describe('uwsgi protocol', () => {
  test('hello world: an HTTP response with the request\'s SERVER_PROTOCOL, then close', async () => {
    const raw = await exchange({ port }, [encodePacket(NGINX_VARS('/'))]);
    assert.match(raw.toString(), /^HTTP\/1\.1 200 OK\r\nContent-Type: text\/plain\r\nContent-Length: 11\r\n/);
    assert.ok(raw.toString().endsWith('\r\n\r\nHello World'));
    const r10 = await exchange({ port }, [encodePacket(NGINX_VARS('/', { SERVER_PROTOCOL: 'HTTP/1.0' }))]);
    assert.match(r10.toString(), /^HTTP\/1\.0 200 OK\r\n/);
  });

  test('env is exactly the vars sent plus wsgi.*/uwcore.* keys; UWSGI_FILE and SCRIPT_NAME choose nothing', async () => {
    const evil = writeFile(path.join(dir, 'evil.mjs'), 'export function application(e, s) { s("200 OK", []); return ["evil"]; }');
    const vars = NGINX_VARS('/env?a=1&b=%20', { UWSGI_FILE: evil, UWSGI_MODULE: 'evil', UWSGI_CALLABLE: 'application', UWSGI_SCRIPT: 'evil', SCRIPT_NAME: '/evil', HTTP_X_CUSTOM: 'v' });
    const r = parseResponse(await exchange({ port }, [encodePacket(vars)]));
    assert.equal(r.status, 200);
    const env = JSON.parse(r.body.toString()) as Record<string, string>;
    const extra = Object.keys(env).filter((k) => !(k in vars)).sort();
    assert.deepEqual(extra, ['uwcore.version', 'wsgi.url_scheme']);
    for (const [k, v] of Object.entries(vars)) assert.equal(env[k], v, k);
    assert.equal(env['wsgi.url_scheme'], 'http');
  });

  test('consecutive packets whose keys and values change at the same positions each get their own env', async () => {
    // the listener remembers the strings of the last packets' vars by position: changed bytes must never
    // come back as a remembered string (same length, other bytes; other keys; fewer and more vars; UTF-8)
    const variants: Array<Record<string, string>> = [
      NGINX_VARS('/env?a=1', { REMOTE_PORT: '50001', HTTP_X_A: 'aaaa' }),
      NGINX_VARS('/env?a=2', { REMOTE_PORT: '50002', HTTP_X_A: 'aaab' }),
      NGINX_VARS('/env?b=2', { REMOTE_PORT: '50003', HTTP_X_B: 'aaab' }),
      { REQUEST_METHOD: 'GET', PATH_INFO: '/env/é', QUERY_STRING: 'a=1', SERVER_PROTOCOL: 'HTTP/1.1' },
      { PATH_INFO: '/env/ü', REQUEST_METHOD: 'GET', QUERY_STRING: 'a=2', SERVER_PROTOCOL: 'HTTP/1.0', HTTP_X_C: 'c' },
      NGINX_VARS('/env?a=1', { REMOTE_PORT: '50004', HTTP_X_A: 'aaaa' }),
      NGINX_VARS('/env?a=1', { REMOTE_PORT: '50005', HTTP_X_A: 'aaaa' }),
    ];
    for (let round = 0; round < 2; round++) {
      for (const vars of variants) {
        const r = parseResponse(await exchange({ port }, [encodePacket(vars)]));
        assert.equal(r.status, 200);
        const env = JSON.parse(r.body.toString()) as Record<string, string>;
        for (const [k, v] of Object.entries(vars)) assert.equal(env[k], v, k);
        const sent = Object.keys(vars);
        const extra = Object.keys(env).filter((k) => !sent.includes(k) && !k.startsWith('wsgi.') && !k.startsWith('uwcore.'));
        assert.deepEqual(extra, vars.REQUEST_URI === undefined ? ['REQUEST_URI'] : []);
      }
    }
  });

  test('repeated vars in a packet that otherwise follows the remembered keys: HTTP_* joined, the last wins, CONTENT_LENGTH must agree', async () => {
    // the listener builds the env of a packet with the remembered keys in one go: a packet that repeats
    // one of them (at the end, or in place of another) must still be merged var by var
    const pairs = (vars: Record<string, string>): Array<[string, string]> => Object.entries(vars);
    const packet = (list: Array<[string, string]>): Buffer => {
      const block = Buffer.concat(list.map(([k, v]) => encodePacket({ [k]: v }).subarray(4)));
      return Buffer.concat([Buffer.from([0, block.length & 0xff, block.length >> 8, 0]), block]);
    };
    const env = async (list: Array<[string, string]>): Promise<Record<string, string>> => {
      const r = parseResponse(await exchange({ port }, [packet(list)]));
      assert.equal(r.status, 200);
      return JSON.parse(r.body.toString()) as Record<string, string>;
    };
    const base = pairs(NGINX_VARS('/env'));
    for (let i = 0; i < 3; i++) assert.equal((await env(base)).HTTP_HOST, 'localhost');
    assert.equal((await env([...base, ['HTTP_HOST', 'other']])).HTTP_HOST, 'localhost, other');
    const replaced = base.map(([k, v]): [string, string] => (k === 'HTTP_HOST' ? ['SERVER_NAME', 'second'] : [k, v]));
    const e = await env(replaced);
    assert.equal(e.SERVER_NAME, 'second');
    assert.equal(e.HTTP_HOST, undefined);
    assert.equal((await env([['SERVER_NAME', 'first'], ...base.slice(1)])).SERVER_NAME, 'localhost');
    assert.equal((await env(base)).SERVER_NAME, 'localhost');
    const before = warnings(/conflicting CONTENT_LENGTH/);
    const raw = await exchange({ port }, [packet([...base, ['CONTENT_LENGTH', '5']])], { end: true });
    assert.equal(raw.length, 0);
    for (let t = 0; t < 100 && warnings(/conflicting CONTENT_LENGTH/) === before; t++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(warnings(/conflicting CONTENT_LENGTH/), before + 1);
    assert.equal((await env(base)).HTTP_HOST, 'localhost');
  });

  test('any fragmentation: byte by byte and at random split points, with a body', async () => {
    const body = crypto.randomBytes(3000);
    const pkt = encodePacket(NGINX_VARS('/body', { REQUEST_METHOD: 'POST', CONTENT_LENGTH: String(body.length) }), { body });
    const want = `${body.length} ${crypto.createHash('sha256').update(body).digest('hex')} content-length=3000`;
    const head = pkt.subarray(0, pkt.length - body.length);
    const r1 = parseResponse(await exchange({ port }, [...split(head, 1), body], { gapMs: 0 }));
    assert.equal(r1.body.toString(), want);
    for (let i = 0; i < 5; i++) {
      const cuts = [0, ...Array.from({ length: 6 }, () => Math.floor(Math.random() * pkt.length)).sort((a, b) => a - b), pkt.length];
      const pieces = cuts.slice(1).map((c, j) => pkt.subarray(cuts[j]!, c)).filter((p) => p.length);
      const r = parseResponse(await exchange({ port }, pieces, { gapMs: 2 }));
      assert.equal(r.body.toString(), want, `cuts ${cuts.join(',')}`);
    }
  });

  test('a 1 MB body arrives intact; HEAD has no body; a half-closed client still gets its answer', async () => {
    const body = crypto.randomBytes(1024 * 1024);
    const r = parseResponse(await exchange({ port }, [encodePacket(NGINX_VARS('/body', { REQUEST_METHOD: 'POST', CONTENT_LENGTH: String(body.length) }), { body })], { end: true }));
    assert.equal(r.body.toString().split(' ')[1], crypto.createHash('sha256').update(body).digest('hex'));
    const h = await exchange({ port }, [encodePacket(NGINX_VARS('/', { REQUEST_METHOD: 'HEAD' }))]);
    assert.match(h.toString(), /^HTTP\/1\.1 200 OK\r\n[\s\S]*Content-Length: 11\r\n/);
    assert.ok(h.toString().endsWith('\r\n\r\n'), 'HEAD response has no body');
  });

  test('streamed response without Content-Length is close-delimited, also when the app asks for chunked', async () => {
    const s = parseResponse(await exchange({ port }, [encodePacket(NGINX_VARS('/stream'))]));
    assert.equal(s.status, 200);
    assert.equal(s.headers['content-length'], undefined);
    assert.equal(s.body.toString(), 'chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n');
    // Transfer-Encoding is hop-by-hop: nginx frames the body for its client (it does not decode chunked from uwsgi)
    const c = await exchange({ port }, [encodePacket(NGINX_VARS('/chunked'))]);
    assert.doesNotMatch(c.toString(), /transfer-encoding/i);
    assert.ok(c.toString().endsWith('\r\n\r\nhello world'), JSON.stringify(c.toString()));
    const big = parseResponse(await exchange({ port }, [encodePacket(NGINX_VARS('/big', { QUERY_STRING: '64' }))]));
    assert.equal(big.body.length, 64 * 65536);
  });

  test('UNIX socket with --chmod-socket', async () => {
    assert.equal(fs.statSync(sock).mode & 0o777, 0o660);
    const r = parseResponse(await exchange({ path: sock }, [encodePacket(NGINX_VARS('/echo-path?x=1'))]));
    assert.equal(r.body.toString(), '/echo-path|x=1|GET');
  });

  test('--limit-post: a CONTENT_LENGTH over the limit gets 413', async () => {
    const r = parseResponse(await exchange({ port }, [encodePacket(NGINX_VARS('/body', { REQUEST_METHOD: 'POST', CONTENT_LENGTH: String(3 * 1024 * 1024) }))]));
    assert.equal(r.status, 413);
  });

  test('malformed packets: connection closed, one warning each, the worker keeps serving', async () => {
    const good = encodePacket(NGINX_VARS('/'));
    const keyOverflow = Buffer.from(good); keyOverflow.writeUInt16LE(60000, 4);
    const valOverflow = Buffer.from(good); valOverflow.writeUInt16LE(60000, 4 + 2 + 'QUERY_STRING'.length);
    const emptyKey = Buffer.from(good); emptyKey.writeUInt16LE(0, 4);
    const bigDatasize = Buffer.from(good); bigDatasize.writeUInt16LE(good.length, 1);
    const many: Record<string, string> = {};
    for (let i = 0; i < 1001; i++) many[`K${i}`] = '';
    const huge = encodePacket({ ...NGINX_VARS('/'), HTTP_X_BIG: 'x'.repeat(9000) });
    const cases: Array<[string, Buffer[], RegExp]> = [
      ['truncated header', [good.subarray(0, 2)], /truncated header/],
      ['datasize beyond the data', [bigDatasize], /vars block shorter/],
      ['key length overflowing the block', [keyOverflow], /key length/],
      ['value length overflowing the block', [valOverflow], /value length/],
      ['empty key', [emptyKey], /empty key/],
      ['zero-length block', [Buffer.from([0, 0, 0, 0])], /empty vars block/],
      ['non-numeric CONTENT_LENGTH', [encodePacket(NGINX_VARS('/', { CONTENT_LENGTH: 'abc' }))], /CONTENT_LENGTH/],
      ['negative CONTENT_LENGTH', [encodePacket(NGINX_VARS('/', { CONTENT_LENGTH: '-5' }))], /CONTENT_LENGTH/],
      ['body shorter than CONTENT_LENGTH', [encodePacket(NGINX_VARS('/body', { REQUEST_METHOD: 'POST', CONTENT_LENGTH: '100' }), { body: Buffer.alloc(10) })], /short of its CONTENT_LENGTH/],
      ['more than 1000 vars', [encodePacket(many)], /more than 1000 vars/],
      ['vars block over --buffer-size', [huge], /larger than --buffer-size/],
      ['unregistered modifier1', [encodePacket(NGINX_VARS('/'), { modifier1: 5 })], /no plugin handles modifier1 5/],
    ];
    for (const [name, pieces, re] of cases) {
      const before = warnings(re);
      const raw = await exchange({ port }, pieces, { end: true });
      assert.equal(raw.length === 0 || !raw.toString().startsWith('HTTP/1.1 200'), true, `${name}: answered ${JSON.stringify(raw.toString().slice(0, 40))}`);
      for (let t = 0; t < 100 && warnings(re) === before; t++) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 30));
      assert.equal(warnings(re), before + 1, `${name}: one warning matching ${re}`);
      await stillServes();
    }
  });

  test('a registered modifier1 gets the packet (ping: modifier1 100)', async () => {
    const raw = await exchange({ port }, [Buffer.from([100, 0, 0, 0])]);
    assert.deepEqual([...raw], [100, 0, 0, 1]);
  });

  test('an HTTP request on the uwsgi socket: 400 and one log line suggesting --http-socket', async () => {
    const raw = await rawRequest(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.match(raw.toString(), /^HTTP\/1\.1 400 Bad Request/);
    await srv.waitFor(/HTTP request arrived on the uwsgi socket.*--http-socket/);
  });

  test('slow clients: 200 connections dribbling a byte each 300 ms do not delay a request and are closed after --socket-timeout', async () => {
    const slow: net.Socket[] = [];
    let closed = 0;
    const pkt = encodePacket(NGINX_VARS('/'));
    await Promise.all(Array.from({ length: 200 }, () => new Promise<void>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.write(pkt.subarray(0, 1)); resolve(); });
      s.on('error', () => undefined);
      s.on('close', () => closed++);
      s.resume();
      slow.push(s);
    })));
    // one more byte every 300 ms: the inactivity timeout (1 s) alone would never fire
    let off = 1;
    const drip = setInterval(() => { for (const s of slow) if (!s.destroyed) s.write(pkt.subarray(off, off + 1)); off++; }, 300);
    try {
      const t0 = performance.now();
      await stillServes();
      const ms = performance.now() - t0;
      assert.ok(ms < 500, `request took ${ms} ms with 200 dribbling connections`);
      await new Promise((r) => setTimeout(r, 2000));
      assert.equal(closed, 200, 'dribbling connections closed by --socket-timeout 1');
    } finally {
      clearInterval(drip);
      for (const s of slow) s.destroy();
    }
  });

  test('the server closes right after a complete response, without waiting for the client\'s FIN; UTF-8 body glued to the head', async () => {
    const t0 = performance.now();
    const got = await new Promise<{ raw: Buffer; ended: boolean }>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => s.write(encodePacket(NGINX_VARS('/echo-path?q=é'))));
      const chunks: Buffer[] = [];
      let ended = false;
      s.on('data', (d) => chunks.push(d));
      s.on('end', () => { ended = true; });
      s.on('error', () => undefined);
      s.on('close', () => resolve({ raw: Buffer.concat(chunks), ended }));
      setTimeout(() => s.destroy(), 3000);
    });
    const ms = performance.now() - t0;
    assert.ok(got.ended, 'the server closed the connection (FIN)');
    assert.ok(ms < 500, `closed after ${ms} ms (--socket-timeout is 1 s)`);
    const r = parseResponse(got.raw);
    assert.equal(r.status, 200);
    // QUERY_STRING is decoded as Latin-1 (like a header value): the body holds non-ASCII characters
    assert.equal(r.body.toString('utf8'), `/echo-path|${Buffer.from('q=é').toString('latin1')}|GET`);
  });

  test('--socket-timeout: a body that stops arriving, and streamed responses the client does not read, are closed', async () => {
    const fds = () => fs.readdirSync(`/proc/${srv.proc.pid}/fd`).length;
    await stillServes();
    const before = fds();
    // a body that stalls after 10 of its 100000 bytes: closed about 1 s later
    const t0 = performance.now();
    await new Promise<void>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => s.write(encodePacket(NGINX_VARS('/body', { REQUEST_METHOD: 'POST', CONTENT_LENGTH: '100000' }), { body: Buffer.alloc(10) })));
      s.resume();
      s.on('error', () => undefined);
      s.on('close', () => resolve());
    });
    const ms = performance.now() - t0;
    assert.ok(ms > 700 && ms < 3000, `stalled body closed after ${ms} ms`);
    // 13 MB responses to clients that never read: the flush makes no progress, the connections close
    const idle: net.Socket[] = [];
    for (let i = 0; i < 3; i++) {
      const s = net.connect(port, '127.0.0.1', () => s.write(encodePacket(NGINX_VARS('/big?200', { QUERY_STRING: '200' }))));
      s.pause();
      s.on('error', () => undefined);
      idle.push(s);
    }
    try {
      await new Promise((r) => setTimeout(r, 400));
      assert.ok(fds() >= before + 3, 'the stuck responses hold their connections for now');
      await new Promise((r) => setTimeout(r, 2600));
      assert.ok(fds() <= before + 1, `descriptors: ${before} before, ${fds()} after --socket-timeout`);
    } finally {
      for (const s of idle) s.destroy();
    }
    await stillServes();
  });

  test('client resets mid-body and mid-response: no crash, no leaked descriptors', async () => {
    const fds = () => fs.readdirSync(`/proc/${srv.proc.pid}/fd`).length;
    await stillServes();
    const before = fds();
    for (let i = 0; i < 30; i++) {
      await new Promise<void>((resolve) => {
        const s = net.connect(port, '127.0.0.1', () => {
          if (i % 2 === 0) {
            s.write(encodePacket(NGINX_VARS('/body', { REQUEST_METHOD: 'POST', CONTENT_LENGTH: '1000000' }), { body: Buffer.alloc(50000) }));
            setTimeout(() => s.resetAndDestroy(), 10);
          } else s.write(encodePacket(NGINX_VARS('/big', { QUERY_STRING: '200' })));
        });
        s.once('data', () => s.resetAndDestroy());
        s.on('error', () => undefined);
        s.on('close', () => resolve());
      });
    }
    // a reset mid-response runs the response's close()
    const mark = path.join(dir, 'closed.txt');
    await new Promise<void>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => s.write(encodePacket(NGINX_VARS('/closing', { QUERY_STRING: encodeURIComponent(mark) }))));
      s.once('data', () => s.resetAndDestroy());
      s.on('error', () => undefined);
      s.on('close', () => resolve());
    });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(fs.readFileSync(mark, 'utf8'), 'closed\n');
    await stillServes();
    assert.ok(fds() <= before + 2, `descriptors: ${before} before, ${fds()} after`);
    assert.equal(srv.proc.exitCode, null);
  });
});
