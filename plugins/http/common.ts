// What both HTTP listeners of the http plugin share: the checks node:http's llhttp leaves to the server
// (Host, trailers) and the answer to a parse error.
import type { Buffer } from 'node:buffer';

export const HOST_BODY = 'Bad Request: invalid or duplicated Host header\n';
/** The bytes a Host value may hold (RFC 3986 reg-name, IP literal, port); a comma means two Host fields. */
const HOST_CHAR = new Uint8Array(128);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-_~!$&'()*+;=%:[]") HOST_CHAR[c.charCodeAt(0)] = 1;

/** A Host value as RFC 9112 §3.2 allows it (one field, valid bytes). */
export function validHost(host: string): boolean {
  const n = host.length;
  if (n === 0) return false;
  for (let i = 0; i < n; i++) {
    const c = host.charCodeAt(i);
    if (c > 127 || HOST_CHAR[c] === 0) return false;
  }
  return true;
}


/**
 * RFC 9110 §6.5.1: fields whose meaning depends on arriving before the content (framing, routing, request
 * modifiers, authentication). Trailers are never merged into env; these in a trailer mark a smuggling attempt.
 */
export const FORBIDDEN_TRAILERS = new Set(['host', 'content-length', 'transfer-encoding', 'trailer', 'authorization', 'proxy-authorization', 'cookie', 'expect', 'range', 'te', 'connection', 'upgrade']);

const METHOD_START = /^[A-Z]+ /;

/** The status for a parser error, and a one-line hint when the client spoke another protocol. */
export function classify(err: NodeJS.ErrnoException & { rawPacket?: Buffer }, bufferSize: number): { status: number; hint?: string } {
  const raw = err.rawPacket;
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW': {
      // the request line counts toward the header limit: a line that alone exceeds it means the URL is too long
      if (raw !== undefined && METHOD_START.test(raw.toString('latin1', 0, 12))) {
        const nl = raw.indexOf(10);
        if (nl < 0 || nl > bufferSize) return { status: 414 };
      }
      return { status: 431 };
    }
    case 'ERR_HTTP_REQUEST_TIMEOUT': return { status: 408 };
    case 'HPE_URI_TOO_LONG': return { status: 414 };
    case 'HPE_INVALID_METHOD':
      if (raw !== undefined && raw.length >= 4) {
        const b0 = raw[0]!;
        if (b0 === 0x16 && raw[1] === 3) return { status: 400, hint: 'a TLS handshake arrived on a plain HTTP socket; terminate TLS in nginx or a load balancer and forward plain HTTP' };
        if (b0 < 0x20 || b0 > 0x7e) {
          const size = raw[1]! | (raw[2]! << 8);
          return { status: 400, hint: `what looks like a uwsgi packet (modifier1 ${b0}, vars ${size} bytes) arrived on an HTTP socket; if nginx talks to uwcore with uwsgi_pass, listen with --uwsgi-socket (alias --socket) instead` };
        }
      }
      return { status: 400 };
    default: return { status: 400 };
  }
}

