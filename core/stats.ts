// The stats server (--stats ADDR, --stats-http): one uWSGI-compatible JSON document per connection, built
// by the master at request time from the workers' live counters (asked over IPC) and /proc.
import { Buffer } from 'node:buffer';
import fs from 'node:fs';
import net from 'node:net';
import type pino from 'pino';
import type { Address, StatsDocument } from '../sdk/index.js';
import { Codes, UwError } from './errors.js';
import { VERSION } from './version.js';

/** What a worker reports about itself. */
export interface WorkerCounters {
  requests: number;
  exceptions: number;
  inflight: number;
  /** bytes of response bodies sent */
  tx: number;
  /** total ms spent in requests */
  rt: number;
  harakiri: number;
  accepting: boolean;
  cores: Array<{ id: number; requests: number; in_request: number }>;
}

export function emptyCounters(): WorkerCounters {
  return { requests: 0, exceptions: 0, inflight: 0, tx: 0, rt: 0, harakiri: 0, accepting: true, cores: [] };
}

/** rss and vsz of a process in bytes (Linux /proc; zeros elsewhere). */
export function procMemory(pid: number): { rss: number; vsz: number } {
  try {
    const [vsz, rss] = fs.readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ').map(Number);
    return { rss: (rss ?? 0) * 4096, vsz: (vsz ?? 0) * 4096 };
  } catch { return { rss: 0, vsz: 0 }; }
}

/** Current accept-queue length and backlog of listening TCP sockets, by port (Linux /proc/net/tcp*). */
export function listenQueues(): Map<number, { queue: number; max: number }> {
  const out = new Map<number, { queue: number; max: number }>();
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try { text = fs.readFileSync(f, 'utf8'); } catch { continue; }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[3] !== '0A') continue; // LISTEN
      const port = parseInt(cols[1]!.split(':')[1]!, 16);
      const [tx, rx] = cols[4]!.split(':').map((h) => parseInt(h, 16));
      const prev = out.get(port);
      out.set(port, { queue: (prev?.queue ?? 0) + (rx ?? 0), max: Math.max(prev?.max ?? 0, tx ?? 0) });
    }
  }
  return out;
}

export interface WorkerRow {
  id: number;
  pid: number;
  counters: WorkerCounters;
  delta: number;
  spawnedAt: number;
  respawns: number;
  alive: boolean;
}

export interface StatsInput {
  pid: number;
  sockets: Array<{ name: string; proto: string; port: number | null }>;
  backlog: number;
  workers: WorkerRow[];
  /** the SDK's `stats` waterfall: plugins add their sections */
  extend: (doc: StatsDocument) => StatsDocument;
}

export function statsDocument(input: StatsInput): StatsDocument {
  const queues = listenQueues();
  const sockets = input.sockets.map((s) => {
    const q = s.port !== null ? queues.get(s.port) : undefined;
    return { name: s.name, proto: s.proto, queue: q?.queue ?? 0, max_queue: q?.max || input.backlog, shared: 0, can_offload: 0 };
  });
  const workers = input.workers.map((w) => {
    const c = w.counters;
    const mem = w.alive ? procMemory(w.pid) : { rss: 0, vsz: 0 };
    const cores = c.cores.length ? c.cores : [{ id: 0, requests: c.requests, in_request: c.inflight > 0 ? 1 : 0 }];
    return {
      id: w.id, pid: w.pid, accepting: w.alive && c.accepting ? 1 : 0, requests: c.requests, delta_requests: w.delta,
      exceptions: c.exceptions, harakiri_count: c.harakiri, signals: 0, signal_queue: 0,
      status: !w.alive ? 'cheap' : c.inflight > 0 ? 'busy' : 'idle',
      rss: mem.rss, vsz: mem.vsz, running_time: Math.round(c.rt * 1000), last_spawn: Math.floor(w.spawnedAt / 1000),
      respawn_count: w.respawns, tx: c.tx, avg_rt: c.requests ? Math.round((c.rt * 1000) / c.requests) : 0,
      apps: [], cores: cores.map((k) => ({
        id: k.id, requests: k.requests, static_requests: 0, routed_requests: 0, offloaded_requests: 0,
        write_errors: 0, read_errors: 0, in_request: k.in_request, vars: [], req_info: {},
      })),
    };
  });
  const doc: StatsDocument = {
    version: VERSION,
    listen_queue: sockets.reduce((n, s) => n + s.queue, 0),
    listen_queue_errors: 0,
    signal_queue: 0,
    load: input.workers.reduce((n, w) => n + (w.alive ? w.counters.inflight : 0), 0),
    pid: input.pid,
    uid: process.getuid?.() ?? 0,
    gid: process.getgid?.() ?? 0,
    cwd: process.cwd(),
    locks: [],
    sockets,
    workers,
  };
  return input.extend(doc) ?? doc;
}

const HTTP_HEAD = 'HTTP/1.0 200 OK\r\nConnection: close\r\nAccess-Control-Allow-Origin: *\r\nContent-Type: application/json\r\n';

/** Serve the document: raw (written at once, then closed) or HTTP (after reading the request head). */
export function startStatsServer(addr: Address, opts: { http: boolean; minified: boolean; log: pino.Logger; build: () => Promise<StatsDocument> }): Promise<net.Server> {
  const send = (sock: net.Socket) => {
    opts.build().then((doc) => {
      const json = JSON.stringify(doc, null, opts.minified ? undefined : 2);
      if (opts.http) sock.end(`${HTTP_HEAD}Content-Length: ${Buffer.byteLength(json)}\r\n\r\n${json}`);
      else sock.end(json);
    }, (e: Error) => {
      opts.log.error({ err: e }, `stats: cannot build the document: ${e.message}`);
      sock.destroy();
    });
  };
  const srv = net.createServer((sock) => {
    sock.on('error', () => sock.destroy());
    sock.setTimeout(5000, () => sock.destroy());
    if (!opts.http) { send(sock); return; }
    let head = '';
    const onData = (d: Buffer) => {
      head += d.toString('latin1');
      if (head.includes('\r\n\r\n') || head.includes('\n\n') || head.length >= 4096) { sock.removeListener('data', onData); send(sock); }
    };
    sock.on('data', onData);
  });
  return new Promise((resolve, reject) => {
    srv.once('error', (e: NodeJS.ErrnoException) => {
      const where = addr.kind === 'unix' ? addr.path : `${addr.host}:${addr.port}`;
      reject(new UwError(e.code === 'EADDRINUSE' ? Codes.LISTEN_IN_USE : Codes.LISTEN, `cannot serve stats on ${where} (--stats): ${e.code === 'EADDRINUSE' ? 'address already in use' : e.message}`));
    });
    const ok = () => { srv.removeAllListeners('error'); srv.on('error', (e) => opts.log.error({ err: e }, 'stats server error')); resolve(srv); };
    if (addr.kind === 'unix') srv.listen(addr.path, ok);
    else srv.listen(addr.port, addr.host, ok);
  });
}
