// Helpers for the process-model tests: HTTP requests through node:http (keep-alive or not), worker pids,
// a bounded load loop.
import http from 'node:http';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { ROOT } from '../helpers/server.js';

export const APP = path.join(ROOT, 'test/fixtures/process/app.js');
export const FIXTURES = path.join(ROOT, 'test/fixtures/process');

export interface Res { status: number; headers: http.IncomingHttpHeaders; body: string; ms: number }

export function req(port: number, p = '/', opts: { agent?: http.Agent | false; method?: string; body?: string | Buffer; timeoutMs?: number; socketPath?: string } = {}): Promise<Res> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const r = http.request({ host: '127.0.0.1', port, path: p, method: opts.method ?? 'GET', agent: opts.agent ?? false, socketPath: opts.socketPath }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString(), ms: performance.now() - t0 }));
      res.on('error', reject);
    });
    r.setTimeout(opts.timeoutMs ?? 15_000, () => r.destroy(new Error('request timed out')));
    r.on('error', reject);
    r.end(opts.body);
  });
}

/** pids of the master's children (the workers). */
export function childPids(masterPid: number): number[] {
  try {
    return execFileSync('ps', ['-o', 'pid=', '--ppid', String(masterPid)], { encoding: 'utf8' }).split('\n').map((s) => Number(s.trim())).filter((n) => n > 0);
  } catch { return []; }
}

export function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

export function sleep(ms: number): Promise<void> { return new Promise((r) => setTimeout(r, ms)); }

export async function waitUntil(fn: () => boolean | Promise<boolean>, ms = 10_000, step = 50): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) { if (await fn()) return true; await sleep(step); }
  return fn();
}

export interface LoadResult { ok: number; failed: number; errors: string[]; statuses: Record<number, number>; pids: Set<number> }

/**
 * Run `keepAlive` clients that reuse one connection each and `fresh` clients that open a new connection per
 * request, back to back, until `stop` resolves.
 */
export async function load(port: number, p: string, stop: Promise<unknown>, keepAlive = 3, fresh = 2): Promise<LoadResult> {
  const out: LoadResult = { ok: 0, failed: 0, errors: [], statuses: {}, pids: new Set() };
  let done = false;
  void stop.then(() => { done = true; });
  const client = async (agent: http.Agent | false) => {
    while (!done) {
      try {
        const r = await req(port, p, { agent, timeoutMs: 10_000 });
        out.statuses[r.status] = (out.statuses[r.status] ?? 0) + 1;
        if (r.status >= 500) { out.failed++; out.errors.push(`status ${r.status}`); } else out.ok++;
        try { out.pids.add(JSON.parse(r.body).pid as number); } catch { /* not json */ }
      } catch (e) {
        out.failed++;
        out.errors.push((e as Error).message);
      }
    }
    if (agent) agent.destroy();
  };
  const clients: Array<Promise<void>> = [];
  for (let i = 0; i < keepAlive; i++) clients.push(client(new http.Agent({ keepAlive: true, maxSockets: 1 })));
  for (let i = 0; i < fresh; i++) clients.push(client(false));
  await Promise.all(clients);
  return out;
}
