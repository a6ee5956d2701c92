// A test application for the protocol tests (written to a temp dir at test time): routes by PATH_INFO.
import path from 'node:path';
import { tmpDir, writeFile } from './server.js';

export const PROTOCOL_APP = `
import crypto from 'node:crypto';
import fs from 'node:fs';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export async function application(env, start_response) {
  const p = env.PATH_INFO;
  if (p === '/env' || p.startsWith('/env/')) {
    const o = {};
    for (const [k, v] of Object.entries(env)) if (typeof v === 'string') o[k] = v;
    start_response('200 OK', [['Content-Type', 'application/json']]);
    return [JSON.stringify(o)];
  }
  if (p === '/body') {
    const b = await env['wsgi.input'].read();
    const out = b.length + ' ' + crypto.createHash('sha256').update(b).digest('hex') + ' ' + (env.CONTENT_LENGTH === undefined ? 'no-content-length' : 'content-length=' + env.CONTENT_LENGTH);
    start_response('200 OK', [['Content-Type', 'text/plain']]);
    return [out];
  }
  if (p === '/stream') {
    start_response('200 OK', [['Content-Type', 'text/plain']]);
    return (async function* () { for (let i = 0; i < 5; i++) { yield 'chunk ' + i + '\\n'; await sleep(20); } })();
  }
  if (p === '/chunked') {
    start_response('200 OK', [['Content-Type', 'text/plain'], ['Transfer-Encoding', 'chunked']]);
    return (async function* () { yield 'hello '; await sleep(10); yield 'world'; })();
  }
  if (p === '/big') {
    const n = Number(env.QUERY_STRING || '64');
    const block = Buffer.alloc(65536, 120);
    start_response('200 OK', [['Content-Type', 'application/octet-stream'], ['Content-Length', String(n * 65536)]]);
    return (function* () { for (let i = 0; i < n; i++) yield block; })();
  }
  if (p === '/slow') {
    await sleep(Number(env.QUERY_STRING || '200'));
    start_response('200 OK', [['Content-Type', 'text/plain']]);
    return ['slow ' + env.QUERY_STRING];
  }
  if (p === '/busy') {
    // hold this worker's event loop so that concurrent connections go to the other workers
    const end = Date.now() + Number(env.QUERY_STRING || '20');
    while (Date.now() < end);
    start_response('200 OK', [['Content-Type', 'text/plain']]);
    return ['worker ' + env['uwcore.worker_id']];
  }
  if (p === '/closing') {
    // an endless streamed response whose close() leaves a mark in the file named by the query string
    const file = decodeURIComponent(env.QUERY_STRING);
    start_response('200 OK', [['Content-Type', 'application/octet-stream']]);
    const block = Buffer.alloc(16384, 120);
    return {
      async *[Symbol.asyncIterator]() { for (;;) { yield block; await sleep(1); } },
      close() { fs.appendFileSync(file, 'closed\\n'); },
    };
  }
  if (p === '/echo-path') {
    start_response('200 OK', [['Content-Type', 'text/plain; charset=utf-8']]);
    return [env.PATH_INFO + '|' + env.QUERY_STRING + '|' + env.REQUEST_METHOD];
  }
  const data = 'Hello World';
  start_response('200 OK', [['Content-Type', 'text/plain'], ['Content-Length', String(Buffer.byteLength(data))]]);
  return [data];
}
`;

/** Write the app into a fresh temp dir; returns its path. */
export function writeProtocolApp(dir = tmpDir()): string {
  return writeFile(path.join(dir, 'app.mjs'), PROTOCOL_APP);
}
