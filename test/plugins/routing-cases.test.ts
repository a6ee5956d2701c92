// Data-driven routing cases: each folder of test/cases/routing/ (names starting with _ are shared files) holds
//   uwcore.ini            the configuration (the runner adds --http 127.0.0.1:PORT)
//   request[-N].txt       a raw request (LF line ends become CRLF; a blank line ends the head)
//   response[-N].txt      the expected raw response: CRLF shown as LF, the Date header left out; empty = the
//                         server closed the connection without answering
//   log-contains.txt      optional: substrings the server's output must contain (one a line)
//   log-lacks.txt         optional: substrings it must not contain
// Every case starts one server and sends its requests in order, each on its own connection.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, freePort, rawRequest, startUwcore } from '../helpers/server.js';

const DIR = path.join(ROOT, 'test/cases/routing');

function lines(file: string): string[] {
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, 'utf8').split('\n').map((l) => l.replace(/\r$/, '')).filter((l) => l !== '');
}

/** Normalise a raw response for comparison: CRLF → LF, no Date header. */
export function normalise(raw: Buffer): string {
  return raw.toString('latin1').replace(/\r\n/g, '\n').replace(/^Date: .*\n/im, '');
}

const cases = fs.readdirSync(DIR).filter((d) => !d.startsWith('_') && fs.statSync(path.join(DIR, d)).isDirectory()).sort();

test('routing cases', { concurrency: 3 }, async (t) => {
  assert.ok(cases.length >= 20, `expected the routing cases, found ${cases.length}`);
  await Promise.all(cases.map((name) => t.test(name, async () => {
    const dir = path.join(DIR, name);
    const port = await freePort();
    const srv = await startUwcore([path.join(dir, 'uwcore.ini'), '--http', `127.0.0.1:${port}`], { cwd: dir });
    try {
      const reqs = fs.readdirSync(dir).filter((f) => /^request(-\d+)?\.txt$/.test(f)).sort();
      assert.ok(reqs.length > 0, `${name}: no request.txt`);
      for (const rf of reqs) {
        const req = fs.readFileSync(path.join(dir, rf), 'latin1').replace(/\r?\n/g, '\r\n');
        const expected = fs.readFileSync(path.join(dir, rf.replace('request', 'response')), 'latin1').replace(/\r\n/g, '\n');
        const raw = await rawRequest(port, Buffer.from(req, 'latin1'), { idleMs: 3000 });
        assert.equal(normalise(raw), expected, `${name}/${rf}: response differs`);
      }
      for (const s of lines(path.join(dir, 'log-contains.txt'))) await srv.waitFor(new RegExp(s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')), 3000);
      const lacks = lines(path.join(dir, 'log-lacks.txt'));
      if (lacks.length) {
        await new Promise((r) => setTimeout(r, 200));
        for (const s of lacks) assert.ok(!srv.output().includes(s), `${name}: output should not contain ${JSON.stringify(s)}:\n${srv.output()}`);
      }
    } finally {
      await srv.stop();
    }
  })));
});
