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

/** Backslash escapes shared by both corpora: \r \n \t, `\xHH`, plus the corpus's own single-letter ones. */
function unescape(s: string, extra: Record<string, number>): Buffer {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '\\' && i + 1 < s.length) {
      const n = s[i + 1]!;
      const simple = n === 'r' ? 13 : n === 'n' ? 10 : n === 't' ? 9 : Object.hasOwn(extra, n) ? extra[n] : undefined;
      if (simple !== undefined) { out.push(simple); i++; continue; }
      if (n === 'x' && /^[0-9a-fA-F]{2}$/.test(s.slice(i + 2, i + 4))) { out.push(parseInt(s.slice(i + 2, i + 4), 16)); i += 3; continue; }
    }
    for (const b of Buffer.from(c, 'utf8')) out.push(b);
  }
  return Buffer.from(out);
}

/** gunicorn's escapes: file newlines are ignored; \r \n \t \0 \xHH become bytes. */
function unescapeGunicorn(text: string): Buffer {
  return unescape(text.replace(/\n/g, ''), { '0': 0 });
}

/**
 * RFC 9112 §3.2 (and the issue): an HTTP/1.1 request without a Host header gets 400. Some corpora count such
 * requests as valid; for uwcore they must be refused.
 */
const REQUEST_LINE = /(^|\n)([A-Z][A-Z-]* [^\r\n]* HTTP\/1\.[01]\r?\n)/g;

/**
 * RFC 9112 §3.2 (and the issue): an HTTP/1.1 request without a Host header gets 400. Some corpora count such
 * requests as valid; for uwcore they must be refused. Returns the index of the first such request, or -1.
 */
export function missingHost(bytes: Buffer): number {
  const text = bytes.toString('latin1');
  const re = new RegExp(REQUEST_LINE.source, 'g');
  let m: RegExpExecArray | null;
  let i = 0;
  while ((m = re.exec(text)) !== null) {
    const at = m.index + m[1]!.length + m[2]!.length;
    const rest = text.slice(at);
    const end = rest.search(/\r?\n\r?\n|^\r?\n/);
    const head = end < 0 ? rest : rest.slice(0, end);
    if (/HTTP\/1\.1\r?\n$/.test(m[2]!) && !/(^|\n)host[ \t]*:/i.test(head)) return i;
    i++;
  }
  return -1;
}

/** Add `Host: vectors.test` to every HTTP/1.1 request head that lacks one. */
export function withHost(bytes: Buffer): Buffer {
  const text = bytes.toString('latin1');
  const re = /(^|\n)([A-Z][A-Z-]* [^\r\n]* HTTP\/1\.1\r?\n)/g;
  let out = '';
  let last = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text)) !== null) {
    const at = m.index + m[1]!.length + m[2]!.length;
    const rest = text.slice(at);
    const end = rest.search(/\r?\n\r?\n|^\r?\n/);
    const head = end < 0 ? rest : rest.slice(0, end);
    if (/(^|\n)host[ \t]*:/i.test(head)) continue;
    out += text.slice(last, at) + 'Host: vectors.test\r\n';
    last = at;
  }
  return Buffer.from(out + text.slice(last), 'latin1');
}

/** Vectors without Host: the original must be refused; the same bytes with a Host added must be answered. */
/** A single request whose body is shorter than its Content-Length cannot be answered (the client half-closes). */
function truncatedBody(bytes: Buffer): boolean {
  const end = bytes.indexOf('\r\n\r\n');
  if (end < 0) return false;
  const m = /\r\ncontent-length:[ \t]*(\d+)/i.exec(bytes.subarray(0, end).toString('latin1'));
  return m !== null && bytes.length - end - 4 < Number(m[1]);
}

/**
 * Vectors gunicorn calls valid or invalid for reasons of its own configuration or strictness, and what uwcore
 * does instead (each may be answered or refused, never answered twice):
 * - its request-line / header-count / field-size limits (4094 / 100 / 8190): uwcore's limit is --buffer-size;
 * - header_map=refuse for `_` in names: uwcore drops such headers from env, as nginx does;
 * - raw UTF-8 or unknown tokens in the request line (llhttp refuses what RFC 3986 / 9110 do not allow);
 * - Transfer-Encoding other than chunked (refused as a smuggling vector, as the issue requires);
 * - CONNECT (an application server offers no tunnel: 405);
 * - llhttp's M-SEARCH * (SSDP, not HTTP: the asterisk form is for OPTIONS only, RFC 9112 §3.2.4) and HTTP/0.9
 *   request lines (answered 505).
 */
const CONFIG_DEPENDENT = /gunicorn\/(invalid\/(00[6-9]|01[12]|040|limit_header_default_01)|valid\/(009|027|031|rfc9112_target_authority_.*))\.http|llhttp\/method\.md: M-SEARCH|llhttp\/sample\.md: No HTTP version/;
/**
 * llhttp (strict, as node:http runs it) refuses whitespace around `;` in chunk extensions, which RFC 9112
 * allows as BWS: such bodies are refused with 400 (never answered twice).
 */
const STRICT_PARSER = /gunicorn\/valid\/01[23]\.http/;

function hostRule(v: Vector): Vector[] {
  if (CONFIG_DEPENDENT.test(v.name) || STRICT_PARSER.test(v.name)) v = { ...v, lenient: true, messages: Math.max(v.messages, 1) };
  if (v.valid && truncatedBody(v.bytes)) v = { ...v, lenient: true };
  const hostless = v.valid ? missingHost(v.bytes) : -1;
  if (hostless >= 0) {
    return [
      { ...v, name: `${v.name} [no Host: must be refused]`, valid: false, lenient: false, messages: hostless },
      { ...v, name: `${v.name} [Host added]`, bytes: withHost(v.bytes) },
    ];
  }
  return [v];
}

export function gunicornVectors(dir: string): Vector[] {
  const out: Vector[] = [];
  for (const kind of ['valid', 'invalid'] as const) {
    const d = path.join(dir, 'gunicorn', kind);
    for (const f of fs.readdirSync(d).filter((x) => x.endsWith('.http')).sort()) {
      const py = fs.readFileSync(path.join(d, f.replace(/\.http$/, '.py')), 'utf8');
      const lenient = /cfg\.set\(/.test(py);
      const messages = kind === 'valid' ? Math.max(1, (py.match(/"method":/g) ?? []).length) : 0;
      out.push(...hostRule({ name: `gunicorn/${kind}/${f}`, bytes: unescapeGunicorn(fs.readFileSync(path.join(d, f), 'utf8')), valid: kind === 'valid', lenient, messages }));
    }
  }
  return out;
}

/** llhttp's escapes inside ```http blocks: LF → CRLF, and \r \n \t \f \xHH. */
function unescapeLlhttp(block: string): Buffer {
  return unescape(block.replace(/\r?\n/g, '\r\n'), { f: 12 });
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
      const meta = JSON.parse(m[1]!) as { type: string; skipBody?: boolean };
      if (!meta.type.startsWith('request')) continue;
      const log = m[3]!;
      const error = /error code=/.test(log);
      // request-lenient-* blocks are valid only with lenient parser flags: they must be refused
      const strict = meta.type === 'request' || meta.type === 'request-finish';
      out.push(...hostRule({
        name: `llhttp/${f}: ${heading}`,
        bytes: unescapeLlhttp(m[2]!),
        valid: !error && strict,
        // skipBody: the parser was told to skip the body (a reply to HEAD): meaningless for a server
        lenient: meta.skipBody === true,
        messages: (log.match(/message complete/g) ?? []).length,
      }));
    }
  }
  return out;
}
