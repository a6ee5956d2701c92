// CGI variables for a request parsed by node:http, built once per request with no per-header work
// beyond one Map lookup for the HTTP_* name.
import { percentDecode, type Env, type HttpHead, type ListenerInfo } from '../sdk/index.js';

const headerKeys = new Map<string, string>();

/** `Content-Type` → `HTTP_CONTENT_TYPE`, cached (bounded) because the same names recur on every request. */
export function cgiHeaderName(name: string): string {
  let k = headerKeys.get(name);
  if (k === undefined) {
    k = 'HTTP_' + name.toUpperCase().replace(/-/g, '_');
    if (headerKeys.size < 512) headerKeys.set(name, k);
  }
  return k;
}

/** Remove literal `.` and `..` segments (RFC 3986 §5.2.4), never climbing above the root. */
export function removeDotSegments(p: string): string {
  const out: string[] = [];
  const segs = p.split('/');
  for (let i = 0; i < segs.length; i++) {
    const s = segs[i]!;
    if (s === '.') { if (i === segs.length - 1) out.push(''); continue; }
    if (s === '..') { if (out.length > 1) out.pop(); if (i === segs.length - 1) out.push(''); continue; }
    out.push(s);
  }
  const r = out.join('/');
  return r.startsWith('/') ? r : '/' + r;
}

/** Percent-decode a path as UTF-8 (invalid sequences become U+FFFD; a stray `%` stays as it is). */
export function decodePath(raw: string): string {
  let p = raw;
  if (p.includes('/.')) p = removeDotSegments(p);
  if (!p.includes('%')) return p;
  // decode, then remove the dot segments decoding revealed (/%2e%2e/ must not climb; nginx does the same)
  const d = percentDecode(p);
  return d.includes('/.') ? removeDotSegments(d) : d;
}

/** The path of an absolute-form target (`GET http://host/x`, RFC 9112 §3.2.2) or `*`. */
function originPath(target: string): string {
  const m = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/]*(\/.*)?$/.exec(target);
  if (m) return m[1] ?? '/';
  return target === '*' ? '*' : '/' + target;
}

/** The CGI environment of a node:http request. `extra` holds the constant wsgi.* / uwcore.* keys. */
/** The per-process constants every env carries (set by the core's dispatch when a protocol did not). */
export interface EnvConsts { errors: unknown; version: string; workerId: number; multiprocess: boolean }

const NO_CONSTS: EnvConsts = { errors: undefined, version: '', workerId: 0, multiprocess: false };

export function buildHttpEnv(req: HttpHead, listener: ListenerInfo, port: string, scheme: string, consts: EnvConsts = NO_CONSTS): Env {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  let rawPath = q < 0 ? url : url.slice(0, q);
  if (rawPath.charCodeAt(0) !== 47 /* / */) rawPath = originPath(rawPath);
  const sock = req.socket;
  let remote = sock.remoteAddress ?? '';
  if (remote.startsWith('::ffff:')) remote = remote.slice(7);
  const env: Env = {
    REQUEST_METHOD: req.method ?? 'GET',
    REQUEST_URI: url,
    PATH_INFO: decodePath(rawPath.length === 0 ? '/' : rawPath),
    QUERY_STRING: q < 0 ? '' : url.slice(q + 1),
    SERVER_PROTOCOL: req.httpVersionMinor === 1 && req.httpVersionMajor === 1 ? 'HTTP/1.1' : `HTTP/${req.httpVersion}`,
    SCRIPT_NAME: '',
    SERVER_NAME: '',
    SERVER_PORT: port,
    REMOTE_ADDR: remote,
    REMOTE_PORT: sock.remotePort === undefined ? '' : String(sock.remotePort),
    'wsgi.url_scheme': scheme,
    // the constants set here rather than stored one by one in dispatch; declared in full so that the object
    // has its final shape from the start (wsgi.input is filled in by the application kind)
    'wsgi.input': undefined,
    'wsgi.errors': consts.errors,
    'uwcore.version': consts.version,
    'uwcore.worker_id': consts.workerId,
    'uwcore.core_id': 0,
    'wsgi.multithread': false,
    'wsgi.multiprocess': consts.multiprocess,
    'wsgi.run_once': false,
  };
  const raw = req.rawHeaders;
  let chunked = false;
  let cl: string | undefined;
  let host: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.includes('_')) continue; // HTTP_X_Y from "X_Y" would spoof "X-Y" (nginx drops these too)
    const value = raw[i + 1]!;
    if (name.length === 4 && (name === 'Host' || name === 'host' || name.toLowerCase() === 'host')) {
      // the one header nearly every request has: a named store keeps this site monomorphic (a keyed store
      // with a new key goes through the megamorphic stub and the runtime)
      host = host === undefined ? value : `${host}, ${value}`;
      continue;
    }
    let key = cgiHeaderName(name);
    if (key.length === 17 || key.length === 19) {
      // CONTENT_TYPE and CONTENT_LENGTH carry no HTTP_ prefix (CGI, PEP 3333)
      if (key === 'HTTP_CONTENT_TYPE') {
        key = 'CONTENT_TYPE';
        // a singleton field (RFC 9110 §8.3): two of them make the body's meaning ambiguous
        if (env.CONTENT_TYPE !== undefined) throw new Error('duplicated Content-Type header');
      }
      else if (key === 'HTTP_CONTENT_LENGTH') { cl = value; continue; }
    } else if (key === 'HTTP_TRANSFER_ENCODING') chunked = true;
    const prev = env[key];
    env[key] = prev === undefined ? value : `${prev as string}, ${value}`;
  }
  if (cl !== undefined && !chunked) env.CONTENT_LENGTH = cl;
  if (host !== undefined) {
    env.HTTP_HOST = host;
    let end = host.charCodeAt(0) === 91 /* [ */ ? host.indexOf(']') + 1 : host.indexOf(':');
    if (end <= 0) end = host.length;
    env.SERVER_NAME = end === host.length ? host : host.slice(0, end);
  } else {
    env.SERVER_NAME = listener.address.kind === 'tcp' ? (sock.localAddress ?? listener.address.host).replace(/^::ffff:/, '') : 'localhost';
  }
  return env;
}
