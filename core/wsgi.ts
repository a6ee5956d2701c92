// The WSGI-shaped JavaScript application kind: application(env, start_response) returning an array,
// iterable, async iterable (or a Promise of one) of strings and bytes; and wsgi.input over the body.
import { Buffer } from 'node:buffer';
import { Readable } from 'node:stream';
import type { HeaderList } from '../sdk/index.js';
import { HttpError } from '../sdk/index.js';
import { Codes, UwError } from './errors.js';
import type { Ctx } from './context.js';

type App = (env: Record<string, unknown>, startResponse: StartResponse) => unknown;
type StartResponse = (status: string, headers: HeaderList, excInfo?: unknown) => (chunk: string | Uint8Array) => boolean;

/** The code of a WSGI status line "NNN Reason" (or a bare "NNN"), -1 when it is not one. */
function statusCode(s: string): number {
  const n = s.length;
  if (n < 3 || (n > 3 && s.charCodeAt(3) !== 32)) return -1;
  const a = s.charCodeAt(0) - 48;
  const b = s.charCodeAt(1) - 48;
  const c = s.charCodeAt(2) - 48;
  if (a < 1 || a > 9 || b < 0 || b > 9 || c < 0 || c > 9) return -1;
  for (let i = 4; i < n; i++) {
    const ch = s.charCodeAt(i);
    // the reason phrase goes on the status line: no CR or LF
    if (ch === 10 || ch === 13) return -1;
  }
  return a * 100 + b * 10 + c;
}

function isChunk(v: unknown): v is string | Uint8Array {
  return typeof v === 'string' || v instanceof Uint8Array;
}

function badItem(v: unknown): UwError {
  const what = v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v;
  return new UwError(Codes.APP_RESPONSE, `the application's response body holds ${what}; body items must be strings or Uint8Array/Buffer`, { hook: 'handle' });
}

function excError(exc: unknown): unknown {
  return Array.isArray(exc) ? exc[1] ?? exc[0] : exc;
}

function makeStartResponse(ctx: Ctx): StartResponse {
  return function start_response(status: string, headers: HeaderList, excInfo?: unknown) {
    if (ctx.appHeaders !== null || ctx.headersSent) {
      if (excInfo == null) throw new UwError(Codes.APP_RESPONSE, 'start_response() was called a second time without exc_info', { hook: 'handle' });
      if (ctx.headersSent) throw excError(excInfo);
    }
    if (typeof status !== 'string') throw new UwError(Codes.APP_RESPONSE, `start_response() status must be a string like "200 OK", got ${typeof status}`, { hook: 'handle' });
    const code = statusCode(status);
    if (code < 0) throw new UwError(Codes.APP_RESPONSE, `start_response() status ${JSON.stringify(status).slice(0, 60)} is not "NNN Reason"`, { hook: 'handle' });
    ctx.scanHeaders(headers);
    ctx.status = code;
    ctx.reason = status.length > 4 ? status.slice(4) : '';
    ctx.appHeaders = headers;
    return (ctx.writeFn ??= (chunk: string | Uint8Array) => legacyWrite(ctx, chunk));
  };
}

function legacyWrite(ctx: Ctx, chunk: string | Uint8Array): boolean {
  if (!isChunk(chunk)) throw badItem(chunk);
  if (ctx.ended) return false;
  if (!ctx.headersSent) sendHead(ctx, -1);
  ctx.watch();
  return byteLength(chunk) === 0 ? true : ctx.write(chunk);
}

function byteLength(c: string | Uint8Array): number {
  return typeof c === 'string' ? (c.length === 0 ? 0 : Buffer.byteLength(c)) : c.byteLength;
}

function sendHead(ctx: Ctx, knownLength: number): void {
  if (ctx.appHeaders === null) throw new UwError(Codes.APP_RESPONSE, 'the application returned a body without calling start_response()', { hook: 'handle' });
  ctx.writeHead(ctx.status, ctx.reason, ctx.appHeaders, knownLength);
}

/** Build the request handler for a WSGI-style callable. */
export function wsgiHandler(app: App): (ctx: Ctx) => void | Promise<void> {
  return function handleWsgi(ctx: Ctx) {
    const env = ctx.env as Record<string, unknown>;
    env['wsgi.input'] = new Input(ctx);
    let result: unknown;
    try {
      result = app(env, makeStartResponse(ctx));
    } catch (e) {
      return ctx.fail(e);
    }
    if (result !== null && typeof result === 'object' && typeof (result as Promise<unknown>).then === 'function' && !Array.isArray(result)) {
      ctx.watch();
      return (result as Promise<unknown>).then((r) => sendResult(ctx, r), (e: unknown) => ctx.fail(e));
    }
    return sendResult(ctx, result);
  };
}

function sendResult(ctx: Ctx, result: unknown): void | Promise<void> {
  ctx.result = result;
  if (ctx.ended) { ctx.done(); return; }
  try {
    if (Array.isArray(result)) {
      // fast path: the whole body is known, so it can be framed with Content-Length
      let total = 0;
      for (let i = 0; i < result.length; i++) {
        const item: unknown = result[i];
        if (!isChunk(item)) throw badItem(item);
        total += byteLength(item);
      }
      if (!ctx.headersSent) {
        if (ctx.declaredLength >= 0 && ctx.declaredLength !== total && ctx.env.REQUEST_METHOD !== 'HEAD') {
          throw new UwError(Codes.APP_RESPONSE, `the response body has ${total} bytes but its Content-Length is ${ctx.declaredLength}`, { hook: 'handle' });
        }
        if (result.length === 1) {
          sendHead(ctx, total);
          ctx.end(result[0] as string | Uint8Array);
          return;
        }
        sendHead(ctx, total);
      }
      for (let i = 0; i < result.length; i++) {
        const item = result[i] as string | Uint8Array;
        if (byteLength(item) > 0) ctx.write(item);
      }
      ctx.end();
      return;
    }
    if (isChunk(result)) {
      if (!ctx.headersSent) sendHead(ctx, byteLength(result));
      ctx.end(result);
      return;
    }
    if (result != null && (typeof (result as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function' || typeof (result as Iterable<unknown>)[Symbol.iterator] === 'function')) {
      return streamResult(ctx, result as AsyncIterable<unknown> | Iterable<unknown>);
    }
    if (result === undefined && ctx.headersSent) {
      // everything went through write()
      ctx.end();
      return;
    }
    throw new UwError(Codes.APP_RESPONSE, `the application returned ${result === null ? 'null' : typeof result}; return an array, an iterable or an async iterable of strings/Buffers`, { hook: 'handle' });
  } catch (e) {
    return ctx.fail(e);
  }
}

/**
 * Backpressure slack for streamed bodies: keep producing while less than this is buffered, even though the
 * wire said "full" (node:http corks a chunked response for its first tick, so a 16 KiB body made of small
 * chunks already reports full; waiting for 'drain' there split every such response into 2-3 writev calls:
 * 16 × 1 KiB chunked scenario, 0.65 × bare node:http before). Memory per response stays bounded.
 */
const DRAIN_SLACK = 64 * 1024;

function belowSlack(wire: unknown): boolean {
  const n = (wire as { writableLength?: unknown }).writableLength;
  return typeof n === 'number' && n < DRAIN_SLACK;
}

async function streamResult(ctx: Ctx, result: AsyncIterable<unknown> | Iterable<unknown>): Promise<void> {
  ctx.watch();
  const isAsync = typeof (result as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function';
  const it = isAsync ? (result as AsyncIterable<unknown>)[Symbol.asyncIterator]() : (result as Iterable<unknown>)[Symbol.iterator]();
  let finished = false;
  try {
    for (;;) {
      let r = it.next() as IteratorResult<unknown> | Promise<IteratorResult<unknown>>;
      if (isAsync) r = await r;
      const step = r as IteratorResult<unknown>;
      if (step.done) { finished = true; break; }
      if (ctx.ended) break;
      const chunk = step.value;
      if (!isChunk(chunk)) throw badItem(chunk);
      if (byteLength(chunk) === 0) continue;
      if (!ctx.headersSent) sendHead(ctx, -1);
      if (!ctx.write(chunk) && !belowSlack(ctx.wire)) await ctx.drain();
    }
    if (!ctx.ended) {
      if (!ctx.headersSent) sendHead(ctx, 0);
      ctx.end();
    }
  } catch (e) {
    finished = true;
    await ctx.fail(e);
  } finally {
    if (!finished && typeof it.return === 'function') {
      try { await it.return(undefined); } catch { /* the generator's own cleanup failed; nothing to answer */ }
    }
    if (ctx.ended) ctx.done();
  }
}

// ---------------------------------------------------------------------------------------------

const EMPTY = Buffer.alloc(0);

/**
 * env['wsgi.input']: read(size?) → Promise<Buffer> (empty at the end), readline(size?), async iteration.
 * Pulls from the body stream only when the application asks; enforces --limit-post on bodies of unknown length.
 */
export class Input implements AsyncIterable<Buffer> {
  private readonly ctx: Ctx;
  private it: AsyncIterator<Buffer> | null = null;
  private buf: Buffer = EMPTY;
  private eof = false;
  private received = 0;

  constructor(ctx: Ctx) { this.ctx = ctx; }

  private async pull(): Promise<boolean> {
    if (this.eof) return false;
    this.it ??= (this.ctx.body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    let r: IteratorResult<Buffer>;
    try {
      r = await this.it.next();
    } catch (e) {
      this.eof = true;
      const err = new UwError(Codes.APP_RESPONSE, `reading the request body failed: ${(e as Error).message}`, { hook: 'handle' });
      (err as unknown as { status: number }).status = 400;
      throw err;
    }
    if (r.done) { this.eof = true; return false; }
    const chunk = typeof r.value === 'string' ? Buffer.from(r.value) : r.value;
    this.received += chunk.length;
    const limit = this.ctx.server.limitPost;
    if (limit > 0 && this.received > limit) {
      this.eof = true;
      throw new HttpError(413, `request body larger than ${limit} bytes (--limit-post)`);
    }
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    return true;
  }

  private take(n: number): Buffer {
    const out = this.buf.subarray(0, n);
    this.buf = n >= this.buf.length ? EMPTY : this.buf.subarray(n);
    return out;
  }

  private bodyError(e: unknown): UwError {
    this.eof = true;
    const err = new UwError(Codes.APP_RESPONSE, `reading the request body failed: ${(e as Error).message}`, { hook: 'handle' });
    (err as unknown as { status: number }).status = 400;
    return err;
  }

  /**
   * read() of the whole body from an untouched node Readable (node:http's IncomingMessage): collect its
   * 'data' events instead of an async iterator, which costs a promise and several listeners per chunk
   * (measured with --cpu-prof, 64 KiB POST echo: read() went from 27 to 4-6 µs of main-thread CPU per
   * request). Same results, errors and --limit-post.
   */
  private readAllFlowing(body: Readable): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      const parts: Buffer[] = this.buf.length ? [this.buf] : [];
      this.buf = EMPTY;
      const limit = this.ctx.server.limitPost;
      const cleanup = () => {
        body.removeListener('data', onData);
        body.removeListener('end', onEnd);
        body.removeListener('error', onError);
        body.removeListener('close', onClose);
      };
      const onData = (d: Buffer | string) => {
        const chunk = typeof d === 'string' ? Buffer.from(d) : d;
        this.received += chunk.length;
        if (limit > 0 && this.received > limit) {
          cleanup();
          body.pause();
          this.eof = true;
          reject(new HttpError(413, `request body larger than ${limit} bytes (--limit-post)`));
          return;
        }
        parts.push(chunk);
      };
      const onEnd = () => {
        cleanup();
        this.eof = true;
        resolve(parts.length === 1 ? parts[0]! : parts.length === 0 ? EMPTY : Buffer.concat(parts));
      };
      const onError = (e: Error) => { cleanup(); reject(this.bodyError(e)); };
      const onClose = () => { cleanup(); reject(this.bodyError(new Error('Premature close'))); };
      body.on('data', onData);
      body.once('end', onEnd);
      body.once('error', onError);
      body.once('close', onClose);
    });
  }

  /** Up to `size` bytes (all that is left when size is omitted or negative); an empty Buffer at the end. */
  async read(size?: number | null): Promise<Buffer> {
    if (size == null || size < 0) {
      const body = this.ctx.body;
      if (this.it === null && !this.eof && body instanceof Readable && !body.readableEnded && !body.destroyed && body.listenerCount('data') === 0) {
        return this.readAllFlowing(body);
      }
      const parts: Buffer[] = this.buf.length ? [this.buf] : [];
      this.buf = EMPTY;
      while (await this.pull()) { parts.push(this.buf); this.buf = EMPTY; }
      return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    }
    while (this.buf.length < size && (await this.pull()));
    return this.take(Math.min(size, this.buf.length));
  }

  /** One line including its `\n` (or up to `size` bytes); an empty Buffer at the end. */
  async readline(size?: number | null): Promise<Buffer> {
    for (;;) {
      const nl = this.buf.indexOf(10);
      if (nl >= 0 && (size == null || size < 0 || nl < size)) return this.take(nl + 1);
      if (size != null && size >= 0 && this.buf.length >= size) return this.take(size);
      if (!(await this.pull())) return this.take(this.buf.length);
    }
  }

  /** All remaining lines. */
  async readlines(): Promise<Buffer[]> {
    const out: Buffer[] = [];
    for (;;) {
      const l = await this.readline();
      if (l.length === 0) return out;
      out.push(l);
    }
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    if (this.buf.length) yield this.take(this.buf.length);
    while (await this.pull()) yield this.take(this.buf.length);
  }
}
