// Node's floor for new-connection-per-request work: a raw `net` server that waits for the end of the
// request head, writes one fixed HTTP answer (the hello bytes) and closes. No HTTP parser, no framework.
import net from 'node:net';

const port = Number(process.env.BENCH_PORT);
const ANSWER = Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\nConnection: close\r\n\r\nHello World');
const END = Buffer.from('\r\n\r\n');

const srv = net.createServer({ noDelay: true }, (s) => {
  let head = null;
  s.on('data', (d) => {
    head = head === null ? d : Buffer.concat([head, d]);
    if (head.indexOf(END) >= 0) { s.end(ANSWER); head = Buffer.alloc(0); }
  });
  s.on('error', () => s.destroy());
});
srv.listen({ host: '127.0.0.1', port, backlog: 1024 });
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
