// The fast path between workers and the master: a private UNIX socket (in a 0700 directory the master
// creates) carrying length-prefixed binary frames. One frame holds a batch of operations; the master answers
// each frame with one frame of results, in order. Compared with node's IPC channel (v8 serialization, one
// 'message' event per message) this costs about half the CPU per message and a fraction per operation.
// If the socket cannot be reached, index.ts falls back to the core's rpc (api.rpc.call).
//
// Request frame:  u32 length (including itself) | ops…
//   op: u8 code | u16 cache index | u16 key length | key (UTF-8)
//       set/add/setm: u32 value length | value | f64 expires     setm: u16 meta length | meta (latin1)
//       inc: f64 by
// Reply frame:    u32 length | one result per op: u8 tag | payload (see R_* below)
import { Buffer } from 'node:buffer';

export const R_NULL = 0, R_TRUE = 1, R_FALSE = 2, R_BUF = 3, R_NUM = 4, R_KEYS = 5, R_JSON = 6, R_META = 7, R_ERR = 8;

/** A growable output buffer. */
export class Out {
  buf: Buffer;
  off: number;
  constructor(size = 4096) {
    this.buf = Buffer.allocUnsafe(size);
    this.off = 4;
  }
  ensure(n: number): void {
    if (this.off + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.off + n) size *= 2;
    const b = Buffer.allocUnsafe(size);
    this.buf.copy(b, 0, 0, this.off);
    this.buf = b;
  }
  u8(v: number): void { this.ensure(1); this.buf[this.off++] = v; }
  u16(v: number): void { this.ensure(2); this.buf.writeUInt16LE(v, this.off); this.off += 2; }
  u32(v: number): void { this.ensure(4); this.buf.writeUInt32LE(v, this.off); this.off += 4; }
  f64(v: number): void { this.ensure(8); this.buf.writeDoubleLE(v, this.off); this.off += 8; }
  bytes(b: Uint8Array): void { this.ensure(b.length); this.buf.set(b, this.off); this.off += b.length; }
  /** a string with a u16 (or u32) byte-length prefix */
  str(s: string, enc: 'utf8' | 'latin1', wide = false): void {
    const max = s.length * (enc === 'utf8' ? 3 : 1);
    this.ensure(max + (wide ? 4 : 2));
    const at = this.off;
    this.off += wide ? 4 : 2;
    const n = max === 0 ? 0 : this.buf.write(s, this.off, enc);
    if (wide) this.buf.writeUInt32LE(n, at); else this.buf.writeUInt16LE(n, at);
    this.off += n;
  }
  /** the finished frame (length written); this Out must not be used afterwards */
  frame(): Buffer {
    this.buf.writeUInt32LE(this.off, 0);
    return this.buf.subarray(0, this.off);
  }
}

/** Splits a byte stream into frames; concatenates chunks only once per frame. */
export class FrameReader {
  private chunks: Buffer[] = [];
  private total = 0;
  private need = -1;
  constructor(private readonly onFrame: (buf: Buffer, start: number, end: number) => void) {}
  push(c: Buffer): void {
    this.chunks.push(c);
    this.total += c.length;
    for (;;) {
      if (this.need < 0) {
        if (this.total < 4) return;
        if (this.chunks[0]!.length < 4) this.chunks = [Buffer.concat(this.chunks, this.total)];
        this.need = this.chunks[0]!.readUInt32LE(0);
        if (this.need < 4) throw new Error(`bad frame length ${this.need}`);
      }
      if (this.total < this.need) return;
      const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.total);
      const end = this.need;
      const rest = all.subarray(end);
      this.chunks = rest.length > 0 ? [rest] : [];
      this.total = rest.length;
      this.need = -1;
      this.onFrame(all, 4, end);
    }
  }
}
