// The spool file format: uWSGI's, byte for byte. A spool file is one uwsgi packet — a 4-byte header
// (modifier1 17, the vars block size as little-endian 16 bits, modifier2 0), the vars block (each var:
// key size le16, key, value size le16, value) — followed by the optional raw body. uwcore's own vars
// (`ud_spool_func`, `ud_spool_ret` as in uwsgidecorators, `uwcore_json`, `uwcore_body_size`) are ordinary
// vars any uWSGI tool can read; bookkeeping (attempts, last error) lives beside the file, never inside it.
import os from 'node:os';
import crypto from 'node:crypto';

export const MODIFIER1 = 17;
export const PREFIX = 'uwsgi_spoolfile_on_';
/** the largest vars block a uwsgi packet can carry */
export const MAX_VARS = 65535;

export const SPOOL_OK = -2;
export const SPOOL_RETRY = -1;
export const SPOOL_IGNORE = 0;

/** vars uwcore writes for itself: never passed to the task function as arguments */
export const INTERNAL_VARS = new Set(['ud_spool_func', 'ud_spool_ret', 'uwcore_json', 'uwcore_body_size', 'spooler', 'priority', 'at', 'body', 'spooler_task_name']);

export class CorruptSpoolFile extends Error {
  constructor(message: string) { super(message); this.name = 'CorruptSpoolFile'; }
}

/** Build a spool file: header + vars + body. Throws (with `tooBig`) when the vars exceed 64 KiB. */
export function encodePacket(vars: Array<[string, string]>, body?: Buffer | null): Buffer {
  let size = 0;
  const enc: Array<[Buffer, Buffer]> = [];
  for (const [k, v] of vars) {
    const kb = Buffer.from(k, 'utf8');
    const vb = Buffer.from(v, 'utf8');
    if (kb.length > 0xffff || vb.length > 0xffff) throw Object.assign(new Error(`arg ${JSON.stringify(k.slice(0, 40))} is ${Math.max(kb.length, vb.length)} bytes; one key or value may hold at most 65535 bytes: pass large data as \`body\``), { tooBig: true });
    enc.push([kb, vb]);
    size += 4 + kb.length + vb.length;
  }
  if (size > MAX_VARS) throw Object.assign(new Error(`the args take ${size} bytes; a spool file's vars block holds at most ${MAX_VARS} bytes (uWSGI's 64k limit): pass large data as \`body\``), { tooBig: true });
  const bodyLen = body ? body.length : 0;
  const out = Buffer.allocUnsafe(4 + size + bodyLen);
  out[0] = MODIFIER1;
  out.writeUInt16LE(size, 1);
  out[3] = 0;
  let o = 4;
  for (const [kb, vb] of enc) {
    out.writeUInt16LE(kb.length, o); o += 2;
    kb.copy(out, o); o += kb.length;
    out.writeUInt16LE(vb.length, o); o += 2;
    vb.copy(out, o); o += vb.length;
  }
  if (body && bodyLen) body.copy(out, o);
  return out;
}

export interface Packet { vars: Map<string, string>; body: Buffer | null }

/** Parse a spool file; throws CorruptSpoolFile on anything that is not a complete uwsgi packet. */
export function decodePacket(buf: Buffer): Packet {
  if (buf.length < 4) throw new CorruptSpoolFile(`truncated: ${buf.length} bytes, shorter than the 4-byte uwsgi header`);
  if (buf[0] !== MODIFIER1) throw new CorruptSpoolFile(`not a spool packet: modifier1 is ${buf[0]}, expected ${MODIFIER1}`);
  const size = buf[1]! | (buf[2]! << 8); // little-endian 16 bits (inline: this runs for every task)
  if (4 + size > buf.length) throw new CorruptSpoolFile(`truncated: the header announces ${size} bytes of vars, the file has ${buf.length - 4}`);
  const vars = new Map<string, string>();
  let o = 4;
  const end = 4 + size;
  while (o < end) {
    if (o + 2 > end) throw new CorruptSpoolFile(`malformed vars block at byte ${o}`);
    const kl = buf[o]! | (buf[o + 1]! << 8); o += 2;
    if (o + kl + 2 > end) throw new CorruptSpoolFile(`malformed vars block: a key runs past the block at byte ${o}`);
    const k = buf.toString('utf8', o, o + kl); o += kl;
    const vl = buf[o]! | (buf[o + 1]! << 8); o += 2;
    if (o + vl > end) throw new CorruptSpoolFile(`malformed vars block: the value of ${JSON.stringify(k)} runs past the block`);
    vars.set(k, buf.toString('utf8', o, o + vl)); o += vl;
  }
  const body = buf.length > end ? buf.subarray(end) : null;
  const want = vars.get('uwcore_body_size');
  if (want !== undefined && Number(want) !== (body ? body.length : 0)) {
    throw new CorruptSpoolFile(`truncated: the body has ${body ? body.length : 0} bytes, ${want} were written`);
  }
  return { vars, body };
}

// ---------------------------------------------------------------------------------------------
// task args

const RESERVED = new Set([...INTERNAL_VARS]);

/** Turn a task's args object into vars: strings as they are, other JSON values encoded (listed in `uwcore_json`). */
export function argsToVars(args: Record<string, unknown>): { vars: Array<[string, string]>; json: string[] } {
  const vars: Array<[string, string]> = [];
  const json: string[] = [];
  for (const [k, v] of Object.entries(args)) {
    if (v === undefined) continue;
    if (RESERVED.has(k)) {
      const opt = k === 'at' || k === 'priority' || k === 'body' || k === 'spooler';
      throw Object.assign(new Error(opt ? `arg name \`${k}\` is reserved: give it as an option, task.spool(args, { ${k} })` : `arg name \`${k}\` is reserved for the spooler's own use; rename the arg`), { reserved: true });
    }
    if (k === '') throw new Error('an arg name may not be empty');
    if (typeof v === 'string') { vars.push([k, v]); continue; }
    if (typeof v === 'function' || typeof v === 'symbol' || typeof v === 'bigint' || Buffer.isBuffer(v) || v instanceof Uint8Array) {
      throw new Error(`arg \`${k}\` is a ${Buffer.isBuffer(v) || v instanceof Uint8Array ? 'Buffer' : typeof v}; args are strings or JSON values (pass bytes as \`body\`)`);
    }
    let s: string;
    try { s = JSON.stringify(v); } catch (e) { throw new Error(`arg \`${k}\` cannot be encoded as JSON: ${(e as Error).message}`); }
    vars.push([k, s]);
    json.push(k);
  }
  return { vars, json };
}

/** The args the task function receives: the user's vars, JSON ones decoded, plus spooler_task_name (and body). */
export function varsToArgs(p: Packet, id: string): Record<string, unknown> {
  const json = new Set<string>();
  const j = p.vars.get('uwcore_json');
  if (j) { try { for (const k of JSON.parse(j) as string[]) json.add(k); } catch { throw new CorruptSpoolFile('malformed uwcore_json var'); } }
  const out: Record<string, unknown> = {};
  for (const [k, v] of p.vars) {
    if (INTERNAL_VARS.has(k)) continue;
    if (json.has(k)) { try { out[k] = JSON.parse(v); } catch { throw new CorruptSpoolFile(`arg ${k} is not valid JSON`); } } else out[k] = v;
  }
  out.spooler_task_name = id;
  if (p.body) out.body = p.body;
  return out;
}

/** A short `k=v, k=v` summary of a task's args (for `uwcore spooler ls`). */
export function summarizeArgs(p: Packet, max = 60): string {
  const parts: string[] = [];
  for (const [k, v] of p.vars) if (!INTERNAL_VARS.has(k)) parts.push(`${k}=${v}`);
  if (p.body) parts.push(`body=${p.body.length}B`);
  const s = parts.join(', ').replace(/[\r\n\t]/g, ' ');
  return s.length > max ? s.slice(0, max - 1) + '…' : s;
}

// ---------------------------------------------------------------------------------------------
// names

const HOST = os.hostname().replace(/[^A-Za-z0-9.-]/g, '-') || 'localhost';
let counter = 0;

/** uWSGI's spool file name: uwsgi_spoolfile_on_<host>_<pid>_<counter>_<random>_<sec>_<usec>. */
export function newTaskId(): string {
  const now = Date.now();
  const us = Math.floor((performance.timeOrigin * 1000 + performance.now() * 1000) % 1_000_000);
  return `${PREFIX}${HOST}_${process.pid}_${++counter}_${crypto.randomInt(0, 2 ** 31 - 1)}_${Math.floor(now / 1000)}_${String(us).padStart(6, '0')}`;
}

/** Is this a name the spooler picks up (a safe single path component, and a line of running/<pid>/.current)? */
export function isTaskName(name: string): boolean {
  return name.startsWith(PREFIX) && !name.includes('/') && !name.includes('\0') && !name.includes('\n') && name !== '.' && name !== '..';
}
