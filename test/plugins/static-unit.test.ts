// The static plugin's pure pieces: Range evaluation, entity-tag lists, HTTP dates, Accept-Encoding, the
// root containment test and the request-path filter.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { evaluateRange as evaluate, etagListMatches, ifRangeMatches, parseHttpDate, acceptedEncodings } from '../../plugins/static/range.js';
import { within, safeRequestPath } from '../../plugins/static/fscache.js';
import { buildMimeTable, lookupType } from '../../plugins/static/mime.js';

/** evaluateRange with plain arrays (range-parser tags its result with a `type` property). */
function evaluateRange(size: number, h: string, max: number): ReturnType<typeof evaluate> {
  const r = evaluate(size, h, max);
  return Array.isArray(r) ? r.map((x) => ({ start: x.start, end: x.end })) : r;
}

describe('static: evaluateRange', () => {
  it('follows RFC 9110 §14 on a 13-byte representation', () => {
    assert.deepEqual(evaluateRange(13, 'bytes=2-5', 16), [{ start: 2, end: 5 }]);
    assert.deepEqual(evaluateRange(13, 'bytes=-3', 16), [{ start: 10, end: 12 }]);
    assert.deepEqual(evaluateRange(13, 'bytes=-13', 16), [{ start: 0, end: 12 }]);
    assert.deepEqual(evaluateRange(13, 'bytes=-500', 16), [{ start: 0, end: 12 }], 'suffix longer than the file');
    assert.deepEqual(evaluateRange(13, 'bytes=-0012', 16), [{ start: 1, end: 12 }]);
    assert.equal(evaluateRange(13, 'bytes=-0', 16), 'unsatisfiable');
    assert.equal(evaluateRange(13, 'bytes=-000', 16), 'unsatisfiable');
    assert.equal(evaluateRange(13, 'bytes=13-', 16), 'unsatisfiable');
    assert.equal(evaluateRange(13, 'bytes=99999999999999999999999-', 16), 'unsatisfiable');
    assert.deepEqual(evaluateRange(13, 'bytes=0-99999999999999999999999', 16), [{ start: 0, end: 12 }]);
    assert.deepEqual(evaluateRange(13, 'bytes=50-60,1-2', 16), [{ start: 1, end: 2 }]);
    assert.deepEqual(evaluateRange(13, 'bytes=1-2,,4-5,', 16), [{ start: 1, end: 2 }, { start: 4, end: 5 }]);
    for (const bad of ['items=0-1', 'bytes=5-2', 'bytes=abc', 'bytes=-', 'bytes', 'bytes=', 'bytes=1-2-3', 'bytes=+1-2', 'bytes=1.5-2', 'bytes=0x10-', 'byte=0-1', 'bytes=99999999999999999999-1']) {
      assert.equal(evaluateRange(13, bad, 16), null, bad);
    }
    assert.equal(evaluateRange(0, 'bytes=0-1', 16), null, 'empty file');
  });

  it('merges, caps and coalesces', () => {
    assert.deepEqual(evaluateRange(100, 'bytes=' + Array(1000).fill('0-0').join(','), 16), [{ start: 0, end: 0 }]);
    assert.deepEqual(evaluateRange(100, 'bytes=0-10,5-20,21-30', 16), [{ start: 0, end: 30 }]);
    assert.deepEqual(evaluateRange(100, 'bytes=50-60,0-5', 16), [{ start: 50, end: 60 }, { start: 0, end: 5 }]);
    assert.deepEqual(evaluateRange(1000, 'bytes=0-0,10-10,20-20', 2), [{ start: 0, end: 20 }]);
  });
});

describe('static: validators', () => {
  const tag = '"abc-1"';
  it('entity-tag lists: weak and strong comparison', () => {
    assert.ok(etagListMatches(tag, tag, true));
    assert.ok(etagListMatches('*', tag, false));
    assert.ok(etagListMatches(`"x", ${tag}`, tag, false));
    assert.ok(etagListMatches(`W/${tag}`, tag, true));
    assert.ok(!etagListMatches(`W/${tag}`, tag, false));
    assert.ok(!etagListMatches('"abc-1x"', tag, true));
    assert.ok(!etagListMatches('"abc', tag, true));
    assert.ok(!etagListMatches('abc-1', tag, true));
    assert.ok(etagListMatches(`"a,b" , ${tag}`, tag, true), 'commas inside a tag');
  });
  it('HTTP dates in all three formats, nothing else', () => {
    const t = Date.UTC(1994, 10, 6, 8, 49, 37) / 1000;
    assert.equal(parseHttpDate('Sun, 06 Nov 1994 08:49:37 GMT'), t);
    assert.equal(parseHttpDate('Sunday, 06-Nov-94 08:49:37 GMT'), t);
    assert.equal(parseHttpDate('Sun Nov  6 08:49:37 1994'), t);
    for (const bad of ['2024-01-01', 'Sun, 06 Nov 1994 08:49:37 +0000', 'Sun, 06 Foo 1994 08:49:37 GMT', '', 'Sun, 06 Nov 1994 25:49:37 GMT']) {
      assert.ok(Number.isNaN(parseHttpDate(bad)), bad);
    }
  });
  it('If-Range: strong tag or the exact Last-Modified date', () => {
    assert.ok(ifRangeMatches(tag, tag, 0));
    assert.ok(!ifRangeMatches(`W/${tag}`, tag, 0));
    assert.ok(ifRangeMatches('Sun, 06 Nov 1994 08:49:37 GMT', tag, 784111777));
    assert.ok(!ifRangeMatches('Sun, 06 Nov 1994 08:49:38 GMT', tag, 784111777));
    assert.ok(!ifRangeMatches('Sun, 06 Nov 1994 08:49:37 GMT', tag, 784111777, 784111777), 'a date in the current second is weak');
  });
  it('Accept-Encoding with q-values', () => {
    assert.deepEqual(acceptedEncodings('gzip, deflate, br'), { br: true, gzip: true });
    assert.deepEqual(acceptedEncodings('br;q=0, gzip;q=0.5'), { br: false, gzip: true });
    assert.deepEqual(acceptedEncodings('*'), { br: true, gzip: true });
    assert.deepEqual(acceptedEncodings('*;q=0, gzip'), { br: false, gzip: true });
    assert.deepEqual(acceptedEncodings('identity'), { br: false, gzip: false });
    assert.deepEqual(acceptedEncodings(undefined), { br: false, gzip: false });
  });
});

describe('static: containment and paths', () => {
  it('within() compares on a path-segment boundary', () => {
    assert.ok(within('/srv/www/x', '/srv/www'));
    assert.ok(within('/srv/www', '/srv/www'));
    assert.ok(!within('/srv/www-private/x', '/srv/www'));
    assert.ok(!within('/srv/www2', '/srv/www'));
    assert.ok(!within('/srv', '/srv/www'));
    assert.ok(within('/anything', '/'));
  });
  it('request paths with .., NUL or backslashes never reach the file system', () => {
    for (const p of ['/..', '/../x', '/a/../b', '/a/..', '/a\0b', '/a\\..\\b', 'a', '', 'http://x/']) assert.ok(!safeRequestPath(p), JSON.stringify(p));
    for (const p of ['/', '/a', '/a..b', '/..a/b', '/a/.b', '/a/...']) assert.ok(safeRequestPath(p), p);
  });
  it('content types: built-in table, case-insensitive, octet-stream otherwise', () => {
    const t = buildMimeTable([], '/nonexistent');
    assert.equal(lookupType(t, '/x/large-file.json'), 'application/json');
    assert.equal(lookupType(t, '/x/A.CSS'), 'text/css');
    assert.equal(lookupType(t, '/x/.htaccess'), 'application/octet-stream');
    assert.equal(lookupType(t, '/x.d/noext'), 'application/octet-stream');
    assert.equal(lookupType(t, '/x/app.mjs'), 'text/javascript');
  });
});
