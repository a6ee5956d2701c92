// The `spooler` plugin: durable background tasks in plain files (uWSGI's spooler). `--spooler DIR` runs
// spooler processes (supervised by the master as the service `spooler`) that execute tasks written into
// DIR by `task.spool(args)` from any process. Delivery is at least once: a task whose spool() resolved is
// on disk (fsynced), a task runs until it succeeds or exhausts its retries (then it waits in failed/),
// and a task interrupted by a crash runs again. See README.md for the options, the API and the format.
import fs from 'node:fs';
import path from 'node:path';
import { definePlugin, type Logger, type PluginApi, type StatsDocument } from '../../sdk/index.js';
import { SPOOL_OK, SPOOL_RETRY, argsToVars, encodePacket } from './format.js';
import { SpoolDir } from './queue.js';
import { Runner, type RunnerReport, type TaskFn, type TaskKind } from './runner.js';

type AnyFn = (...a: any[]) => unknown;
export interface SpoolOptions { at?: Date | number; priority?: number; body?: Buffer | Uint8Array | string; spooler?: string }
export type Task<F extends AnyFn = AnyFn> = F & { spool(args?: Record<string, unknown>, opts?: SpoolOptions): Promise<string>; taskName: string };

export interface SpoolerApi {
  spool(nameOrFn: string | AnyFn, fn?: AnyFn): Task;
  spoolRaw(nameOrFn: string | AnyFn, fn?: AnyFn): Task;
  spoolForever(nameOrFn: string | AnyFn, fn?: AnyFn): Task;
  /** enqueue a task by function name */
  enqueue(name: string, args?: Record<string, unknown>, opts?: SpoolOptions, kind?: TaskKind): Promise<string>;
  /** the configured spool directories */
  dirs: readonly string[];
}

interface ProcState { dir: string; index: number; pid: number; tasks: number; failed: number; retried: number; respawns: number; running: string | null; names: string[]; seen: number }

export default definePlugin<SpoolerApi>({
  name: 'spooler',
  version: '1.0.0',
  sdk: '^1.0.0',
  description: 'durable background tasks in plain files, run at least once (uWSGI\'s spooler)',
  options: [
    { name: 'spooler', type: 'path', multiple: true, short: 'Q', impliesMaster: true, arg: 'DIR', help: 'run spooler processes for the tasks in DIR (created with mode 0750 when missing; relative to the ini\'s directory in an ini)' },
    { name: 'spooler-processes', type: 'int', default: 1, min: 1, max: 256, arg: 'N', help: 'spooler processes per spooler directory' },
    { name: 'spooler-frequency', type: 'seconds', default: 30, min: 0.01, alias: ['spooler-freq'], arg: 'S', help: 'rescan interval; a new task wakes the spooler at once, so this is only a fallback' },
    { name: 'spooler-max-tasks', type: 'int', default: 0, min: 0, arg: 'N', help: 'recycle a spooler process after N tasks (0 = never)' },
    { name: 'spooler-harakiri', type: 'seconds', default: 0, min: 0, arg: 'S', help: 'kill a spooler process whose task runs longer than S seconds; the task runs again (0 = never)' },
    { name: 'spooler-ordered', type: 'bool', default: false, help: 'accepted for uWSGI compatibility: uwcore always honours priorities (lower first), then age' },
    { name: 'spooler-retry-delay', type: 'seconds', default: 5, min: 0, arg: 'S', help: 'first retry delay of a failed task; doubles with each attempt (capped at 1 h)' },
    { name: 'spooler-max-retries', type: 'int', default: 10, min: 0, max: 1_000_000, arg: 'N', help: 'retries before a failing task moves to DIR/failed (see `uwcore spooler ls`)' },
    { name: 'spooler-import', type: 'path', multiple: true, alias: ['spooler-python-import', 'spooler-pyimport'], arg: 'MODULE', help: 'import MODULE in the spooler processes only (task functions the workers never call)' },
  ],
  setup(api) {
    const o = api.options;
    const dirs = (o.spooler as string[]) ?? [];
    const processes = o['spooler-processes'] as number;
    const frequencyMs = (o['spooler-frequency'] as number) * 1000;
    const retryDelayMs = (o['spooler-retry-delay'] as number) * 1000;
    const maxRetries = o['spooler-max-retries'] as number;
    const harakiri = o['spooler-harakiri'] as number;
    const fail = (code: string, msg: string) => api.error(code, msg);

    // every process: the directories (the master creates them; the others open them)
    const spools = new Map<string, SpoolDir>();
    for (const d of dirs) {
      if (spools.has(d)) continue;
      if (api.process === 'master' || api.process === 'single') {
        try { spools.set(d, SpoolDir.prepare(d)); } catch (e) {
          throw fail('UW_ERR_SPOOLER_DIR', `spooler directory ${d} cannot be used (--spooler): ${(e as Error).message}; fix its permissions or choose another directory`);
        }
      } else spools.set(d, new SpoolDir(d));
    }
    // a graceful stop checkpoints this process's journals (else the spooler does, once it is gone)
    api.onClose(() => { for (const s of spools.values()) s.closeJournal(); });
    const realpaths = new Map<string, string>();
    for (const d of spools.keys()) { try { realpaths.set(fs.realpathSync(d), d); } catch { realpaths.set(d, d); } }

    const registry = new Map<string, { fn: TaskFn; kind: TaskKind }>();
    const procs = new Map<number, ProcState>(); // master: per service index

    const dirFor = (index: number) => dirs[Math.floor((index - 1) / processes)]!;

    const pickSpool = (which: string | undefined): SpoolDir => {
      if (spools.size === 0) throw fail('UW_ERR_NOT_ENABLED', 'the spooler is not enabled in this server: start uwcore with --spooler DIR');
      if (which === undefined) return spools.get(dirs[0]!)!;
      const abs = path.resolve(which);
      const d = spools.has(abs) ? abs : realpaths.get(abs) ?? (() => { try { return realpaths.get(fs.realpathSync(abs)); } catch { return undefined; } })()
        ?? (() => { const m = dirs.filter((x) => path.basename(x) === which); return m.length === 1 ? m[0] : undefined; })();
      if (!d) throw fail('UW_ERR_SPOOLER_UNKNOWN', `unable to find spooler ${JSON.stringify(which)}: the configured spoolers are ${dirs.join(', ')}`);
      return spools.get(d)!;
    };

    // names of the task functions each spooler directory's processes have loaded (workers ask the master)
    const knownNames = new Map<string, { names: Set<string> | null; at: number }>();
    const checkName = async (spool: SpoolDir, name: string): Promise<void> => {
      if (api.process !== 'worker' && api.process !== 'master') return;
      let k = knownNames.get(spool.dir);
      if (k?.names?.has(name)) return;
      if (!k || Date.now() - k.at >= 1000) {
        let list: string[] | null = null;
        try { list = await api.rpc.call<string[] | null>('names', { dir: spool.dir }); } catch { list = null; }
        k = { names: list ? new Set(list) : null, at: Date.now() };
        knownNames.set(spool.dir, k);
      }
      // null: no spooler process has started yet; the task waits on disk for it
      if (k.names && !k.names.has(name)) {
        throw fail('UW_ERR_SPOOLER_UNKNOWN_TASK', `unknown task function \`${name}\`: the spooler processes of ${spool.dir} have not loaded it (they know: ${[...k.names].join(', ') || 'none'}); load its module with --import FILE (workers and spoolers) or --spooler-import FILE`);
      }
    };

    const toMs = (at: unknown): number | undefined => {
      if (at === undefined || at === null) return undefined;
      const ms = at instanceof Date ? at.getTime() : typeof at === 'number' ? at * 1000 : typeof at === 'string' && at.trim() !== '' && Number.isFinite(Number(at)) ? Number(at) * 1000 : NaN;
      if (!Number.isFinite(ms) || ms < 0) throw fail('UW_ERR_SPOOLER_ARGS', `invalid \`at\` ${JSON.stringify(String(at))}: give a Date or unix time in seconds`);
      return ms;
    };

    const enqueue = async (name: string, args: Record<string, unknown> = {}, opts: SpoolOptions = {}, kind: TaskKind = 'spool'): Promise<string> => {
      if (typeof name !== 'string' || name === '') throw fail('UW_ERR_SPOOLER_ARGS', 'a task needs a function name');
      opts ??= {};
      if (args === undefined) args = {};
      if (args === null || typeof args !== 'object' || Array.isArray(args)) throw fail('UW_ERR_SPOOLER_ARGS', `task ${name}: args must be an object of strings or JSON values, got ${Array.isArray(args) ? 'an array' : args === null ? 'null' : typeof args}`);
      const spool = pickSpool(opts.spooler);
      const at = toMs(opts.at);
      let priority: number | null = null;
      if (opts.priority !== undefined && opts.priority !== null) {
        const p = Number(opts.priority);
        if (!Number.isInteger(p) || p < 0 || p > 2_147_483_647) throw fail('UW_ERR_SPOOLER_ARGS', `invalid priority ${JSON.stringify(opts.priority)} for task ${name}: give an integer >= 0 (lower runs first)`);
        priority = p;
      }
      let body: Buffer | null = null;
      if (opts.body !== undefined && opts.body !== null) {
        if (typeof opts.body === 'string') body = Buffer.from(opts.body);
        else if (opts.body instanceof Uint8Array) body = Buffer.from(opts.body.buffer, opts.body.byteOffset, opts.body.byteLength);
        else throw fail('UW_ERR_SPOOLER_ARGS', `task ${name}: body must be a Buffer or a string`);
      }
      let packet: Buffer;
      try {
        const { vars, json } = argsToVars(args);
        vars.push(['ud_spool_func', name]);
        if (kind !== 'raw') vars.push(['ud_spool_ret', String(kind === 'forever' ? SPOOL_RETRY : SPOOL_OK)]);
        if (json.length) vars.push(['uwcore_json', JSON.stringify(json)]);
        if (priority !== null) vars.push(['priority', String(priority)]);
        if (at !== undefined) vars.push(['at', String(Math.floor(at / 1000))]);
        if (opts.spooler !== undefined) vars.push(['spooler', spool.dir]);
        if (body) vars.push(['uwcore_body_size', String(body.length)]);
        packet = encodePacket(vars, null); // the vars block; the body is appended as it is
      } catch (e) {
        throw fail('UW_ERR_SPOOLER_ARGS', `cannot spool task ${name}: ${(e as Error).message}`);
      }
      await checkName(spool, name);
      try {
        return await spool.enqueue(packet, { at, priority, body });
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        throw fail('UW_ERR_SPOOLER_WRITE', `cannot write task ${name} to spooler ${spool.dir}: ${err.code ?? err.message}${err.code === 'EACCES' || err.code === 'EPERM' ? ' (permission denied: the directory must be writable by the server\'s user)' : err.code === 'ENOSPC' ? ' (the disk is full)' : ''}; the task was not queued`);
      }
    };

    const declare = (kind: TaskKind, nameOrFn: string | AnyFn, fn?: AnyFn): Task => {
      let name: string;
      let f: AnyFn | undefined;
      if (typeof nameOrFn === 'function') { f = nameOrFn; name = nameOrFn.name; } else { name = nameOrFn; f = fn; }
      if (typeof name !== 'string' || name === '') throw fail('UW_ERR_SPOOLER_ARGS', 'spool() needs a named function (spool(function sendEmail(args) {...})) or a name: spool(\'send_email\', fn)');
      if (f !== undefined && typeof f !== 'function') throw fail('UW_ERR_SPOOLER_ARGS', `spool(${JSON.stringify(name)}, fn): fn must be a function`);
      if (f) {
        const prev = registry.get(name);
        if (prev && prev.fn !== f) throw fail('UW_ERR_SPOOLER_DUPLICATE', `task name \`${name}\` is declared twice with different functions; name one of them: spool('other_name', fn)`);
        registry.set(name, { fn: f as TaskFn, kind });
      }
      const target: AnyFn = f ?? (() => { throw fail('UW_ERR_SPOOLER_ARGS', `task ${name} has no function in this process; enqueue it with .spool(args)`); });
      const task = target as Task;
      if (typeof (task as { spool?: unknown }).spool !== 'function') {
        Object.defineProperty(task, 'spool', { value: (args?: Record<string, unknown>, opts?: SpoolOptions) => enqueue(name, args, opts, kind), configurable: true });
        Object.defineProperty(task, 'taskName', { value: name, configurable: true });
      }
      return task;
    };

    const exported: SpoolerApi = {
      spool: (n, f) => declare('spool', n, f),
      spoolRaw: (n, f) => declare('raw', n, f),
      spoolForever: (n, f) => declare('forever', n, f),
      enqueue,
      dirs,
    };

    // the service: processes × dirs, supervised by the master
    if (dirs.length) {
      api.services.register('spooler', {
        count: dirs.length * processes,
        title: 'spooler',
        run: ({ index, log, signal }) => runSpooler(api, log, signal, index, spools.get(dirFor(index))!, registry, { frequencyMs, retryDelayMs, maxRetries, maxTasks: o['spooler-max-tasks'] as number }),
      });
    }

    if (api.process === 'master' && dirs.length) {
      api.rpc.handle('hello', (p: { index: number; pid: number; names: string[] }) => {
        const prev = procs.get(p.index);
        procs.set(p.index, { dir: dirFor(p.index), index: p.index, pid: p.pid, tasks: prev?.tasks ?? 0, failed: prev?.failed ?? 0, retried: prev?.retried ?? 0, respawns: prev ? prev.respawns + 1 : 0, running: null, names: p.names, seen: Date.now() });
        return true;
      });
      api.rpc.handle('progress', (p: { index: number; pid: number; delta: RunnerReport }) => {
        const s = procs.get(p.index);
        if (!s || s.pid !== p.pid) return false;
        s.tasks += p.delta.done; s.failed += p.delta.failed; s.retried += p.delta.retried; s.running = p.delta.running; s.seen = Date.now();
        return true;
      });
      api.rpc.handle('names', (p: { dir: string }) => {
        let names: Set<string> | null = null;
        for (const s of procs.values()) if (s.dir === p.dir) { names ??= new Set(); for (const n of s.names) names.add(n); }
        return names ? [...names] : null;
      });
      api.hooks.stats.tap('spooler', (doc: StatsDocument) => {
        const counts = new Map<string, { queued: number; failed: number }>();
        for (const d of dirs) { const s = spools.get(d)!; counts.set(d, { queued: s.countQueued(), failed: s.countFailed() }); }
        const list = [];
        for (let i = 1; i <= dirs.length * processes; i++) {
          const s = procs.get(i);
          const d = dirFor(i);
          list.push({ dir: d, pid: s?.pid ?? 0, tasks: s?.tasks ?? 0, queued: counts.get(d)!.queued, failed: counts.get(d)!.failed, failed_tasks: s?.failed ?? 0, retries: s?.retried ?? 0, respawns: s?.respawns ?? 0, running: s?.running ? 1 : 0, task: s?.running ?? null });
        }
        doc.spoolers = list;
        return doc;
      });
      if (harakiri > 0) {
        const killed = new Set<number>();
        // a task run in place has no start time on disk: its run (the task, and when .current last
        // changed) counts from when this check first saw it
        const seen = new Map<number, { id: string; mark: number; since: number }>();
        const timer = setInterval(() => {
          const now = Date.now();
          for (const s of procs.values()) {
            if (killed.has(s.pid)) continue;
            const running = spools.get(s.dir)!.runningIn(s.pid);
            if (!running.some((t) => t.inPlace)) seen.delete(s.pid);
            for (const t of running) {
              let since = t.runAt;
              if (t.inPlace) {
                const prev = seen.get(s.pid);
                if (prev && prev.id === t.id && prev.mark === t.runAt) since = prev.since;
                else seen.set(s.pid, { id: t.id, mark: t.runAt, since: since = now });
              }
              if (now - since > harakiri * 1000) {
                api.log.error({ pid: s.pid, task: t.id }, `*** HARAKIRI ON THE SPOOLER (pid: ${s.pid}) *** task ${t.id} ran for more than ${harakiri} s: killing the process (the task runs again after the respawn)`);
                killed.add(s.pid);
                try { process.kill(s.pid, 'SIGKILL'); } catch { /* already gone */ }
                break;
              }
            }
          }
        }, Math.max(100, Math.min(1000, harakiri * 250)));
        timer.unref();
        api.onClose(() => clearInterval(timer));
      }
    }
    return exported;
  },
});

async function runSpooler(api: PluginApi, log: Logger, signal: AbortSignal, index: number, spool: SpoolDir, registry: Map<string, { fn: TaskFn; kind: TaskKind }>, opts: { frequencyMs: number; retryDelayMs: number; maxRetries: number; maxTasks: number }): Promise<void> {
  let last: RunnerReport = { done: 0, failed: 0, retried: 0, running: null };
  let pending: Promise<unknown> | null = null;
  let timer: NodeJS.Timeout | null = null;
  const flush = () => {
    timer = null;
    if (pending) { schedule(); return; }
    const now = runner.report();
    if (now.done === last.done && now.failed === last.failed && now.retried === last.retried && now.running === last.running) return;
    const delta = { done: now.done - last.done, failed: now.failed - last.failed, retried: now.retried - last.retried, running: now.running };
    last = now;
    pending = api.rpc.call('progress', { index, pid: process.pid, delta }).catch(() => undefined).finally(() => { pending = null; });
  };
  const schedule = () => { if (!timer) { timer = setTimeout(flush, 250); timer.unref(); } };
  const runner = new Runner(spool, (n) => registry.get(n), opts, log, signal, schedule);
  await api.rpc.call('hello', { index, pid: process.pid, names: [...registry.keys()] }).catch(() => undefined);
  log.info({ dir: spool.dir, tasks: [...registry.keys()] }, `spawned the uwcore spooler on dir ${spool.dir} with pid ${process.pid}`);
  const why = await runner.run();
  if (timer) clearTimeout(timer);
  flush();
  if (pending) await pending;
  if (why === 'stopped') log.info({ dir: spool.dir, tasks: runner.done }, `spooler on dir ${spool.dir} (pid ${process.pid}) stopped after ${runner.done} task${runner.done === 1 ? '' : 's'}`);
}
