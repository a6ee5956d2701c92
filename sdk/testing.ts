// Test helpers for plugin authors (`import { createTestServer, inject } from 'uwcore/sdk/testing'`).
// They run the real core — option table, plugin checks, setup, hooks, the request pipeline and the
// response path — in the test's own process, and feed requests to node:http's parser over an in-memory
// duplex instead of a socket: no ports, no child processes, the same bytes a client would receive.
// Unlike sdk/index.ts this module imports the core at runtime: use it in tests, never in a plugin.
import { Buffer } from 'node:buffer';
import http from 'node:http';
import path from 'node:path';
import { Duplex, Writable } from 'node:stream';
import pino from 'pino';
import type { AppKind, HeaderList, ListenerInfo, OptionValues, Plugin, Registry, ServiceSpec, Wire, Protocol, RouterActionFactory, RouteCondition, RouteConditionSpec } from './index.js';
import { Server } from '../core/server.js';
import { checkPlugin, loadPlugins, type LoadedPlugin } from '../core/plugins.js';
import { OptionTable, resolveOptions } from '../core/config/resolve.js';
import { CORE_OPTIONS } from '../core/config/core-options.js';
import type { Entry } from '../core/config/sources.js';
import { wsgiHandler } from '../core/wsgi.js';
import { installRuntime } from '../core/runtime.js';
import { Codes, UwError } from '../core/errors.js';

/** An option value as a test gives it: like the command line (`'8k'`, `'30s'`, `true`), or a list for a repeatable option. @since 1.0.0 */
export type TestOptionValue = string | number | boolean | Array<string | number>;

/** @since 1.0.0 */
export interface TestServerOptions {
  /** plugin objects (your plugin, imported from your source) and/or names the loader resolves (`'http'`, a package, a path). */
  plugins?: Array<Plugin<any> | string>;
  /** option values by name (or alias), typed and checked against the option table exactly as on the command line. */
  options?: Record<string, TestOptionValue>;
  /** the application: a WSGI callable `(env, start_response)`, anything a registered app kind recognises, or a file path. */
  app?: unknown;
  /** the directory relative paths resolve against (default: process.cwd()). */
  cwd?: string;
  /** which process the plugins believe they run in (default `single`). */
  process?: 'single' | 'master' | 'worker';
  /** also open the listeners plugins declared with api.listen() (real sockets); default false. */
  listen?: boolean;
  /** log level of the captured logs (default `debug`). */
  logLevel?: string;
}

/** One captured log record (pino's JSON object: level, msg, plugin, code …). @since 1.0.0 */
export type LogRecord = Record<string, unknown> & { level: number; msg?: string };

/** @since 1.0.0 */
export interface InjectOptions {
  /** give up after this many milliseconds (default 5000). */
  timeoutMs?: number;
  /** the client's address as the server sees it. */
  remoteAddress?: string;
}

/** A parsed HTTP response. @since 1.0.0 */
export interface InjectResponse {
  status: number;
  reason: string;
  /** header names in lower case; repeated headers joined with ", ". */
  headers: Record<string, string>;
  /** headers as received, in order. */
  rawHeaders: HeaderList;
  /** the body, de-chunked. */
  body: Buffer;
  /** the body as UTF-8. */
  text: string;
  /** the bytes of this response on the wire. */
  raw: Buffer;
}

/** Everything the server wrote for one injected connection. @since 1.0.0 */
export interface InjectResult extends InjectResponse {
  /** every response on the connection (pipelined requests), the first one is also spread on this object. */
  responses: InjectResponse[];
  /** all bytes the server wrote. */
  wire: Buffer;
}

/** A running in-process server built from the real core. @since 1.0.0 */
export interface TestServer {
  /** the merged, typed options. */
  readonly options: OptionValues;
  /** log records written so far (setup, request errors, access log). */
  readonly logs: LogRecord[];
  readonly protocols: Pick<Registry<Protocol>, 'get' | 'has'>;
  readonly routerActions: Pick<Registry<RouterActionFactory>, 'get' | 'has'>;
  readonly routeConditions: Pick<Registry<RouteCondition | RouteConditionSpec>, 'get' | 'has'>;
  readonly appKinds: Pick<Registry<AppKind>, 'get' | 'has'>;
  readonly services: Pick<Registry<ServiceSpec>, 'get' | 'has'>;
  /** the listeners plugins declared with api.listen(). */
  readonly listeners: ListenerInfo[];
  /** what plugin `name` returned from setup (its API for other plugins). */
  api<T = unknown>(name: string): T;
  /** call plugin's rpc method as a worker would (answered in this process). */
  rpc<T = unknown>(plugin: string, method: string, payload?: unknown): Promise<T>;
  /** send raw request bytes on a fresh connection; resolves with what the server wrote. */
  inject(raw: string | Uint8Array, opts?: InjectOptions): Promise<InjectResult>;
  /** build and inject one HTTP/1.1 request (Connection: close). */
  request(method: string, target: string, init?: { headers?: Record<string, string>; body?: string | Uint8Array }): Promise<InjectResult>;
  /** run the close hooks and onClose handlers; closes real listeners if any. */
  close(): Promise<void>;
}

const TEST_LISTENER: ListenerInfo = Object.freeze({
  option: 'http', protocol: 'http', keepAlive: true,
  address: Object.freeze({ kind: 'tcp' as const, host: '127.0.0.1', port: 80, raw: '127.0.0.1:80' }),
});

function toEntries(options: Record<string, TestOptionValue>, cwd: string): Entry[] {
  const out: Entry[] = [];
  for (const [key, v] of Object.entries(options)) {
    const values = Array.isArray(v) ? v : [v];
    for (const x of values) {
      if (x === false) continue;
      out.push({ key, value: x === true ? true : String(x), source: 'cli', baseDir: cwd, where: 'createTestServer options' });
    }
  }
  return out;
}

/**
 * Start the real core in this process with the given plugins, options and application.
 * Refusals (SDK range, option collisions, unknown hooks, setup timeout …) reject with the same
 * `UwError` (code, plugin, hook) that stops `uwcore` at startup.
 * @since 1.0.0
 */
export async function createTestServer(opts: TestServerOptions = {}): Promise<TestServer> {
  const cwd = path.resolve(opts.cwd ?? process.cwd());
  const given = opts.plugins ?? [];
  const objects: LoadedPlugin[] = [];
  const names: string[] = [];
  for (const p of given) {
    if (typeof p === 'string') names.push(p);
    else objects.push({ plugin: checkPlugin(p, `<${(p as Plugin)?.name ?? 'plugin'} object>`, 'path', String((p as Plugin)?.name)), origin: 'path', file: '<object>', requested: String((p as Plugin)?.name) });
  }
  // requirements of plugin objects that the test did not give are loaded by name
  for (const o of objects) for (const r of o.plugin.requires ?? []) {
    if (!objects.some((x) => x.plugin.name === r) && !names.includes(r)) names.push(r);
  }
  const byName = names.length ? await loadPlugins(names, [], cwd) : [];
  const plugins: LoadedPlugin[] = [...byName.filter((l) => !objects.some((o) => o.plugin.name === l.plugin.name)), ...objects];
  const seen = new Set<string>();
  for (const lp of plugins) {
    for (const r of lp.plugin.requires ?? []) {
      if (!seen.has(r)) throw new UwError(Codes.PLUGIN_REQUIRES, `plugin \`${lp.plugin.name}\` requires plugin \`${r}\`, which is not loaded before it; list it first in plugins`, { plugin: lp.plugin.name });
    }
    if (seen.has(lp.plugin.name)) throw new UwError(Codes.PLUGIN_DUPLICATE, `two plugins are named \`${lp.plugin.name}\`; load only one`, { plugin: lp.plugin.name });
    seen.add(lp.plugin.name);
  }

  const table = new OptionTable();
  table.add('core', CORE_OPTIONS);
  const pluginOptions = new Map<string, string[]>();
  for (const lp of plugins) {
    const specs = lp.plugin.options ?? [];
    table.add(lp.plugin.name, specs);
    pluginOptions.set(lp.plugin.name, specs.map((s) => s.name));
  }
  const options = resolveOptions(table, toEntries(opts.options ?? {}, cwd), { placeholders: new Set(), warn: () => undefined });
  options['__plugins'] = plugins.map((p) => p.plugin.name);

  const logs: LogRecord[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) { try { logs.push(JSON.parse(line) as LogRecord); } catch { /* not JSON */ } }
      cb();
    },
  });
  const root = pino({ level: opts.logLevel ?? 'debug', base: { pid: process.pid }, serializers: { err: pino.stdSerializers.err } }, sink);
  const role = opts.process ?? 'single';
  const server = new Server({ options, root, role, workerId: role === 'master' ? 0 : 1 });
  installRuntime({ workerId: server.workerId, requests: () => server.requests, reload: () => undefined, plugin: (n) => server.apis.get(n) });
  await server.setupPlugins(plugins, pluginOptions);
  server.hooks.configure.call(options);
  if (role !== 'worker') await server.hooks.masterStart.promise();
  if (role !== 'master') await server.hooks.workerStart.promise();
  if (typeof opts.app === 'string') {
    (options as Record<string, unknown>).app = path.resolve(cwd, opts.app);
    await server.loadApplication(cwd);
  } else if (opts.app !== undefined) {
    let handler: unknown;
    for (const [, kind] of server.appKinds.entries()) {
      handler = kind.detect(opts.app, { callable: 'application', file: '<test app>' });
      if (handler) break;
    }
    if (!handler) {
      if (typeof opts.app !== 'function') throw new UwError(Codes.APP_NOT_CALLABLE, 'createTestServer: app must be a function application(env, start_response) or a file path');
      handler = wsgiHandler(opts.app as Parameters<typeof wsgiHandler>[0]);
    }
    server.app = handler as Server['app'];
    server.appDescription = '<test app>';
  }
  server.seal();
  if (opts.listen) await server.openListeners();
  await server.hooks.ready.promise();

  const parser = createParser(server);
  let closed = false;
  const view = <T>(r: { get(n: string): T | undefined; has(n: string): boolean }) => ({ get: (n: string) => r.get(n), has: (n: string) => r.has(n) });
  const ts: TestServer = {
    options,
    logs,
    protocols: view(server.protocols),
    routerActions: view(server.routerActions),
    routeConditions: view(server.routeConditions),
    appKinds: view(server.appKinds),
    services: view(server.services),
    listeners: server.declared.map((d) => d.info),
    api: <T>(name: string) => server.apis.get(name) as T,
    rpc: <T>(plugin: string, method: string, payload?: unknown) => server.rpcServe(`${plugin}:${method}`, payload, { workerId: 1, pid: process.pid }) as Promise<T>,
    inject: (raw, o) => injectInto(parser, raw, o),
    request: (method, target, init = {}) => injectInto(parser, buildRequest(method, target, init.headers, init.body)),
    async close() {
      if (closed) return;
      closed = true;
      if (server.handles.length) await server.stop(1000);
      else await server.runClose();
    },
  };
  servers.set(ts, parser);
  return ts;
}

const servers = new WeakMap<TestServer, http.Server>();

/**
 * Send raw request bytes to a test server on a fresh in-memory connection. The client half-closes
 * after writing; the result holds every response the server wrote before it closed the connection.
 * @since 1.0.0
 */
export function inject(server: TestServer, raw: string | Uint8Array, opts?: InjectOptions): Promise<InjectResult> {
  return server.inject(raw, opts);
}

/** Build the bytes of one HTTP/1.1 request with Host and Connection: close (and Content-Length for a body). @since 1.0.0 */
export function buildRequest(method: string, target: string, headers: Record<string, string> = {}, body?: string | Uint8Array): Buffer {
  const h: Record<string, string> = { Host: 'localhost', Connection: 'close', ...headers };
  const lower = Object.keys(h).map((k) => k.toLowerCase());
  if (body !== undefined && !lower.includes('content-length') && !lower.includes('transfer-encoding')) h['Content-Length'] = String(Buffer.byteLength(body));
  const head = `${method} ${target} HTTP/1.1\r\n${Object.entries(h).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
  return body === undefined ? Buffer.from(head, 'latin1') : Buffer.concat([Buffer.from(head, 'latin1'), Buffer.from(body)]);
}

// ---------------------------------------------------------------------------------------------
// in-memory connection

class MemorySocket extends Duplex {
  peer: MemorySocket | null = null;
  remoteAddress = '127.0.0.1';
  remotePort = 40000;
  remoteFamily = 'IPv4';
  localAddress = '127.0.0.1';
  localPort = 80;
  private peerEnded = false;
  override _read(): void { /* data is pushed by the peer */ }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void { this.peer?.push(chunk); cb(); }
  override _final(cb: () => void): void { this.endPeer(); cb(); }
  override _destroy(err: Error | null, cb: (e: Error | null) => void): void { this.endPeer(); cb(err); }
  private endPeer(): void { if (!this.peerEnded && this.peer) { this.peerEnded = true; this.peer.push(null); } }
  setTimeout(): this { return this; }
  setNoDelay(): this { return this; }
  setKeepAlive(): this { return this; }
  ref(): this { return this; }
  unref(): this { return this; }
  destroySoon(): void { this.end(); }
}

function createParser(server: Server): http.Server {
  const srv = http.createServer({ maxHeaderSize: server.bufferSize, requestTimeout: 0, requireHostHeader: true }, (req, res) => {
    server.dispatch(server.httpEnv(req, TEST_LISTENER), req, res as unknown as Wire, TEST_LISTENER);
  });
  // answer every pipelined request after the client half-closed, then close (node's default aborts them)
  (srv as unknown as { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
  srv.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
    const text = status === 431 ? 'Request Header Fields Too Large' : 'Bad Request';
    if (socket.writable) socket.end(`HTTP/1.1 ${status} ${text}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
    else socket.destroy();
  });
  return srv;
}

function injectInto(parser: http.Server, raw: string | Uint8Array, opts: InjectOptions = {}): Promise<InjectResult> {
  const client = new MemorySocket();
  const conn = new MemorySocket();
  client.peer = conn;
  conn.peer = client;
  if (opts.remoteAddress) conn.remoteAddress = opts.remoteAddress;
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      conn.destroy();
      reject(new Error(`inject: no complete answer within ${opts.timeoutMs ?? 5000} ms (got ${Buffer.concat(chunks).length} bytes: ${JSON.stringify(Buffer.concat(chunks).toString('latin1').slice(0, 200))})`));
    }, opts.timeoutMs ?? 5000);
    client.on('data', (d: Buffer) => chunks.push(d));
    client.once('end', () => {
      clearTimeout(timer);
      const wire = Buffer.concat(chunks);
      const methods = [...Buffer.from(raw).toString('latin1').matchAll(REQUEST_LINE)].map((m) => m[1]!);
      const responses = parseResponses(wire, methods);
      const first = responses[0] ?? { status: 0, reason: '', headers: {}, rawHeaders: [], body: Buffer.alloc(0), text: '', raw: wire };
      resolve({ ...first, responses, wire });
    });
    parser.emit('connection', conn);
    client.end(typeof raw === 'string' ? Buffer.from(raw, 'latin1') : Buffer.from(raw));
  });
}

const REQUEST_LINE = /(?:^|\r\n)([A-Z]+) \S+ HTTP\/1\.[01]\r\n/g;

/**
 * Parse the responses in a byte stream (Content-Length, chunked, or until the end). `methods[i]` is the method
 * of the i-th request: the answer to a HEAD has no body whatever its headers say.
 * @since 1.0.0
 */
export function parseResponses(wire: Buffer, methods: string[] = []): InjectResponse[] {
  const out: InjectResponse[] = [];
  let off = 0;
  while (off < wire.length) {
    const end = wire.indexOf('\r\n\r\n', off);
    if (end < 0) break;
    const lines = wire.subarray(off, end).toString('latin1').split('\r\n');
    const m = /^HTTP\/\d\.\d (\d{3}) ?(.*)$/.exec(lines[0]!);
    if (!m) break;
    const rawHeaders: HeaderList = [];
    const headers: Record<string, string> = {};
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      if (i <= 0) continue;
      const k = l.slice(0, i).trim();
      const v = l.slice(i + 1).trim();
      rawHeaders.push([k, v]);
      const lk = k.toLowerCase();
      headers[lk] = headers[lk] !== undefined ? `${headers[lk]}, ${v}` : v;
    }
    const status = Number(m[1]);
    let p = end + 4;
    let body: Buffer;
    const noBody = status < 200 || status === 204 || status === 304 || methods[out.length] === 'HEAD';
    if (noBody) body = Buffer.alloc(0);
    else if (/\bchunked\b/i.test(headers['transfer-encoding'] ?? '')) {
      const parts: Buffer[] = [];
      for (;;) {
        const nl = wire.indexOf('\r\n', p);
        if (nl < 0) { p = wire.length; break; }
        const size = parseInt(wire.subarray(p, nl).toString('latin1'), 16);
        if (!size) {
          const trailerEnd = wire.indexOf('\r\n\r\n', nl);
          p = trailerEnd < 0 ? wire.length : (trailerEnd === nl ? nl + 4 : trailerEnd + 4);
          if (wire.subarray(nl, nl + 4).toString('latin1') === '\r\n\r\n') p = nl + 4;
          break;
        }
        parts.push(wire.subarray(nl + 2, nl + 2 + size));
        p = nl + 2 + size + 2;
      }
      body = Buffer.concat(parts);
    } else if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      body = wire.subarray(p, p + n);
      p += n;
    } else {
      body = wire.subarray(p);
      p = wire.length;
    }
    out.push({ status, reason: m[2] ?? '', headers, rawHeaders, body, text: body.toString('utf8'), raw: wire.subarray(off, p) });
    off = p;
  }
  return out;
}
