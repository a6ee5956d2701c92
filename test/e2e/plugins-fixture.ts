// Shared by the plugin and build e2e tests: a private, freshly built copy of examples/plugins/uwcore-plugin-hello
// (each test file builds its own in a temp dir, so files running in parallel never share a dist/), installed
// the way npm installs a package, and a spawner for `node FILE ...` (the bundle) that waits until it serves.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, tmpDir } from '../helpers/server.js';

export const EXAMPLE = path.join(ROOT, 'examples/plugins/uwcore-plugin-hello');
export const TSC = path.join(ROOT, 'node_modules/typescript/bin/tsc');

/** Link the development dependencies a plugin package needs (uwcore, typescript, @types) from this repo. */
export function linkDevDeps(pkgDir: string): void {
  const nm = path.join(pkgDir, 'node_modules');
  fs.mkdirSync(path.join(nm, '.bin'), { recursive: true });
  const link = (target: string, at: string) => { if (!fs.existsSync(at)) fs.symlinkSync(target, at); };
  link(ROOT, path.join(nm, 'uwcore'));
  link(path.join(ROOT, 'node_modules/typescript'), path.join(nm, 'typescript'));
  link(path.join(ROOT, 'node_modules/@types'), path.join(nm, '@types'));
  link(path.join(ROOT, 'node_modules/typescript/bin/tsc'), path.join(nm, '.bin/tsc'));
}

/** Copy the example's sources to a temp dir and build them there; returns the package directory. */
export function buildExample(): string {
  const dir = path.join(tmpDir('uwcore-hello-src-'), 'uwcore-plugin-hello');
  fs.mkdirSync(dir, { recursive: true });
  for (const f of ['package.json', 'tsconfig.json', 'README.md']) fs.copyFileSync(path.join(EXAMPLE, f), path.join(dir, f));
  fs.cpSync(path.join(EXAMPLE, 'src'), path.join(dir, 'src'), { recursive: true });
  linkDevDeps(dir);
  const r = spawnSync(process.execPath, [TSC, '-p', 'tsconfig.json'], { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`building the example plugin failed:\n${r.stdout}${r.stderr}`);
  return dir;
}

/** What `npm install` puts in node_modules: the package's "files" (dist without tests, package.json, README). */
export function installInto(pkgDir: string, nodeModules: string): string {
  const to = path.join(nodeModules, path.basename(pkgDir));
  fs.mkdirSync(to, { recursive: true });
  fs.copyFileSync(path.join(pkgDir, 'package.json'), path.join(to, 'package.json'));
  fs.copyFileSync(path.join(pkgDir, 'README.md'), path.join(to, 'README.md'));
  fs.cpSync(path.join(pkgDir, 'dist'), path.join(to, 'dist'), { recursive: true, filter: (src) => !src.includes(`${path.sep}dist${path.sep}test`) });
  return to;
}

export interface NodeProc {
  proc: ChildProcess;
  output(): string;
  waitFor(re: RegExp, ms?: number): Promise<string>;
  stop(): Promise<number | null>;
}

/** Spawn `node ...args` in cwd; resolves once the output matches `ready` (default: "uwcore is ready"). */
export async function startNode(args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv; ready?: RegExp }): Promise<NodeProc> {
  const proc = spawn(process.execPath, args, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d));
  proc.stderr!.on('data', (d: Buffer) => (out += d));
  const exited = new Promise<number | null>((r) => proc.once('exit', (c) => r(c)));
  const waitFor = (re: RegExp, ms = 15_000) => new Promise<string>((resolve, reject) => {
    const t0 = Date.now();
    const tick = () => {
      const m = out.split('\n').find((l) => re.test(l));
      if (m !== undefined) return resolve(m);
      if (proc.exitCode !== null || Date.now() - t0 > ms) return reject(new Error(`waiting for ${re}: ${proc.exitCode !== null ? `exited ${proc.exitCode}` : 'timed out'}; output:\n${out}`));
      setTimeout(tick, 25);
    };
    tick();
  });
  const p: NodeProc = {
    proc,
    output: () => out,
    waitFor,
    stop: async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      const c = await exited;
      clearTimeout(t);
      return c;
    },
  };
  try { await waitFor(opts.ready ?? /uwcore is ready/); } catch (e) { proc.kill('SIGKILL'); throw e; }
  return p;
}
