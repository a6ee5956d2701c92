// The pino root logger: JSON lines by default, readable lines when the destination is a terminal.
// Writes are buffered (sonic-boom, async) and capped at PIPE_BUF so lines from several processes
// sharing one pipe never interleave; every exit path flushes.
import pino from 'pino';
import { Writable } from 'node:stream';
import type { Logger } from '../sdk/index.js';

export interface LogSetup { level: string; logto?: string | undefined; pretty?: boolean | undefined; bindings?: Record<string, unknown> }

let dest: (ReturnType<typeof pino.destination>) | null = null;
let root: pino.Logger | null = null;

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const COLORS: Record<number, string> = { 10: '90', 20: '36', 30: '32', 40: '33', 50: '31', 60: '35' };

/** Turn one pino JSON line into a readable line: `12:00:01.123 INFO  [http] message key=value`. */
export function prettyLine(line: string, color: boolean): string {
  let o: Record<string, unknown>;
  try { o = JSON.parse(line) as Record<string, unknown>; } catch { return line; }
  const { level, time, msg, pid, hostname, plugin, worker, err, ...rest } = o as Record<string, any>;
  void hostname; void pid;
  const t = new Date(typeof time === 'number' ? time : Date.now()).toISOString().slice(11, 23);
  const lv = (LEVELS[level as number] ?? String(level)).padEnd(5);
  const tag = [plugin ? String(plugin) : '', worker ? `w${worker}` : ''].filter(Boolean).join(' ');
  const extra = Object.entries(rest).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ');
  const lvs = color ? `\x1b[${COLORS[level as number] ?? '0'}m${lv}\x1b[0m` : lv;
  let s = `${t} ${lvs} ${tag ? `[${tag}] ` : ''}${msg ?? ''}${extra ? ' ' + extra : ''}`;
  if (err && typeof err === 'object' && (err as { stack?: string }).stack) s += '\n' + (err as { stack: string }).stack;
  return s + '\n';
}

class PrettyStream extends Writable {
  private pending = '';
  constructor(private readonly out: NodeJS.WritableStream, private readonly color: boolean) { super({ decodeStrings: false }); }
  override _write(chunk: unknown, _enc: BufferEncoding, cb: () => void): void {
    this.pending += String(chunk);
    let i: number;
    let out = '';
    while ((i = this.pending.indexOf('\n')) >= 0) {
      out += prettyLine(this.pending.slice(0, i), this.color);
      this.pending = this.pending.slice(i + 1);
    }
    if (out) this.out.write(out);
    cb();
  }
}

export function createRootLogger(setup: LogSetup): pino.Logger {
  const level = setup.level;
  const opts: pino.LoggerOptions = {
    level,
    base: { pid: process.pid, ...(setup.bindings ?? {}) },
    serializers: { err: pino.stdSerializers.err },
  };
  const pretty = setup.pretty ?? (!setup.logto && process.stdout.isTTY === true);
  if (pretty) {
    root = pino(opts, new PrettyStream(process.stdout, process.stdout.isTTY === true));
  } else {
    dest = pino.destination({ dest: setup.logto ?? 1, sync: false, minLength: 0, maxWrite: 4096, append: true, mkdir: true });
    root = pino(opts, dest);
  }
  return root;
}

export function getRoot(): pino.Logger {
  if (!root) root = createRootLogger({ level: 'info' });
  return root;
}

/** Flush buffered log lines synchronously (before an exit). */
export function flushLogs(): void {
  try { dest?.flushSync(); } catch { /* not ready yet, or closed */ }
}

export function asLogger(l: pino.Logger): Logger { return l as unknown as Logger; }
