// One request: its env, its body, and the response path to the protocol's Wire (headers → transforms →
// framing → bytes). A fixed-shape class; per-request objects beyond it are created only when used.
import { Buffer } from 'node:buffer';
import { performance } from 'node:perf_hooks';
import type { Env, HeaderList, ListenerInfo, Logger, RequestContext, Transform, Wire } from '../sdk/index.js';
import { STATUS_TEXT, HttpError } from '../sdk/index.js';
import { Codes, UwError } from './errors.js';
import type { Server } from './server.js';

const kCtx = Symbol('uwcore.ctx');

/** Shared listener: a Wire closed before the response ended means the client went away. */
function onWireClose(this: Wire & { [kCtx]?: Ctx }): void {
  const ctx = this[kCtx];
  if (ctx !== undefined && !ctx.ended) ctx.clientGone();
}

function byteLen(chunk: string | Uint8Array): number {
  return typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.byteLength;
}

/** `Content-Length` in any letter case (the caller checked the length is 14). */
function isContentLength(name: string): boolean {
  return name === 'Content-Length' || name === 'content-length' || name.toLowerCase() === 'content-length';
}

/** A Content-Length value: decimal digits, optional surrounding blanks; -1 when it is not one. */
function parseLength(v: string): number {
  let i = 0;
  let j = v.length;
  while (i < j && (v.charCodeAt(i) === 32 || v.charCodeAt(i) === 9)) i++;
  while (j > i && (v.charCodeAt(j - 1) === 32 || v.charCodeAt(j - 1) === 9)) j--;
  if (i === j || j - i > 15) return -1;
  let n = 0;
  for (let k = i; k < j; k++) {
    const d = v.charCodeAt(k) - 48;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}

export class Ctx implements RequestContext {
  readonly env: Env;
  readonly body: NodeJS.ReadableStream & AsyncIterable<Buffer>;
  readonly wire: Wire;
  readonly listener: ListenerInfo;
  readonly server: Server;
  readonly startTime: number;
  status = 0;
  reason = '';
  headersSent = false;
  bytesSent = 0;
  aborted = false;
  ended = false;
  noLog = false;
  forceChunked = false;
  /** headers given by start_response (WSGI) until they are written */
  appHeaders: HeaderList | null = null;
  /** Content-Length the response declared, -1 if none */
  declaredLength = -1;
  transforms: Transform[] | null = null;
  /** how many of `transforms` touch the body (a headers-only transform keeps Content-Length and the fast write) */
  bodyTransforms = 0;
  closers: Array<() => void> | null = null;
  writeFn: ((chunk: string | Uint8Array) => boolean) | null = null;
  /** the WSGI result, for close() */
  result: unknown = undefined;
  private _state: Record<string, unknown> | null = null;
  private _log: Logger | null = null;
  private watching = false;
  private finished = false;

  constructor(server: Server, env: Env, body: NodeJS.ReadableStream & AsyncIterable<Buffer>, wire: Wire, listener: ListenerInfo) {
    this.server = server;
    this.env = env;
    this.body = body;
    this.wire = wire;
    this.listener = listener;
    this.startTime = performance.now();
  }

  get state(): Record<string, unknown> {
    return (this._state ??= {});
  }

  get log(): Logger {
    return (this._log ??= this.server.log.child({ method: this.env.REQUEST_METHOD, uri: this.env.REQUEST_URI }));
  }

  addTransform(t: Transform): void {
    if (this.headersSent) throw new UwError(Codes.INTERNAL, `transform ${t.name} added after the headers were sent`);
    (this.transforms ??= []).push(t);
    if (t.chunk !== undefined || t.final !== undefined) this.bodyTransforms++;
  }

  onClose(fn: () => void): void {
    (this.closers ??= []).push(fn);
    this.watch();
  }

  /** Listen for the client going away (only once the response goes asynchronous). */
  watch(): void {
    if (this.watching) return;
    this.watching = true;
    (this.wire as Wire & { [kCtx]?: Ctx })[kCtx] = this;
    this.wire.once('close', onWireClose);
  }

  clientGone(): void {
    if (this.ended) return;
    this.aborted = true;
    this.ended = true;
    this.done();
  }

  /** Scan a header list once: shape check and declared Content-Length. Throws on a malformed list. */
  scanHeaders(h: HeaderList): void {
    if (!Array.isArray(h)) throw new UwError(Codes.APP_RESPONSE, `response headers must be an array of [name, value] pairs, got ${typeof h}`);
    let declared = -1;
    for (let i = 0; i < h.length; i++) {
      const e = h[i];
      if (!Array.isArray(e) || e.length !== 2 || typeof e[0] !== 'string' || typeof e[1] !== 'string') {
        throw new UwError(Codes.APP_RESPONSE, `response header #${i + 1} must be a [name, value] pair of strings, got ${JSON.stringify(e)?.slice(0, 80)}`);
      }
      if (e[0].length === 14 && isContentLength(e[0])) {
        declared = parseLength(e[1]);
        if (declared < 0) throw new UwError(Codes.APP_RESPONSE, `response Content-Length ${JSON.stringify(e[1])} is not a number`);
      }
    }
    this.declaredLength = declared;
  }

  /**
   * The headers as they go out: add-header, framing (Content-Length when the whole body is known, chunked
   * when forced, Connection: close on one-request sockets or while draining), the headers hook and transforms.
   * Fast path: nothing to add, the list goes out as given.
   */
  private finalHeaders(h: HeaderList, knownLength: number): HeaderList {
    const s = this.server;
    const addCL = knownLength >= 0 && this.declaredLength < 0 && this.bodyTransforms === 0 && !this.forceChunked;
    const close = !this.listener.keepAlive || s.draining;
    if (!addCL && !close && !this.forceChunked && s.addHeaders === null && s.headersHook === null && this.transforms === null) return h;
    let out: HeaderList = h.slice();
    if (this.forceChunked) {
      out = out.filter((e) => e[0].toLowerCase() !== 'content-length' && e[0].toLowerCase() !== 'transfer-encoding');
      this.declaredLength = -1;
      if (this.env.SERVER_PROTOCOL === 'HTTP/1.1') out.push(['Transfer-Encoding', 'chunked']);
      else out.push(['Connection', 'close']);
    }
    if (addCL) out.push(['Content-Length', String(knownLength)]);
    if (close) out.push(['Connection', 'close']);
    if (s.addHeaders !== null) for (const e of s.addHeaders) out.push(e);
    if (s.headersHook !== null) out = s.headersHook.call(out, this) ?? out;
    if (this.transforms !== null) {
      for (const t of this.transforms) if (t.headers) out = t.headers(this, out) ?? out;
    }
    return out;
  }

  /** Write status and headers. `knownLength` is the whole body's length when known, else -1. */
  writeHead(status: number, reason: string, headers: HeaderList, knownLength: number): void {
    // 1xx, 204 and 304 have no body: no framing headers at all (RFC 9110 §8.6, RFC 9112 §6.1)
    const bodiless = status < 200 || status === 204 || status === 304;
    if (bodiless) this.forceChunked = false;
    const h = this.finalHeaders(headers, bodiless ? -1 : knownLength);
    this.status = status;
    this.reason = reason;
    // node:http validates names and values here: a bad header throws before anything is sent
    this.wire.writeHead(status, reason || STATUS_TEXT[status] || 'Unknown', h);
    this.headersSent = true;
  }

  start(status: number, reason: string, headers: HeaderList): void {
    if (this.headersSent) throw new UwError(Codes.INTERNAL, 'response already started');
    this.scanHeaders(headers);
    this.writeHead(status, reason, headers, -1);
  }

  respond(status: number, headers: HeaderList, body?: string | Uint8Array | null): void {
    if (this.headersSent) throw new UwError(Codes.INTERNAL, 'response already started');
    this.scanHeaders(headers);
    const len = body == null ? 0 : byteLen(body);
    this.writeHead(status, '', headers, len);
    this.end(body ?? undefined);
  }

  write(chunk: string | Uint8Array): boolean {
    if (this.ended) return false;
    let c: string | Uint8Array | null = chunk;
    if (this.bodyTransforms !== 0) {
      c = this.applyTransforms(typeof c === 'string' ? Buffer.from(c) : Buffer.from(c.buffer, c.byteOffset, c.byteLength));
      if (c === null || c.length === 0) return true;
    }
    const n = byteLen(c);
    if (this.declaredLength >= 0 && this.bytesSent + n > this.declaredLength) {
      this.lengthMismatch(this.bytesSent + n);
      return false;
    }
    this.bytesSent += n;
    return this.wire.write(c);
  }

  private applyTransforms(b: Buffer): Buffer | null {
    let c: Buffer | null = b;
    for (const t of this.transforms!) {
      if (c === null) break;
      if (t.chunk) c = t.chunk(this, c);
    }
    return c;
  }

  drain(): Promise<void> {
    if (this.ended || this.wire.destroyed) return Promise.resolve();
    this.watch();
    return new Promise((resolve) => {
      const done = () => { this.wire.removeListener('drain', done); this.wire.removeListener('close', done); resolve(); };
      this.wire.once('drain', done);
      this.wire.once('close', done);
    });
  }

  end(chunk?: string | Uint8Array): void {
    if (this.ended) return;
    if (this.bodyTransforms !== 0 && this.transforms !== null) {
      if (chunk !== undefined && byteLen(chunk) > 0) this.write(chunk);
      chunk = undefined;
      let tail: Buffer[] | null = null;
      for (let i = 0; i < this.transforms.length; i++) {
        const t = this.transforms[i]!;
        let out = t.final ? t.final(this) ?? null : null;
        // a later transform sees what an earlier one flushes
        for (let j = i + 1; out !== null && j < this.transforms.length; j++) {
          const n = this.transforms[j]!;
          if (n.chunk) out = n.chunk(this, out);
        }
        if (out !== null && out.length > 0) (tail ??= []).push(out);
      }
      if (tail !== null) {
        for (const b of tail) {
          this.bytesSent += b.length;
          this.wire.write(b);
        }
      }
    } else if (chunk !== undefined) {
      const n = byteLen(chunk);
      if (this.declaredLength >= 0 && this.bytesSent + n > this.declaredLength) { this.lengthMismatch(this.bytesSent + n); return; }
      this.bytesSent += n;
    }
    if (this.declaredLength >= 0 && this.bytesSent !== this.declaredLength && this.env.REQUEST_METHOD !== 'HEAD') {
      this.lengthMismatch(this.bytesSent);
      return;
    }
    this.ended = true;
    if (chunk !== undefined) this.wire.end(chunk);
    else this.wire.end();
    this.done();
  }

  private lengthMismatch(actual: number): void {
    const err = new UwError(Codes.APP_RESPONSE, `response body has ${actual > this.declaredLength ? 'more than' : 'only'} ${actual > this.declaredLength ? this.declaredLength : actual} bytes but its Content-Length is ${this.declaredLength}; connection closed`, { hook: 'handle' });
    this.log.error({ code: err.code, plugin: 'core', hook: 'handle' }, err.message);
    this.abort();
  }

  abort(err?: Error): void {
    if (this.ended) return;
    this.aborted = true;
    this.ended = true;
    this.wire.destroy(err);
    this.done();
  }

  /** The response is over, however it ended: close() the result, run closers, finish hook, access log. */
  done(): void {
    if (this.finished) return;
    this.finished = true;
    const r = this.result as { close?: () => unknown } | undefined;
    if (r != null && typeof r.close === 'function') {
      try {
        const p = r.close();
        if (p && typeof (p as Promise<unknown>).catch === 'function') (p as Promise<unknown>).catch((e) => this.log.error({ err: e }, 'application close() failed'));
      } catch (e) { this.log.error({ err: e }, 'application close() failed'); }
    }
    if (this.closers !== null) {
      for (let i = this.closers.length - 1; i >= 0; i--) {
        try { this.closers[i]!(); } catch (e) { this.log.error({ err: e }, 'request close handler failed'); }
      }
    }
    this.server.finished(this);
  }

  /** An error while producing the response: error hook, else the default answer; after headers, abort. */
  fail(e: unknown): void | Promise<void> {
    const err = (e instanceof Error ? e : new Error(String(e))) as Error & { code?: string; plugin?: string; hook?: string; status?: number };
    if (this.ended) {
      if (!this.aborted) this.server.logRequestError(this, err);
      return;
    }
    this.server.logRequestError(this, err);
    if (this.headersSent) { this.abort(); return; }
    if (this.server.errorHook !== null) {
      return (this.server.errorHook.promise(err, this) as Promise<boolean | void>).then(
        (handled) => { if (!handled && !this.ended) this.defaultError(err); else if (!this.ended && !this.headersSent) this.defaultError(err); },
        (e2: unknown) => { this.server.logRequestError(this, e2 as Error); if (!this.headersSent) this.defaultError(err); else this.abort(); },
      );
    }
    this.defaultError(err);
  }

  defaultError(err: Error & { status?: number; expose?: boolean }): void {
    if (this.ended) return;
    if (this.headersSent) { this.abort(); return; }
    const status = err instanceof HttpError ? err.status : (typeof err.status === 'number' && err.status >= 400 && err.status < 600 ? err.status : 500);
    const text = STATUS_TEXT[status] ?? 'Error';
    const body = (err instanceof HttpError && err.expose ? err.message : text) + '\n';
    this.declaredLength = -1;
    this.transforms = null;
    this.bodyTransforms = 0;
    this.forceChunked = false;
    this.writeHead(status, text, [['Content-Type', 'text/plain; charset=utf-8']], Buffer.byteLength(body));
    this.end(body);
  }
}
