// RFC 9110 request-header logic for static files: HTTP dates, entity-tag lists (strong and weak
// comparison), the Range header (through range-parser, with the RFC's edge cases fixed around it) and
// Accept-Encoding.
import rangeParser from 'range-parser';

const MONTHS: Record<string, number> = { Jan: 0, Feb: 1, Mar: 2, Apr: 3, May: 4, Jun: 5, Jul: 6, Aug: 7, Sep: 8, Oct: 9, Nov: 10, Dec: 11 };
// IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
const IMF = /^[A-Z][a-z]{2}, (\d{2}) ([A-Z][a-z]{2}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$/;
// obsolete RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
const RFC850 = /^[A-Z][a-z]+, (\d{2})-([A-Z][a-z]{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) GMT$/;
// obsolete asctime: Sun Nov  6 08:49:37 1994
const ASCTIME = /^[A-Z][a-z]{2} ([A-Z][a-z]{2}) ([ \d]\d) (\d{2}):(\d{2}):(\d{2}) (\d{4})$/;

function utc(y: number, mon: string, d: number, h: number, mi: number, s: number): number {
  const m = MONTHS[mon];
  if (m === undefined || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) return NaN;
  return Date.UTC(y, m, d, h, mi, s) / 1000;
}

/** An HTTP-date (RFC 9110 §5.6.7, all three formats) as Unix seconds, or NaN when it is not one. */
export function parseHttpDate(v: string): number {
  const s = v.trim();
  let m = IMF.exec(s);
  if (m) return utc(+m[3]!, m[2]!, +m[1]!, +m[4]!, +m[5]!, +m[6]!);
  m = RFC850.exec(s);
  if (m) {
    // two-digit years: RFC 9110 §5.6.7, more than 50 years in the future means the previous century
    let y = 2000 + +m[3]!;
    if (y > new Date().getUTCFullYear() + 50) y -= 100;
    return utc(y, m[2]!, +m[1]!, +m[4]!, +m[5]!, +m[6]!);
  }
  m = ASCTIME.exec(s);
  if (m) return utc(+m[6]!, m[1]!, +m[2]!.trim(), +m[3]!, +m[4]!, +m[5]!);
  return NaN;
}

/**
 * Does an If-Match / If-None-Match list match `etag` (our strong tag, quoted)? `weak` selects the weak
 * comparison (If-None-Match: W/"x" matches "x"); the strong one (If-Match) never matches a weak tag.
 * A malformed list matches nothing.
 */
export function etagListMatches(header: string, etag: string, weak: boolean): boolean {
  const h = header.trim();
  if (h === '*') return true;
  // fast path: the whole header is exactly our tag
  if (h === etag) return true;
  let i = 0;
  const n = h.length;
  while (i < n) {
    let c = h.charCodeAt(i);
    if (c === 32 || c === 9 || c === 44) { i++; continue; } // OWS and empty list elements
    let isWeak = false;
    if (c === 87 && h.charCodeAt(i + 1) === 47) { isWeak = true; i += 2; c = h.charCodeAt(i); } // W/
    if (c !== 34) return false; // not an entity-tag: malformed
    const close = h.indexOf('"', i + 1);
    if (close < 0) return false;
    if ((weak || !isWeak) && close - i + 1 === etag.length && h.startsWith(etag, i)) return true;
    i = close + 1;
  }
  return false;
}

/**
 * If-Range (RFC 9110 §13.1.5): an entity-tag (strong comparison), or an HTTP-date that must equal
 * Last-Modified exactly and only while that date is a strong validator (at least a second before now:
 * a file modified twice within one second would otherwise validate two different contents).
 */
export function ifRangeMatches(header: string, etag: string, lastModifiedSec: number, nowSec = Infinity): boolean {
  const h = header.trim();
  if (h.startsWith('"')) return h === etag;
  if (h.startsWith('W/')) return false;
  const d = parseHttpDate(h);
  return !Number.isNaN(d) && d === lastModifiedSec && lastModifiedSec < nowSec;
}

export interface ByteRange { start: number; end: number }

/** Range outcome: `null` = ignore the header (send 200), `'unsatisfiable'` = 416, else the ranges to send. */
export type RangeResult = ByteRange[] | null | 'unsatisfiable';

const SPEC = /^\s*(\d*)\s*-\s*(\d*)\s*$/;

/** `a > b` for two digit strings of any length (no precision loss beyond 2^53). */
function greater(a: string, b: string): boolean {
  const x = a.replace(/^0+(?=\d)/, '');
  const y = b.replace(/^0+(?=\d)/, '');
  return x.length !== y.length ? x.length > y.length : x > y;
}

/**
 * Evaluate a Range header against a representation of `size` bytes (RFC 9110 §14).
 * - not `bytes` (any case) or any syntax error, including a range whose last-pos is before its first-pos
 *   → ignored (200 with the whole file), as §14.2 allows for an invalid ranges-specifier;
 * - nothing satisfiable → 416 (`bytes=-0`, every first-pos at or past the end);
 * - a suffix longer than the file means the whole file (range-parser calls it unsatisfiable);
 * - overlapping and adjacent ranges are merged (range-parser `combine`); more than `maxRanges` left after
 *   that are coalesced into the one range from the lowest first byte to the highest last byte.
 */
export function evaluateRange(size: number, header: string, maxRanges: number): RangeResult {
  const eq = header.indexOf('=');
  if (eq !== 5 || header.slice(0, 5).toLowerCase() !== 'bytes') return null;
  if (size === 0) return null; // nothing to select from: the (empty) whole answer
  const parts = header.slice(6).split(',');
  let specs = '';
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    if (p.trim() === '') continue; // empty list elements are allowed by the #rule
    const m = SPEC.exec(p);
    if (m === null) return null;
    const a = m[1]!;
    const b = m[2]!;
    if (a === '' && b === '') return null;
    if (a !== '' && b !== '' && greater(a, b)) return null;
    // a suffix at least as long as the file means all of it
    const spec = a === '' && b.replace(/^0+/, '') !== '' && !greater(String(size), b) ? '0-' : `${a}-${b}`;
    specs = specs === '' ? spec : `${specs},${spec}`;
  }
  if (specs === '') return null;
  const r = rangeParser(size, 'bytes=' + specs, { combine: true });
  if (r === -1) return 'unsatisfiable';
  if (r === -2) return null;
  const list: ByteRange[] = r;
  if (list.length > maxRanges) {
    let start = Infinity;
    let end = -1;
    for (const x of list) { if (x.start < start) start = x.start; if (x.end > end) end = x.end; }
    return [{ start, end }];
  }
  return list;
}

/** Which precompressed variants the client accepts (RFC 9110 §12.5.3; q=0 refuses). */
export function acceptedEncodings(header: string | undefined): { br: boolean; gzip: boolean } {
  const res = { br: false, gzip: false };
  if (header === undefined || header === '') return res;
  let star = -1;
  let br = -1;
  let gz = -1;
  for (const item of header.split(',')) {
    const semi = item.indexOf(';');
    const name = (semi < 0 ? item : item.slice(0, semi)).trim().toLowerCase();
    let q = 1;
    if (semi >= 0) {
      const m = /q\s*=\s*([0-9.]+)/i.exec(item.slice(semi + 1));
      if (m) q = Number(m[1]);
      if (Number.isNaN(q)) q = 0;
    }
    if (name === 'br') br = q;
    else if (name === 'gzip' || name === 'x-gzip') gz = q;
    else if (name === '*') star = q;
  }
  res.br = br > 0 || (br < 0 && star > 0);
  res.gzip = gz > 0 || (gz < 0 && star > 0);
  return res;
}
