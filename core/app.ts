// The app host: loads the application module (--app FILE / --module SPEC, --callable NAME) and turns its
// export into a request handler through the registry of app kinds (the WSGI-style callable is the default kind).
import fs from 'node:fs';
import path from 'node:path';
import { createRequire, register } from 'node:module';
import { pathToFileURL, fileURLToPath } from 'node:url';
import type { AppKind } from '../sdk/index.js';
import { Codes, UwError } from './errors.js';
import { wsgiHandler } from './wsgi.js';
import type { Ctx } from './context.js';
import type { NamedRegistry } from './hooks.js';

export type Handler = (ctx: Ctx) => unknown;

let hooked = false;
/** Make `uwcore` and `uwcore/sdk` resolve to this server for ESM (resolve hook) and CommonJS (require). */
export function installRuntimeResolution(): void {
  if (hooked) return;
  hooked = true;
  // a bundled build (uwcore build) has no files to point at: its entry installs in-memory resolution
  const emb = (globalThis as { __UWCORE_EMBEDDED__?: { installResolution?: () => void } }).__UWCORE_EMBEDDED__;
  if (emb?.installResolution) { emb.installResolution(); return; }
  const runtime = new URL('./runtime.js', import.meta.url).href;
  const sdk = new URL('../sdk/index.js', import.meta.url).href;
  const testing = new URL('../sdk/testing.js', import.meta.url).href;
  const socket = new URL('../sdk/socket.js', import.meta.url).href;
  const map = { uwcore: runtime, 'uwcore/sdk': sdk, 'uwcore/sdk/testing': testing, 'uwcore/sdk/socket': socket };
  if (!import.meta.url.startsWith('file:')) return;
  try {
    register(new URL('./loader-hooks.js', import.meta.url).href, { data: { map } });
  } catch { /* bundled build: loader hooks unavailable; apps import through node_modules */ }
  const req = createRequire(import.meta.url);
  const Module = req('node:module') as { _resolveFilename: (r: string, ...a: unknown[]) => string };
  const orig = Module._resolveFilename;
  const files: Record<string, string> = { uwcore: fileURLToPath(runtime), 'uwcore/sdk': fileURLToPath(sdk), 'uwcore/sdk/testing': fileURLToPath(testing), 'uwcore/sdk/socket': fileURLToPath(socket) };
  Module._resolveFilename = function (request: string, ...rest: unknown[]) {
    const f = files[request];
    if (f !== undefined) return f;
    return orig.call(this, request, ...rest);
  };
}

function firstLine(e: unknown): string {
  const err = e as Error;
  const msg = String(err?.message ?? e).split('\n')[0];
  // point at the file:line of a syntax error when node gives it
  const m = /^(\/[^\n]+:\d+)$/m.exec(String(err?.stack ?? ''));
  return `${err?.name && err.name !== 'Error' ? err.name + ': ' : ''}${msg}${m ? ` (${m[1]})` : ''}`;
}

export interface AppInfo { handler: Handler; description: string }

/** Load the configured application, or return null when none is configured. */
export async function loadApp(opts: { app?: string | undefined; module?: string | undefined; callable: string; cwd: string }, kinds: NamedRegistry<AppKind>): Promise<AppInfo | null> {
  let url: string;
  let label: string;
  if (opts.app) {
    const file = opts.app;
    let st: fs.Stats;
    try { st = fs.statSync(file); } catch {
      throw new UwError(Codes.APP_NOT_FOUND, `application file ${file} not found (--app/--wsgi-file); check the path (relative paths resolve against --chdir, the ini file's directory or the working directory)`);
    }
    if (!st.isFile()) throw new UwError(Codes.APP_NOT_FOUND, `application path ${file} is not a file (--app/--wsgi-file)`);
    url = pathToFileURL(file).href;
    label = file;
  } else if (opts.module) {
    const spec = opts.module;
    label = spec;
    try {
      url = pathToFileURL(createRequire(path.join(opts.cwd, 'noop.js')).resolve(spec)).href;
    } catch {
      if (spec.startsWith('.') || spec.startsWith('/')) {
        const abs = path.resolve(opts.cwd, spec);
        if (!fs.existsSync(abs)) throw new UwError(Codes.APP_NOT_FOUND, `application module ${spec} not found (--module)`);
        url = pathToFileURL(abs).href;
      } else {
        throw new UwError(Codes.APP_NOT_FOUND, `application module ${spec} cannot be resolved from ${opts.cwd} (--module); install it or give a path`);
      }
    }
  } else {
    return null;
  }
  installRuntimeResolution();
  let mod: Record<string, unknown>;
  try {
    mod = (await import(url)) as Record<string, unknown>;
  } catch (e) {
    throw new UwError(Codes.APP_LOAD, `cannot load application ${label}: ${firstLine(e)}; fix the error and start again`, { cause: e });
  }
  const callable = opts.callable;
  let exported: unknown = mod[callable];
  let picked = callable;
  if (exported === undefined && callable === 'application') {
    const d = mod.default as Record<string, unknown> | undefined;
    if (d !== undefined && d !== null && typeof d === 'object' && d.application !== undefined) { exported = d.application; picked = 'default.application'; }
    else { exported = d; picked = 'default'; }
  } else if (exported === undefined) {
    const d = mod.default as Record<string, unknown> | undefined;
    if (d !== undefined && d !== null && (typeof d === 'object' || typeof d === 'function') && d[callable] !== undefined) { exported = d[callable]; picked = `default.${callable}`; }
  }
  if (exported === undefined) {
    const names = Object.keys(mod).filter((k) => k !== 'default' && k !== '__esModule');
    throw new UwError(Codes.APP_NOT_CALLABLE, `application ${label} exports no \`${callable}\`${callable === 'application' ? ' and no default export' : ''} (it exports: ${names.length ? names.join(', ') : 'nothing'}); name the export with --callable NAME`);
  }
  for (const [kindName, kind] of kinds.entries()) {
    const h = kind.detect(exported, { callable: picked, file: label });
    if (h) return { handler: h as Handler, description: `${label}:${picked} (${kindName})` };
  }
  if (typeof exported !== 'function') {
    throw new UwError(Codes.APP_NOT_CALLABLE, `application ${label}: export \`${picked}\` is ${exported === null ? 'null' : typeof exported}, not a function; export function ${callable}(env, start_response)`);
  }
  return { handler: wsgiHandler(exported as Parameters<typeof wsgiHandler>[0]) as Handler, description: `${label}:${picked}` };
}
