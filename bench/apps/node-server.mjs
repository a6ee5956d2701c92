// Bare node:http baseline: answers the same bytes as the uwcore bench apps, with no framework around it.
// BENCH_PORT, BENCH_MODE (hello | chunked | echo | static), BENCH_FILE (static), BENCH_WORKERS (0 = one
// process; N = node:cluster primary + N workers, SCHED_NONE like uwcore unless BENCH_SCHED=rr).
import cluster from 'node:cluster';
import fs from 'node:fs';
import http from 'node:http';

const port = Number(process.env.BENCH_PORT);
const mode = process.env.BENCH_MODE ?? 'hello';
const workers = Number(process.env.BENCH_WORKERS ?? 0);
const file = process.env.BENCH_FILE ?? '';

if (workers > 0 && cluster.isPrimary) {
  cluster.schedulingPolicy = process.env.BENCH_SCHED === 'rr' ? cluster.SCHED_RR : cluster.SCHED_NONE;
  for (let i = 0; i < workers; i++) cluster.fork();
  const stop = () => { for (const w of Object.values(cluster.workers)) w?.process.kill('SIGTERM'); setTimeout(() => process.exit(0), 200).unref(); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else {
  const HELLO = 'Hello World';
  const CHUNK = Buffer.alloc(1024, 'x');
  let handler;
  if (mode === 'hello') {
    handler = (req, res) => {
      res.writeHead(200, [['Content-Type', 'text/plain'], ['Content-Length', '11']]);
      res.end(HELLO);
    };
  } else if (mode === 'chunked') {
    handler = (req, res) => {
      res.writeHead(200, [['Content-Type', 'text/plain']]);
      for (let i = 0; i < 15; i++) res.write(CHUNK);
      res.end(CHUNK);
    };
  } else if (mode === 'echo') {
    handler = (req, res) => {
      const parts = [];
      req.on('data', (d) => parts.push(d));
      req.on('end', () => {
        const body = Buffer.concat(parts);
        res.writeHead(200, [['Content-Type', 'application/octet-stream'], ['Content-Length', String(body.length)]]);
        res.end(body);
      });
    };
  } else if (mode === 'static') {
    // what a bare node static server does per request: stat, then stream the file (Range: one bytes=a-b)
    handler = (req, res) => {
      fs.stat(file, (err, st) => {
        if (err) { res.writeHead(404); res.end(); return; }
        const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
        let start = 0;
        let end = st.size - 1;
        if (m) {
          start = Number(m[1]);
          end = Math.min(Number(m[2]), st.size - 1);
          res.writeHead(206, [['Content-Type', 'application/octet-stream'], ['Content-Length', String(end - start + 1)], ['Content-Range', `bytes ${start}-${end}/${st.size}`], ['Last-Modified', st.mtime.toUTCString()]]);
        } else {
          res.writeHead(200, [['Content-Type', 'application/octet-stream'], ['Content-Length', String(st.size)], ['Last-Modified', st.mtime.toUTCString()]]);
        }
        fs.createReadStream(file, { start, end }).pipe(res);
      });
    };
  } else {
    throw new Error(`unknown BENCH_MODE ${mode}`);
  }
  const srv = http.createServer({ keepAliveTimeout: 5000 }, handler);
  srv.listen({ host: '127.0.0.1', port, backlog: 1024 });
  process.on('SIGTERM', () => { srv.close(); srv.closeAllConnections(); process.exit(0); });
  process.on('SIGINT', () => process.exit(0));
}
