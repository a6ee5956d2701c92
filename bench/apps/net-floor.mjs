// Node's floor for new-connection-per-request work: a raw `net` server that waits for the end of the
// request, writes one fixed HTTP answer (the hello bytes) and closes. No parser, no framework.
//   BENCH_FLOOR=http (default): the request ends at the blank line of an HTTP head.
//   BENCH_FLOOR=uwsgi: the request is a uwsgi packet; it ends after its 4-byte header and datasize bytes.
import net from 'node:net';

const port = Number(process.env.BENCH_PORT);
const uwsgi = process.env.BENCH_FLOOR === 'uwsgi';
const ANSWER = Buffer.from(`HTTP/1.${uwsgi ? 0 : 1} 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\nConnection: close\r\n\r\nHello World`);
const END = Buffer.from('\r\n\r\n');
const complete = uwsgi
  ? (b) => b.length >= 4 && b.length >= 4 + (b[1] | (b[2] << 8))
  : (b) => b.indexOf(END) >= 0;

const srv = net.createServer({ noDelay: true }, (s) => {
  let head = null;
  s.on('data', (d) => {
    head = head === null ? d : Buffer.concat([head, d]);
    if (complete(head)) { s.end(ANSWER); head = Buffer.alloc(0); }
  });
  s.on('error', () => s.destroy());
});
srv.listen({ host: '127.0.0.1', port, backlog: 1024 });
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
