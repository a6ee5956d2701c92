// The bench's own load generator, run as a separate process so it never shares the harness's event loop.
//   node bench/loadgen.mjs uwsgi HOST PORT SECONDS CONNECTIONS [PATH]
//       raw uwsgi packets (modifier1 0), one new TCP connection per request, CONNECTIONS at once: the
//       fallback when wrk is not installed (with wrk, bench/wrk-uwsgi.lua sends the packets, at less CPU
//       per request than this client, which shares the machine's cores with the server).
//   node bench/loadgen.mjs http HOST PORT SECONDS CONNECTIONS [PATH] [close] [METHOD] [BODY_SIZE]
//       HTTP/1.1 keep-alive (or Connection: close) over raw sockets: the fallback when wrk is not installed.
//       Extra request headers come from BENCH_HEADERS (one per line).
// Prints one line: BENCH_JSON {requests, duration_us, bytes, connect, read, write, status, timeout, p50_us, p90_us, p99_us, max_us}
import net from 'node:net';

const [mode, host, portS, secondsS, connS, reqPath = '/', closeS = '', method = 'GET', bodyS = '0'] = process.argv.slice(2);
const port = Number(portS);
const seconds = Number(secondsS);
const conns = Number(connS);
if (!['uwsgi', 'http'].includes(mode) || !port || !(seconds > 0) || !(conns > 0)) {
  process.stderr.write('usage: loadgen.mjs uwsgi|http HOST PORT SECONDS CONNECTIONS [PATH] [close] [METHOD] [BODY_SIZE]\n');
  process.exit(2);
}
const close = closeS === 'close';
const bodySize = Number(bodyS) || 0;
// extra request headers, one per line (e.g. Range: bytes=1000-1099)
const extraHeaders = (process.env.BENCH_HEADERS ?? '').split('\n').filter(Boolean).map((h) => h + '\r\n').join('');

function uwsgiPacket() {
  const vars = {
    REQUEST_METHOD: 'GET', REQUEST_URI: reqPath, PATH_INFO: reqPath.split('?')[0], QUERY_STRING: '',
    SERVER_PROTOCOL: 'HTTP/1.1', SCRIPT_NAME: '', SERVER_NAME: 'localhost', SERVER_PORT: String(port),
    REMOTE_ADDR: '127.0.0.1', REMOTE_PORT: '40000', HTTP_HOST: 'localhost', HTTP_USER_AGENT: 'uwcore-bench',
  };
  const parts = [];
  for (const [k, v] of Object.entries(vars)) {
    const kb = Buffer.from(k); const vb = Buffer.from(v);
    const h = Buffer.alloc(2); h.writeUInt16LE(kb.length);
    const h2 = Buffer.alloc(2); h2.writeUInt16LE(vb.length);
    parts.push(h, kb, h2, vb);
  }
  const body = Buffer.concat(parts);
  const head = Buffer.from([0, body.length & 0xff, body.length >> 8, 0]);
  return Buffer.concat([head, body]);
}

const REQ = mode === 'uwsgi'
  ? uwsgiPacket()
  : Buffer.concat([
    Buffer.from(`${method} ${reqPath} HTTP/1.1\r\nHost: ${host}:${port}\r\n${close ? 'Connection: close\r\n' : ''}${extraHeaders}${bodySize ? `Content-Type: application/octet-stream\r\nContent-Length: ${bodySize}\r\n` : ''}\r\n`),
    Buffer.alloc(bodySize, 'x'),
  ]);

const lat = [];
const stats = { requests: 0, bytes: 0, connect: 0, read: 0, write: 0, status: 0, timeout: 0 };
let running = true;
const t0 = process.hrtime.bigint();

function ok(buf) { return buf.length >= 12 && buf[9] === 0x32; } // "HTTP/1.x 2.."

/** One request on a fresh connection, answered when the server closes it (uwsgi; http close). */
function oneShot() {
  if (!running) return;
  const start = process.hrtime.bigint();
  const chunks = [];
  let size = 0;
  let connected = false;
  const s = net.connect({ host, port, noDelay: true });
  s.setTimeout(5000, () => { stats.timeout++; s.destroy(); });
  s.on('connect', () => { connected = true; s.write(REQ); });
  s.on('data', (d) => { chunks.push(d); size += d.length; });
  s.on('error', () => { if (!connected) stats.connect++; else stats.read++; });
  s.on('close', () => {
    if (connected && size > 0) {
      const buf = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
      if (running) {
        stats.requests++;
        stats.bytes += size;
        lat.push(Number(process.hrtime.bigint() - start) / 1000);
        if (!ok(buf)) stats.status++;
      }
    } else if (connected && running) stats.read++;
    setImmediate(oneShot);
  });
}

/** Keep-alive HTTP: parse Content-Length or chunked framing just enough to find each response's end. */
function keepAlive() {
  const s = net.connect({ host, port, noDelay: true });
  let buf = Buffer.alloc(0);
  let start = 0n;
  const send = () => { if (!running) { s.destroy(); return; } start = process.hrtime.bigint(); s.write(REQ); };
  s.on('connect', send);
  s.on('error', () => { stats.read++; });
  s.on('close', () => { if (running) setTimeout(keepAlive, 10); });
  s.on('data', (d) => {
    buf = buf.length ? Buffer.concat([buf, d]) : d;
    for (;;) {
      const he = buf.indexOf('\r\n\r\n');
      if (he < 0) return;
      const head = buf.subarray(0, he).toString('latin1');
      let total;
      const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head);
      if (cl) total = he + 4 + Number(cl[1]);
      else if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
        const end = buf.indexOf('\r\n0\r\n\r\n', he);
        if (end < 0) return;
        total = end + 7;
      } else { return; }
      if (buf.length < total) return;
      stats.requests++;
      stats.bytes += total;
      lat.push(Number(process.hrtime.bigint() - start) / 1000);
      if (buf[9] !== 0x32) stats.status++;
      buf = buf.subarray(total);
      send();
    }
  });
}

for (let i = 0; i < conns; i++) (mode === 'uwsgi' || close ? oneShot : keepAlive)();

setTimeout(() => {
  running = false;
  const dur = Number(process.hrtime.bigint() - t0) / 1000;
  lat.sort((a, b) => a - b);
  const pct = (p) => (lat.length ? Math.round(lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))]) : 0);
  process.stdout.write(`BENCH_JSON ${JSON.stringify({ ...stats, duration_us: Math.round(dur), p50_us: pct(50), p90_us: pct(90), p99_us: pct(99), max_us: lat.length ? Math.round(lat[lat.length - 1]) : 0 })}\n`);
  process.exit(0);
}, seconds * 1000);
