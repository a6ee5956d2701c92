// Readers for the public HTTP test vectors (../shared/test-vectors/http): gunicorn's .http/.py pairs and
// llhttp's markdown request blocks. See the folder's README for the formats.
import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from './server.js';

/** The vectors folder: beside the clone in CI, /work/shared on a development machine; null when absent. */
export function vectorsDir(): string | null {
  for (const d of [path.join(ROOT, '../shared/test-vectors/http'), '/work/shared/test-vectors/http']) {
    if (fs.existsSync(path.join(d, 'README.md'))) return d;
  }
  return null;
}

export interface Vector {
  name: string;
  bytes: Buffer;
  /** true: a well-formed request (or several); false: must be refused */
  valid: boolean;
  /** valid only under a non-default parser setting: may be answered or refused, never answered twice */
  lenient: boolean;
  /** how many complete requests the bytes hold before any error */
  messages: number;
}

/** gunicorn's escapes: file newlines are ignored; \r \n \t \0 \xHH become bytes. */
function unescapeGunicorn(text: string): Buffer {
  const s = text.replace(/\n/g, '');
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '\\' && i + 1 < s.length) {
      const n = s[i + 1]!;
      if (n === 'r') { out.push(13); i++; continue; }
      if (n === 'n') { out.push(10); i++; continue; }
      if (n === 't') { out.push(9); i++; continue; }
      if (n === '0') { out.push(0); i++; continue; }
      if (n === 'x' && /^[0-9a-fA-F]{2}$/.test(s.slice(i + 2, i + 4))) { out.push(parseInt(s.slice(i + 2, i + 4), 16)); i += 3; continue; }
    }
    for (const b of Buffer.from(c, 'utf8')) out.push(b);
  }
  return Buffer.from(out);
}

/**
 * RFC 9112 §3.2 (and the issue): an HTTP/1.1 request without a Host header gets 400. Some corpora count such
 * requests as valid; for uwcore they must be refused.
 */
export function missingHost(bytes: Buffer): boolean {
  const text = bytes.toString('latin1').replace(/^(\r?\n)+/, '');
  const end = text.search(/\r?\n\r?\n/);
  const head = end < 0 ? text : text.slice(0, end);
  const first = head.split(/\r?\n/, 1)[0] ?? '';
  return /HTTP\/1\.1$/.test(first) && !/\nhost[ \t]*:/i.test(head);
}

function hostRule(v: Vector): Vector {
  if (v.valid && missingHost(v.bytes)) return { ...v, name: `${v.name} [no Host: must be refused]`, valid: false, lenient: false, messages: 0 };
  return v;
}

export function gunicornVectors(dir: string): Vector[] {
  const out: Vector[] = [];
  for (const kind of ['valid', 'invalid'] as const) {
    const d = path.join(dir, 'gunicorn', kind);
    for (const f of fs.readdirSync(d).filter((x) => x.endsWith('.http')).sort()) {
      const py = fs.readFileSync(path.join(d, f.replace(/\.http$/, '.py')), 'utf8');
      const lenient = /cfg\.set\(/.test(py);
      const messages = kind === 'valid' ? Math.max(1, (py.match(/"method":/g) ?? []).length) : 0;
      out.push(hostRule({ name: `gunicorn/${kind}/${f}`, bytes: unescapeGunicorn(fs.readFileSync(path.join(d, f), 'utf8')), valid: kind === 'valid', lenient, messages }));
    }
  }
  return out;
}

/** llhttp's escapes inside ```http blocks: LF → CRLF, and \r \n \t \f \xHH. */
function unescapeLlhttp(block: string): Buffer {
  const s = block.replace(/\r?\n/g, '\r\n');
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '\\' && i + 1 < s.length) {
      const n = s[i + 1]!;
      if (n === 'r') { out.push(13); i++; continue; }
      if (n === 'n') { out.push(10); i++; continue; }
      if (n === 't') { out.push(9); i++; continue; }
      if (n === 'f') { out.push(12); i++; continue; }
      if (n === 'x' && /^[0-9a-fA-F]{2}$/.test(s.slice(i + 2, i + 4))) { out.push(parseInt(s.slice(i + 2, i + 4), 16)); i += 3; continue; }
    }
    for (const b of Buffer.from(c, 'utf8')) out.push(b);
  }
  return Buffer.from(out);
}

export function llhttpVectors(dir: string): Vector[] {
  const out: Vector[] = [];
  const d = path.join(dir, 'llhttp');
  for (const f of fs.readdirSync(d).filter((x) => x.endsWith('.md')).sort()) {
    const text = fs.readFileSync(path.join(d, f), 'utf8');
    const re = /<!--\s*meta=(\{[^\n]*\})\s*-->\s*\n```http\n([\s\S]*?)\n```[ \t]*\n(?:(?!```)[\s\S])*?```log\n([\s\S]*?)\n```/g;
    let m: RegExpExecArray | null;
    let heading = '';
    let last = 0;
    while ((m = re.exec(text)) !== null) {
      const before = text.slice(last, m.index);
      const hs = before.match(/^#+ .*$/gm);
      if (hs) heading = hs[hs.length - 1]!.replace(/^#+ /, '');
      last = re.lastIndex;
      const meta = JSON.parse(m[1]!) as { type: string };
      if (!meta.type.startsWith('request')) continue;
      const log = m[3]!;
      const error = /error code=/.test(log);
      // request-lenient-* blocks are valid only with lenient parser flags: they must be refused
      const strict = meta.type === 'request' || meta.type === 'request-finish';
      out.push(hostRule({
        name: `llhttp/${f}: ${heading}`,
        bytes: unescapeLlhttp(m[2]!),
        valid: !error && strict,
        lenient: false,
        messages: (log.match(/message complete/g) ?? []).length,
      }));
    }
  }
  return out;
}
