// Shared by the cache tests: an application that drives the cache API from query strings, written to a
// temporary directory (it imports `uwcore` like any application).
import path from 'node:path';
import { httpGet, tmpDir, writeFile } from '../helpers/server.js';

export const CACHE_APP = `
import { cache } from 'uwcore';
function send(sr, status, obj) {
  const b = JSON.stringify(obj);
  sr(status, [['Content-Type', 'application/json'], ['Content-Length', String(Buffer.byteLength(b))]]);
  return [b];
}
const str = (v) => (v === null ? null : v.toString());
export async function application(env, sr) {
  const q = new URLSearchParams(env.QUERY_STRING);
  const pid = process.pid;
  try {
    const c = cache(q.get('c') ?? undefined);
    const k = q.get('k');
    const opts = q.has('ex') ? { expires: Number(q.get('ex')) } : undefined;
    switch (env.PATH_INFO) {
      case '/set': return send(sr, '200 OK', { pid, r: await c.set(k, q.get('v') ?? '', opts) });
      case '/add': return send(sr, '200 OK', { pid, r: await c.add(k, q.get('v') ?? '', opts) });
      case '/update': return send(sr, '200 OK', { pid, r: await c.update(k, q.get('v') ?? '', opts) });
      case '/get': return send(sr, '200 OK', { pid, v: str(await c.get(k)) });
      case '/del': return send(sr, '200 OK', { pid, r: await c.del(k) });
      case '/exists': return send(sr, '200 OK', { pid, r: await c.exists(k) });
      case '/keys': return send(sr, '200 OK', { pid, r: await c.keys() });
      case '/clear': return send(sr, '200 OK', { pid, r: await c.clear() });
      case '/inc': return send(sr, '200 OK', { pid, r: await c.inc(k, q.has('by') ? Number(q.get('by')) : undefined) });
      case '/dec': return send(sr, '200 OK', { pid, r: await c.dec(k, q.has('by') ? Number(q.get('by')) : undefined) });
      case '/num': return send(sr, '200 OK', { pid, r: await c.num(k) });
      case '/stats': return send(sr, '200 OK', { pid, r: await c.stats() });
      case '/big': return send(sr, '200 OK', { pid, r: await c.set(k, Buffer.alloc(Number(q.get('size')), 120)) });
      case '/binary': {
        // every byte value survives; changing the Buffers afterwards changes nothing in the cache
        const orig = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
        const mine = Buffer.from(orig);
        const stored = await c.set(k, mine);
        mine.fill(0);
        const g1 = await c.get(k);
        const same1 = Buffer.isBuffer(g1) && g1.equals(orig);
        g1.fill(1);
        const g2 = await c.get(k);
        const u8 = await c.set(k + 'u8', new Uint8Array([1, 2, 3]));
        const g3 = await c.get(k + 'u8');
        return send(sr, '200 OK', { pid, stored, same1, same2: g2.equals(orig), u8, u8back: [...g3] });
      }
      case '/ordered': {
        // calls from one process apply in order: a get issued right after a set (without awaiting it) sees it
        const s = c.set(k, 'first');
        const g = c.get(k);
        const s2 = c.set(k, 'second');
        const g2 = c.get(k);
        const r = await Promise.all([s, g, s2, g2]);
        return send(sr, '200 OK', { pid, r: [r[0], str(r[1]), r[2], str(r[3])] });
      }
      case '/spin': { const end = Date.now() + Number(q.get('ms') ?? 200); while (Date.now() < end); return send(sr, '200 OK', { pid }); }
      case '/burst': {
        // n sets (64 in flight) of size bytes under prefix p; every one must resolve true
        const n = Number(q.get('n') ?? 1000), size = Number(q.get('size') ?? 16), p = q.get('p') ?? 'b';
        const val = Buffer.alloc(size, 97);
        let ok = 0, i = 0;
        const lane = async () => { while (i < n) { const j = i++; if (await c.set(p + ':' + (j % Number(q.get('mod') ?? n)), val)) ok++; } };
        await Promise.all(Array.from({ length: 64 }, lane));
        return send(sr, '200 OK', { pid, ok, n });
      }
      case '/bench': {
        const n = Number(q.get('n') ?? 20000);
        await c.set('bench', 'x'.repeat(64));
        let t = performance.now();
        for (let i = 0; i < n; i++) await c.get('bench');
        const seq = n / ((performance.now() - t) / 1000);
        t = performance.now();
        let i = 0;
        const lane = async () => { while (i++ < n) await c.get('bench'); };
        await Promise.all(Array.from({ length: 64 }, lane));
        const par = n / ((performance.now() - t) / 1000);
        t = performance.now();
        i = 0;
        const lane2 = async () => { while (i++ < n) { await c.get('bench'); await c.set('bench2', 'y'); } };
        await Promise.all(Array.from({ length: 64 }, lane2));
        const pair = n / ((performance.now() - t) / 1000);
        return send(sr, '200 OK', { pid, seq: Math.round(seq), par64: Math.round(par), getset64: Math.round(pair) });
      }
      default: return send(sr, '404 Not Found', { pid });
    }
  } catch (e) {
    return send(sr, '500 Internal Server Error', { pid, code: e.code, message: e.message });
  }
}
`;

/** Write the app to a fresh temporary directory; returns its path. */
export function writeCacheApp(): string {
  return writeFile(path.join(tmpDir('uwcore-cache-'), 'app.js'), CACHE_APP);
}

/** GET a JSON endpoint of the cache app. */
export async function call(port: number, pathAndQuery: string): Promise<{ status: number; json: Record<string, unknown> & { pid: number } }> {
  const r = await httpGet(port, pathAndQuery);
  let json: Record<string, unknown> & { pid: number };
  try { json = JSON.parse(r.body.toString()); } catch { throw new Error(`not JSON from ${pathAndQuery}: ${r.status} ${r.raw.toString().slice(0, 300)}`); }
  return { status: r.status, json };
}
