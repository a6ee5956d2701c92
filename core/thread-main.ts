// Entry point of an application thread (worker_threads, --threads / --harakiri): sets the plugins up
// (same options, role `worker`), loads its own copy of the application and runs the requests the
// worker's main thread hands over. The response goes back as messages (head, data, end), with credit-based
// backpressure; the body comes in on demand (pull → chunk/eof). Plugins' rpc calls go through the main thread.
import { Buffer } from 'node:buffer';
import { EventEmitter } from 'node:events';
import { Readable } from 'node:stream';
import { parentPort, workerData } from 'node:worker_threads';
import type { Env, HeaderList, ListenerInfo } from '../sdk/index.js';
import { formatFatal, type UwError } from './errors.js';
import { createRootLogger, flushLogs } from './logger.js';
import { importPlugin, type LoadedPlugin } from './plugins.js';
import { installRuntime } from './runtime.js';
import { Server } from './server.js';
import type { ThreadBoot, ToThread } from './threads.js';

const port = parentPort!;
const boot = workerData as ThreadBoot;
/** bytes a thread may have in flight to the main thread before write() returns false */
const HWM = 64 * 1024;

function byteLen(c: string | Uint8Array): number {
  return typeof c === 'string' ? Buffer.byteLength(c) : c.byteLength;
}

/** The Wire a thread's Ctx writes to: every call becomes a message to the worker's main thread. */
class ProxyWire extends EventEmitter {
  headersSent = false;
  writableEnded = false;
  destroyed = false;
  private pending = 0;
  private needDrain = false;
  constructor(readonly id: number) { super(); }
  writeHead(status: number, reason: string, headers: HeaderList): this {
    this.headersSent = true;
    if (!this.destroyed) port.postMessage({ t: 'head', id: this.id, s: status, r: reason, h: headers });
    return this;
  }
  write(chunk: string | Uint8Array): boolean {
    if (this.destroyed || this.writableEnded) return false;
    this.pending += byteLen(chunk);
    port.postMessage({ t: 'data', id: this.id, c: chunk });
    if (this.pending >= HWM) { this.needDrain = true; return false; }
    return true;
  }
  end(chunk?: string | Uint8Array): this {
    if (this.writableEnded) return this;
    this.writableEnded = true;
    if (!this.destroyed) port.postMessage({ t: 'end', id: this.id, c: chunk });
    this.emit('finish');
    this.emit('close');
    return this;
  }
  destroy(): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    port.postMessage({ t: 'abort', id: this.id });
    this.emit('close');
    return this;
  }
  ack(n: number): void {
    this.pending -= n;
    if (this.needDrain && this.pending < HWM) { this.needDrain = false; this.emit('drain'); }
  }
  gone(): void {
    if (this.destroyed || this.writableEnded) return;
    this.destroyed = true;
    this.emit('close');
  }
}

interface Running { wire: ProxyWire; body: Readable }

async function main(): Promise<void> {
  // the main thread applies --add-header, the headers hook, routes and the access log: not again here
  const options: Record<string, unknown> = { ...boot.options, 'disable-logging': true, 'add-header': [], __routes: [] };
  const root = createRootLogger({ level: options['log-level'] as string, logto: options.logto as string | undefined, bindings: { worker: boot.workerId, core: boot.coreId } });
  const server = new Server({ options, root, role: 'worker', workerId: boot.workerId });
  server.rpcSend = (m) => port.postMessage(m);
  installRuntime({
    workerId: boot.workerId,
    requests: () => server.requests,
    reload: () => {
      if (boot.master) process.kill(process.ppid, 'SIGHUP');
      else root.warn('uwcore.reload() needs --master: a single process cannot replace itself');
    },
    plugin: (n) => server.apis.get(n),
  });
  try {
    const plugins: LoadedPlugin[] = [];
    for (const p of boot.plugins) plugins.push(await importPlugin(p.file, p.origin, p.requested));
    await server.setupPlugins(plugins, new Map(boot.pluginOptions));
    await server.hooks.workerStart.promise();
    await server.loadApplication(process.cwd());
    server.seal();
    server.headersHook = null;
  } catch (e) {
    flushLogs();
    port.postMessage({ t: 'fatal', line: formatFatal(e), code: (e as UwError)?.code });
    return;
  }
  const running = new Map<number, Running>();
  server.onRequestDone = (ctx) => {
    const id = (ctx.wire as unknown as ProxyWire).id;
    running.delete(id);
    port.postMessage({ t: 'done', id, x: server.exceptions });
  };
  port.on('message', (m: ToThread) => {
    switch (m.t) {
      case 'req': {
        const wire = new ProxyWire(m.id);
        const body = new Readable({ read() { port.postMessage({ t: 'pull', id: m.id }); } });
        running.set(m.id, { wire, body });
        server.dispatchApp(m.env as Env, body as Readable & AsyncIterable<Buffer>, wire as never, m.l as ListenerInfo, boot.coreId);
        break;
      }
      case 'chunk': running.get(m.id)?.body.push(Buffer.from(m.c.buffer, m.c.byteOffset, m.c.byteLength)); break;
      case 'eof': running.get(m.id)?.body.push(null); break;
      case 'berr': running.get(m.id)?.body.destroy(Object.assign(new Error(m.m), { code: 'ECONNRESET' })); break;
      case 'ack': running.get(m.id)?.wire.ack(m.n); break;
      case 'gone': running.get(m.id)?.wire.gone(); break;
      case 'rpc:res': server.rpcAnswer(m as never); break;
      case 'stop':
        void server.runClose().finally(() => { flushLogs(); port.postMessage({ t: 'closed' }); });
        break;
      default:
    }
  });
  port.postMessage({ t: 'ready', app: server.app ? server.appDescription : null });
}

void main();
