// Test helpers: start the real CLI on free ports, wait until it serves, talk raw bytes over sockets.
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const BIN = path.join(ROOT, 'bin/uwcore.js');

/** A TCP port that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export function tmpDir(prefix = 'uwcore-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface Running {
  proc: ChildProcess;
  /** everything written to stdout and stderr so far */
  output(): string;
  /** parsed JSON log lines from stdout */
  logs(): Array<Record<string, unknown>>;
  /** resolves when a log line matches */
  waitFor(re: RegExp, ms?: number): Promise<string>;
  /** SIGTERM (or sig), resolves with the exit code */
  stop(sig?: NodeJS.Signals, ms?: number): Promise<number | null>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface RunOptions { cwd?: string; env?: NodeJS.ProcessEnv; ready?: RegExp | null; timeoutMs?: number }

/** Run `uwcore ...args`; by default resolves once it logged "uwcore is ready". */
export async function startUwcore(args: string[], opts: RunOptions = {}): Promise<Running> {
  const proc = spawn(process.execPath, [BIN, ...args], {
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const waiters: Array<{ re: RegExp; resolve: (s: string) => void }> = [];
  const onData = (d: Buffer) => {
    out += d.toString();
    for (const w of [...waiters]) {
      const m = out.split('\n').find((l) => w.re.test(l));
      if (m !== undefined) { waiters.splice(waiters.indexOf(w), 1); w.resolve(m); }
    }
  };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  const running: Running = {
    proc,
    output: () => out,
    logs: () => out.split('\n').filter((l) => l.startsWith('{')).map((l) => { try { return JSON.parse(l) as Record<string, unknown>; } catch { return {}; } }),
    waitFor: (re, ms = 10_000) => new Promise((resolve, reject) => {
      const m = out.split('\n').find((l) => re.test(l));
      if (m !== undefined) { resolve(m); return; }
      const t = setTimeout(() => reject(new Error(`timed out waiting for ${re} in output:\n${out}`)), ms);
      waiters.push({ re, resolve: (s) => { clearTimeout(t); resolve(s); } });
      void exited.then(() => setTimeout(() => { clearTimeout(t); reject(new Error(`process exited while waiting for ${re}; output:\n${out}`)); }, 50));
    }),
    stop: async (sig = 'SIGTERM', ms = 15_000) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      proc.kill(sig);
      const t = setTimeout(() => proc.kill('SIGKILL'), ms);
      const r = await exited;
      clearTimeout(t);
      return r.code;
    },
    exited,
  };
  if (opts.ready !== null) await running.waitFor(opts.ready ?? /uwcore is ready/, opts.timeoutMs ?? 15_000);
  return running;
}

/** Run `uwcore ...args` to completion (for commands that exit): code, stdout, stderr. */
export function runUwcore(args: string[], opts: RunOptions = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [BIN, ...args], { cwd: opts.cwd ?? ROOT, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d: Buffer) => (stdout += d));
    proc.stderr.on('data', (d: Buffer) => (stderr += d));
    const t = setTimeout(() => proc.kill('SIGKILL'), opts.timeoutMs ?? 20_000);
    proc.once('exit', (code) => { clearTimeout(t); resolve({ code, stdout, stderr }); });
  });
}

/** Send raw bytes, collect everything until the server closes (or `idleMs` of silence). */
export function rawRequest(port: number, data: string | Buffer, opts: { host?: string; path?: string; idleMs?: number; until?: (buf: Buffer) => boolean } = {}): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = opts.path ? net.connect(opts.path) : net.connect(port, opts.host ?? '127.0.0.1');
    const chunks: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    const finish = () => { clearTimeout(timer); s.destroy(); resolve(Buffer.concat(chunks)); };
    const arm = () => { clearTimeout(timer); timer = setTimeout(finish, opts.idleMs ?? 2000); };
    s.on('connect', () => { s.write(data); arm(); });
    s.on('data', (d) => { chunks.push(d); if (opts.until?.(Buffer.concat(chunks))) finish(); else arm(); });
    s.on('end', finish);
    s.on('close', finish);
    s.on('error', (e: NodeJS.ErrnoException) => { if (e.code === 'ECONNRESET') finish(); else { clearTimeout(timer); reject(e); } });
  });
}

export interface HttpResult { status: number; headers: Record<string, string>; body: Buffer; raw: Buffer }

/** A simple HTTP/1.1 request with Connection: close, parsed. */
export async function httpGet(port: number, pathAndQuery = '/', headers: Record<string, string> = {}, method = 'GET', body?: string | Buffer): Promise<HttpResult> {
  const h = { Host: `127.0.0.1:${port}`, Connection: 'close', ...headers };
  if (body !== undefined && !Object.keys(h).some((k) => k.toLowerCase() === 'content-length' || k.toLowerCase() === 'transfer-encoding')) (h as Record<string, string>)['Content-Length'] = String(Buffer.byteLength(body));
  const head = `${method} ${pathAndQuery} HTTP/1.1\r\n${Object.entries(h).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n`;
  const raw = await rawRequest(port, body === undefined ? head : Buffer.concat([Buffer.from(head), Buffer.from(body)]));
  return parseResponse(raw);
}

/** Parse one HTTP response (de-chunking a chunked body). */
export function parseResponse(raw: Buffer): HttpResult {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) return { status: 0, headers: {}, body: Buffer.alloc(0), raw };
  const lines = raw.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number(lines[0]!.split(' ')[1]);
  const headers: Record<string, string> = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    const k = l.slice(0, i).trim().toLowerCase();
    headers[k] = headers[k] !== undefined ? `${headers[k]}, ${l.slice(i + 1).trim()}` : l.slice(i + 1).trim();
  }
  let body = raw.subarray(end + 4);
  if (headers['transfer-encoding'] === 'chunked') {
    const parts: Buffer[] = [];
    let off = 0;
    for (;;) {
      const nl = body.indexOf('\r\n', off);
      if (nl < 0) break;
      const size = parseInt(body.subarray(off, nl).toString(), 16);
      if (!size) break;
      parts.push(body.subarray(nl + 2, nl + 2 + size));
      off = nl + 2 + size + 2;
    }
    body = Buffer.concat(parts);
  }
  return { status, headers, body, raw };
}

/** Write a file (creating its directory). */
export function writeFile(file: string, text: string | Buffer): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
  return file;
}
