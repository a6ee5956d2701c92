// The stable contract between uwcore's core and its plugins: types, definePlugin, SDK_VERSION,
// HttpError and Stage. Almost no runtime code lives here; the core implements every interface.
// A new hook or registry is a minor SDK version; a changed one is a major (see sdk/README.md).
import { Buffer } from 'node:buffer';
import { performance } from 'node:perf_hooks';

/**
 * The SDK version plugins are checked against (`plugin.sdk` is a semver range over it).
 * @since 1.0.0
 */
export const SDK_VERSION = '1.3.0';

/**
 * Named stages for ordering taps on one hook: lower runs first.
 * @since 1.0.0
 */
export const Stage = Object.freeze({ EARLY: -100, NORMAL: 0, LATE: 100 });

/**
 * An error that carries an HTTP status. Thrown from a request hook or an application it becomes that
 * response; `expose` decides whether the message is sent to the client.
 * @since 1.0.0
 */
export class HttpError extends Error {
  readonly status: number;
  readonly expose: boolean;
  code: string;
  constructor(status: number, message?: string, opts: { expose?: boolean; cause?: unknown; code?: string } = {}) {
    super(message ?? STATUS_TEXT[status] ?? 'Error', opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'HttpError';
    this.status = status;
    this.expose = opts.expose ?? status < 500;
    this.code = opts.code ?? 'UW_ERR_HTTP';
  }
}

/** Reason phrases for the statuses uwcore itself produces. @since 1.0.0 */
export const STATUS_TEXT: Readonly<Record<number, string>> = Object.freeze({
  100: 'Continue', 200: 'OK', 201: 'Created', 204: 'No Content', 206: 'Partial Content',
  301: 'Moved Permanently', 302: 'Found', 303: 'See Other', 304: 'Not Modified', 307: 'Temporary Redirect',
  308: 'Permanent Redirect', 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found',
  405: 'Method Not Allowed', 408: 'Request Timeout', 411: 'Length Required', 412: 'Precondition Failed',
  413: 'Content Too Large', 414: 'URI Too Long', 416: 'Range Not Satisfiable', 417: 'Expectation Failed',
  431: 'Request Header Fields Too Large', 500: 'Internal Server Error', 501: 'Not Implemented',
  502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout',
});

// ---------------------------------------------------------------------------------------------
// Options

/**
 * Value types an option can declare. `seconds` takes `30`, `30s`, `5m`, `1h`; `size` takes `64k`, `1m`, `2g`
 * (binary units); `addr` takes `:8000`, `8000`, `host:port`, `[::1]:port` or a UNIX socket path; `path` is
 * resolved against the directory of the file that set it (or the working directory on the command line).
 * @since 1.0.0
 */
export type OptionType = 'string' | 'int' | 'bool' | 'seconds' | 'size' | 'addr' | 'path';

/** @since 1.0.0 */
export interface OptionSpec {
  /** kebab-case; used as `--name`, as an ini key and as `UWCORE_NAME`. */
  name: string;
  type: OptionType;
  /** repeatable: every occurrence accumulates in order (ini, environment and command line). */
  multiple?: boolean;
  default?: unknown;
  /** other names for the same option (uWSGI's spellings). */
  alias?: string[];
  /** a one-letter short form (`-p`). */
  short?: string;
  /** smallest allowed value for int/seconds/size. */
  min?: number;
  /** largest allowed value for int/seconds/size. */
  max?: number;
  /** allowed values for a string option. */
  choices?: string[];
  help: string;
  /** the value name shown in --help (`ADDR`, `N` …). */
  arg?: string;
  /** setting this option turns the master process on (uWSGI's MASTER flag: --stats, --spooler …). */
  impliesMaster?: boolean;
}

/** A parsed listen address. @since 1.0.0 */
export type Address =
  | { kind: 'tcp'; host: string; port: number; raw: string }
  | { kind: 'unix'; path: string; raw: string };

/** Typed option values, keyed by option name. @since 1.0.0 */
export type OptionValues = Readonly<Record<string, unknown>>;

// ---------------------------------------------------------------------------------------------
// Logging

/** The subset of a pino logger plugins use. @since 1.0.0 */
export interface Logger {
  level: string;
  fatal(obj: unknown, msg?: string, ...args: unknown[]): void;
  error(obj: unknown, msg?: string, ...args: unknown[]): void;
  warn(obj: unknown, msg?: string, ...args: unknown[]): void;
  info(obj: unknown, msg?: string, ...args: unknown[]): void;
  debug(obj: unknown, msg?: string, ...args: unknown[]): void;
  trace(obj: unknown, msg?: string, ...args: unknown[]): void;
  child(bindings: Record<string, unknown>): Logger;
  isLevelEnabled(level: string): boolean;
}

// ---------------------------------------------------------------------------------------------
// Requests

/** Response headers as WSGI gives them: [name, value] pairs, in order. @since 1.0.0 */
export type HeaderList = Array<[string, string]>;

/**
 * The WSGI-style environment of one request: CGI variables (`REQUEST_METHOD`, `PATH_INFO`, `HTTP_*` …)
 * plus `wsgi.*` and `uwcore.*` keys.
 * @since 1.0.0
 */
export interface Env {
  REQUEST_METHOD: string;
  REQUEST_URI: string;
  PATH_INFO: string;
  QUERY_STRING: string;
  SERVER_PROTOCOL: string;
  [key: string]: unknown;
}

/**
 * What a protocol gives the core to write a response: the subset of node's `ServerResponse` the core
 * uses, so that node:http's response object is a Wire as it is, and a raw-socket protocol implements the same.
 * @since 1.0.0
 */
export interface Wire {
  readonly headersSent: boolean;
  readonly writableEnded: boolean;
  readonly destroyed: boolean;
  /** headers as [name, value] pairs (node:http takes them as they are). */
  writeHead(status: number, reason: string, headers: HeaderList): unknown;
  write(chunk: string | Uint8Array): boolean;
  end(chunk?: string | Uint8Array): unknown;
  destroy(err?: Error): unknown;
  once(event: 'drain' | 'close' | 'finish' | 'error', fn: (...args: unknown[]) => void): unknown;
  removeListener(event: 'drain' | 'close' | 'finish' | 'error', fn: (...args: unknown[]) => void): unknown;
}

/**
 * A per-request response transformation (gzip, cache-store …), added with `ctx.addTransform(t)` before the
 * headers are sent (typically by a router action or a `request` hook). Transforms run in the order they were
 * added: each `headers()` sees the list the previous one returned; each body chunk goes through every `chunk()`
 * in turn; at the end each `final()` may flush a last piece, which the later transforms' `chunk()` still see.
 * A transform that changes the body's length must drop `Content-Length` in `headers()` (the core then frames
 * the body itself). A transform with only `headers()` is a header edit: the body and its Content-Length are
 * left alone (@since 1.1.0). Transfer framing (`chunked`, `ctx.forceChunked`) is applied after all of them by
 * the protocol, because a transfer coding is by definition the outermost one: a gzip added after `chunked:`
 * still compresses the body, then the compressed bytes are chunk-framed.
 * @since 1.0.0
 */
export interface Transform {
  name: string;
  /** may edit the headers before they are written (edit in place or return a new list). */
  headers?(ctx: RequestContext, headers: HeaderList): HeaderList | void;
  /** maps one body chunk; return null/empty to hold it back. */
  chunk?(ctx: RequestContext, chunk: Buffer): Buffer | null;
  /** called once at the end; may return a last chunk. */
  final?(ctx: RequestContext): Buffer | null | void;
}

/** Where the request came in. @since 1.0.0 */
export interface ListenerInfo {
  /** the option that declared it (`http`, `http-socket`, `uwsgi-socket` …) */
  readonly option: string;
  readonly protocol: string;
  readonly address: Address;
  /** `one-request`: the connection closes after each response (uWSGI's --http-socket). */
  readonly keepAlive: boolean;
}

/**
 * One request as plugins see it. The application sees only `env`.
 * @since 1.0.0
 */
export interface RequestContext {
  readonly env: Env;
  readonly listener: ListenerInfo;
  /** the request body as received (de-chunked). */
  readonly body: NodeJS.ReadableStream & AsyncIterable<Buffer>;
  /** performance.now() when the request was parsed. */
  readonly startTime: number;
  /** response status, once started (0 before). */
  readonly status: number;
  readonly headersSent: boolean;
  /** body bytes written so far (after transforms). */
  readonly bytesSent: number;
  /** the client went away or the response was aborted. */
  readonly aborted: boolean;
  /** per-plugin request state: ctx.state[pluginName]. */
  readonly state: Record<string, unknown>;
  /** a logger bound to this request (created on first use). */
  readonly log: Logger;
  /** do not write an access-log line for this request. */
  noLog: boolean;
  /** ask the protocol to use chunked transfer coding (HTTP/1.1) and drop Content-Length. */
  forceChunked: boolean;

  /** send a whole response at once. */
  respond(status: number, headers: HeaderList, body?: string | Uint8Array | null): void;
  /** start a streamed response. `reason` may be empty for the standard phrase. */
  start(status: number, reason: string, headers: HeaderList): void;
  /** write body bytes; false means wait for `drain()`. */
  write(chunk: string | Uint8Array): boolean;
  /** resolves when the wire can take more (or the client went away). */
  drain(): Promise<void>;
  end(chunk?: string | Uint8Array): void;
  /** abort the response: the connection is closed without finishing. */
  abort(err?: Error): void;
  addTransform(t: Transform): void;
  /** run fn when the response ends, however it ends (LIFO). */
  onClose(fn: () => void): void;
}

// ---------------------------------------------------------------------------------------------
// Registries

/** A protocol opens listeners in each worker and feeds requests to the core. @since 1.0.0 */
export interface Protocol {
  listen(listener: ListenerInfo, server: ServerHandle): Promise<ListenerHandle>;
}

/** What a running listener lets the core do. @since 1.0.0 */
export interface ListenerHandle {
  /** stop accepting; resolve when the listening socket is closed. */
  close(): Promise<void>;
  /** close connections that are idle (keep-alive between requests). */
  closeIdle(): void;
  /** connections currently open. */
  connections(): number;
  /** destroy every connection (forced stop). */
  destroyAll(): void;
}

/** The core as a protocol sees it. @since 1.0.0 */
export interface ServerHandle {
  readonly options: OptionValues;
  readonly log: Logger;
  readonly workerId: number;
  /** header / vars block limit in bytes (--buffer-size). */
  readonly bufferSize: number;
  /** request body limit in bytes, 0 = none (--limit-post). */
  readonly limitPost: number;
  /** the server is draining: answer the current request with Connection: close. */
  readonly draining: boolean;
  /** run the request pipeline for one parsed request. */
  dispatch(env: Env, body: NodeJS.ReadableStream & AsyncIterable<Buffer>, wire: Wire, listener: ListenerInfo): void;
  /** build the CGI vars for a parsed HTTP request head: a node:http request is one (shared by http-like protocols). */
  httpEnv(req: HttpHead, listener: ListenerInfo): Env;
}

/**
 * What `ServerHandle.httpEnv` reads of a request: the fields of node's IncomingMessage it needs, so that a
 * protocol with its own parser can build the same env. @since 1.2.0
 */
export interface HttpHead {
  readonly method?: string | undefined;
  readonly url?: string | undefined;
  readonly httpVersion: string;
  readonly httpVersionMajor: number;
  readonly httpVersionMinor: number;
  /** names and values, alternating, as received */
  readonly rawHeaders: string[];
  readonly socket: { readonly remoteAddress?: string | undefined; readonly remotePort?: number | undefined; readonly localAddress?: string | undefined; readonly localPort?: number | undefined };
}

/** Result of a router action: continue to the next rule, stop routing and run the app, or end the request. @since 1.0.0 */
export type RouteResult = 'next' | 'continue' | 'break';

/**
 * A compiled router action, run when its rule matches. `match` holds the rule's regex captures ($1…$9), or a
 * `regexp` condition's. Return `'next'` (go on with the next rule), `'continue'` (stop routing, run the app) or
 * `'break'` (the response is done: the action answered it, or, with nothing sent, the connection is closed).
 * An action that answers asynchronously must return a Promise that resolves once it has answered.
 * @since 1.0.0
 */
export type RouterAction = (ctx: RequestContext, match: RegExpExecArray | null) => RouteResult | Promise<RouteResult>;

/**
 * An argument template compiled once: `$1…$9` (captures) and `${VAR}` (request variables) expanded per request.
 * @since 1.1.0
 */
export interface RouteTemplate {
  (ctx: RequestContext, match: RegExpExecArray | null): string;
  /** the text when it holds no variable (nothing to expand), else null. */
  readonly constant: string | null;
}

/**
 * What an action factory or a condition learns about its rule at startup.
 * @since 1.0.0 (`option`, `text`, `template`, `regex` @since 1.1.0)
 */
export interface RouteRule {
  /** where the rule was written: `/etc/app.ini:12`, `command line`, `environment UWCORE_ROUTE`. */
  readonly source: string;
  /** the option that declared it (`route`, `route-if`, `route-run` …). @since 1.1.0 */
  readonly option: string;
  /** the rule's full text, as written. @since 1.1.0 */
  readonly text: string;
  /** expand `$1…$9` and `${VAR}` in `template` for one request (parses each call: prefer `template()`). */
  expand(template: string, ctx: RequestContext, match: RegExpExecArray | null): string;
  /** compile a template once (at startup); throws a message for a malformed `${…}`. @since 1.1.0 */
  template(text: string): RouteTemplate;
  /**
   * compile a user-supplied regular expression under the router's rules (no backreferences, no lookaround:
   * matching runs in linear time on hostile input; a leading `(?i)` means case-insensitive). Throws a message on refusal.
   * @since 1.1.0
   */
  regex(pattern: string): RegExp;
}

/**
 * A router action factory: called once per rule at startup with the raw argument string (the text after
 * `name:`). Throw an Error to refuse the rule: startup stops with the rule, its source and your message.
 * @since 1.0.0
 */
export interface RouterActionFactory {
  (args: string, rule: RouteRule): RouterAction;
}

/**
 * A route-if condition in its simple form: tested per request with the whole argument, expanded.
 * @since 1.0.0
 */
export type RouteCondition = (value: string, ctx: RequestContext) => boolean;

/**
 * A per-request condition test. A RegExpExecArray counts as true and gives its captures to the action ($1…$9).
 * @since 1.1.0
 */
export type RouteTest = (ctx: RequestContext, match: RegExpExecArray | null) => boolean | RegExpExecArray | null;

/**
 * A route-if condition compiled once per rule: `compile` receives the raw argument (the text between
 * `name:` and the action, e.g. `${PATH_INFO};/foo`) and returns the per-request test. Throw to refuse the rule.
 * @since 1.1.0
 */
export interface RouteConditionSpec {
  compile(args: string, rule: RouteRule): RouteTest;
}

/** An application kind (uWSGI's modifier1 for apps): recognises a loaded module's export. @since 1.0.0 */
export interface AppKind {
  /** return a request handler if this kind recognises the export, else undefined. */
  detect(exported: unknown, info: { callable: string; file: string }): ((ctx: RequestContext) => unknown) | undefined;
}

/** A name → implementation map that refuses duplicates. @since 1.0.0 */
export interface Registry<T> {
  register(name: string, impl: T): void;
  get(name: string): T | undefined;
  has(name: string): boolean;
}

// ---------------------------------------------------------------------------------------------
// Hooks (tap-only)

/** @since 1.0.0 */
export interface TapOptions { name: string; stage?: number; before?: string | string[] }

/** @since 1.0.0 */
export interface SyncTap<Args extends unknown[], R> {
  tap(opts: string | TapOptions, fn: (...args: Args) => R): void;
}
/** @since 1.0.0 */
export interface AsyncTap<Args extends unknown[], R> {
  tap(opts: string | TapOptions, fn: (...args: Args) => R): void;
  tapPromise(opts: string | TapOptions, fn: (...args: Args) => Promise<R>): void;
}

/** The config object the `configure` waterfall passes along. @since 1.0.0 */
export type MutableOptions = Record<string, unknown>;

/**
 * Every hook a plugin can tap. See sdk/README.md for when each runs and what its return value means.
 * @since 1.0.0
 */
export interface Hooks {
  /** sync waterfall, master and workers: adjust the merged options before they are frozen. @since 1.0.0 */
  configure: SyncTap<[MutableOptions], MutableOptions>;
  /** async series, master only: master-side services (stores, stats, supervision). @since 1.0.0 */
  masterStart: AsyncTap<[], void>;
  /** async series, each worker after spawn, before its listeners open. @since 1.0.0 */
  workerStart: AsyncTap<[], void>;
  /** async parallel: this process accepts traffic. @since 1.0.0 */
  ready: AsyncTap<[], void>;
  /** async series: a graceful reload begins. @since 1.0.0 */
  reload: AsyncTap<[], void>;
  /** async series in reverse plugin order: shutdown. @since 1.0.0 */
  close: AsyncTap<[], void>;
  /** async series bail: return true when the plugin has answered the request (static, cache). @since 1.0.0 */
  request: AsyncTap<[RequestContext], boolean | void>;
  /** async series bail: return true when the plugin produced the response instead of the app. @since 1.0.0 */
  handle: AsyncTap<[RequestContext], boolean | void>;
  /** async series bail: return true when the plugin answered the error. @since 1.0.0 */
  error: AsyncTap<[Error, RequestContext], boolean | void>;
  /** sync waterfall: edit the header list before it is written. @since 1.0.0 */
  headers: SyncTap<[HeaderList, RequestContext], HeaderList>;
  /** sync: after the response ended (access log, stats, metrics). @since 1.0.0 */
  finish: SyncTap<[RequestContext], void>;
  /** sync waterfall, master: add this plugin's section to the stats document (e.g. `caches`, `spoolers`). @since 1.0.0 */
  stats: SyncTap<[StatsDocument], StatsDocument>;
}

/** The stats server's JSON document (uWSGI-compatible keys). @since 1.0.0 */
export type StatsDocument = Record<string, unknown>;

// ---------------------------------------------------------------------------------------------
// Plugin API

/** Which process a plugin's setup runs in. `single` is the one process of a server without a master. @since 1.0.0 */
export type ProcessRole = 'master' | 'worker' | 'service' | 'single';

/** Calls between worker processes and services the master owns. @since 1.0.0 */
export interface Rpc {
  /** master (or single process): answer `method` for this plugin. */
  handle(method: string, fn: (payload: any, from: { workerId: number; pid: number }) => unknown): void;
  /** any process: call this plugin's `method` in the master; resolves with its answer. */
  call<T = unknown>(method: string, payload?: unknown): Promise<T>;
}

/** A plugin-owned process kind the master spawns and respawns (e.g. spooler processes). @since 1.0.0 */
export interface ServiceSpec {
  /** how many processes of this kind. */
  count: number;
  /** title shown by ps: `uwcore <title> N` */
  title: string;
  /** runs inside the service process after every plugin's setup; resolves when the service stops. */
  run(ctx: { index: number; log: Logger; signal: AbortSignal }): Promise<void>;
}

/** What `setup(api)` receives. @since 1.0.0 */
export interface PluginApi {
  /** this plugin's options, typed and frozen. @since 1.0.0 */
  readonly options: OptionValues;
  /** every option of the server (read-only). @since 1.0.0 */
  readonly config: OptionValues;
  /** a pino child logger bound to `{ plugin: name }`. @since 1.0.0 */
  readonly log: Logger;
  /** the tap-only hook catalogue (see Hooks); taps are refused once the server is ready. @since 1.0.0 */
  readonly hooks: Hooks;
  /** the process this setup runs in: setup runs once per process that needs the plugin. @since 1.0.0 */
  readonly process: ProcessRole;
  /** 1..N in workers, 0 elsewhere. @since 1.0.0 */
  readonly workerId: number;
  /** protocols by name (`http`, `uwsgi` …), used by api.listen(). @since 1.0.0 */
  readonly protocols: Registry<Protocol>;
  /** router actions by name: the `NAME:` in `--route REGEX NAME:ARGS`. @since 1.0.0 */
  readonly routerActions: Registry<RouterActionFactory>;
  /** route-if conditions by name: the `NAME:` in `--route-if NAME:VALUE ACTION`. (a test function, or a `{ compile }` spec since 1.1.0) @since 1.0.0 */
  readonly routeConditions: Registry<RouteCondition | RouteConditionSpec>;
  /** application kinds, tried in order on the loaded app's export. @since 1.0.0 */
  readonly appKinds: Registry<AppKind>;
  /** processes the master spawns and respawns for this plugin. @since 1.0.0 */
  readonly services: Registry<ServiceSpec>;
  /** worker → master calls, namespaced by this plugin's name. @since 1.0.0 */
  readonly rpc: Rpc;
  /** declare a listener served by `protocol` (opened in each worker). @since 1.0.0 */
  listen(option: string, protocol: string, address: Address, opts?: { keepAlive?: boolean }): void;
  /** the API another plugin returned from setup; only for names in `requires`. @since 1.0.0 */
  use<T = unknown>(name: string): T;
  /** run fn at shutdown, last registered first. @since 1.0.0 */
  onClose(fn: () => unknown): void;
  /** build an error tagged with a UW_ERR_* code and this plugin's name. @since 1.0.0 */
  error(code: string, message: string): Error & { code: string; plugin: string };
}

/** @since 1.0.0 */
export interface Plugin<A = unknown> {
  /** kebab-case; = folder = log binding = tap name. */
  name: string;
  version: string;
  /** semver range over SDK_VERSION. */
  sdk: string;
  description?: string;
  requires?: string[];
  options?: OptionSpec[];
  /**
   * Names this plugin registers in the router registries. The build records it in the built-in manifest, so a
   * rule that names one of these actions or conditions loads the plugin without `--plugins` (as an option does).
   * @since 1.1.0
   */
  provides?: { routerActions?: string[]; routeConditions?: string[] };
  setup?(api: PluginApi): A | void | Promise<A | void>;
}

/**
 * Declare a plugin. Identity at runtime: it only gives TypeScript the plugin's type.
 * @since 1.0.0
 */
export function definePlugin<A = unknown>(plugin: Plugin<A>): Plugin<A> {
  return plugin;
}

/** Is this value a uwcore plugin object? @since 1.0.0 */
export function isPlugin(value: unknown): value is Plugin {
  return typeof value === 'object' && value !== null && typeof (value as Plugin).name === 'string' &&
    typeof (value as Plugin).sdk === 'string';
}

/**
 * Percent-decode a URL path as UTF-8, as the core does for PATH_INFO: invalid UTF-8 sequences become U+FFFD
 * and a stray `%` stays as it is (never a throw, whatever the input).
 * @since 1.1.0
 */
export function percentDecode(p: string): string {
  if (!p.includes('%')) return p;
  try { return decodeURIComponent(p); } catch { /* decode byte by byte */ }
  const bytes: number[] = [];
  for (let i = 0; i < p.length; i++) {
    const c = p.charCodeAt(i);
    if (c === 37 && i + 2 < p.length) {
      const h = hexDigit(p.charCodeAt(i + 1));
      const l = hexDigit(p.charCodeAt(i + 2));
      if (h >= 0 && l >= 0) { bytes.push(h * 16 + l); i += 2; continue; }
    }
    if (c < 128) bytes.push(c);
    else for (const b of Buffer.from(p[i]!, 'utf8')) bytes.push(b);
  }
  return Buffer.from(bytes).toString('utf8');
}

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}
