// `uwcore build --plugins a,b --out FILE`: one self-contained ESM file (esbuild, tree-shaken) holding the core
// and exactly the named plugins plus their requires. It needs no node_modules: the generated entry sets
// globalThis.__UWCORE_EMBEDDED__ (core/embedded.ts) before it imports the CLI, and forks itself for workers.
import { performance } from 'node:perf_hooks';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { Codes, UwError, formatFatal } from './errors.js';
import { builtinManifest, loadPlugins, type LoadedPlugin, type ManifestEntry } from './plugins.js';
import { VERSION } from './version.js';

const USAGE = `Usage: uwcore build --plugins LIST --out FILE [options]

Writes FILE: one JavaScript file with the uwcore core and exactly the plugins in LIST (plus the plugins
they require). It runs with \`node FILE --http :8000 --app app.js\` from any directory, without node_modules.

  --plugins LIST       comma-separated plugin names: built-ins, npm packages (uwcore-plugin-NAME) or paths [repeatable]
  --all                every built-in plugin (a full build)
  --plugins-dir DIR    look for plugins in DIR first [repeatable]
  --out FILE           the file to write (.mjs; it is an ES module)
  --no-minify          keep the code readable (bigger)
  --sourcemap          append an inline source map (bigger; readable stack traces)
`;

const here = path.dirname(fileURLToPath(import.meta.url));
const DIST = path.resolve(here, '..');

function usage(msg: string): UwError {
  return new UwError(Codes.CONFIG_BAD_VALUE, `${msg}; see uwcore build --help`, { exitCode: 2 });
}

export interface BuildResult { file: string; bytes: number; plugins: string[] }

/** Build a bundle. `names` are resolved like --plugins (built-in → plugins dirs → npm → path). */
export async function build(opts: { names: string[]; out: string; pluginsDirs?: string[]; cwd?: string; minify?: boolean; sourcemap?: boolean }): Promise<BuildResult> {
  const cwd = opts.cwd ?? process.cwd();
  let esbuild: typeof import('esbuild');
  try {
    esbuild = await import('esbuild');
  } catch {
    throw new UwError(Codes.PLUGIN_LOAD, 'uwcore build needs the esbuild package, which is missing; reinstall uwcore (npm install uwcore) or npm install esbuild');
  }
  const plugins: LoadedPlugin[] = await loadPlugins(opts.names, (opts.pluginsDirs ?? []).map((d) => path.resolve(cwd, d)), cwd);
  const full = builtinManifest();
  const allOptions: Record<string, string> = {};
  for (const m of full) for (const o of m.options) for (const n of [o.name, ...(o.alias ?? [])]) allOptions[n] = m.name;
  const manifest: ManifestEntry[] = plugins.map((lp) => ({
    name: lp.plugin.name,
    version: lp.plugin.version,
    description: lp.plugin.description ?? '',
    entry: '',
    options: (lp.plugin.options ?? []).map((o) => ({ name: o.name, type: o.type, alias: o.alias, short: o.short, multiple: o.multiple })),
  }));
  const imp = (f: string) => JSON.stringify(f.split(path.sep).join('/'));
  const lines = [
    `import cluster from 'node:cluster';`,
    `import { fileURLToPath } from 'node:url';`,
    `import { embed, pickPlugin } from ${imp(path.join(DIST, 'core/embedded.js'))};`,
    `import * as runtime from ${imp(path.join(DIST, 'core/runtime.js'))};`,
    `import * as sdk from ${imp(path.join(DIST, 'sdk/index.js'))};`,
    ...plugins.map((lp, i) => `import * as p${i} from ${imp(lp.file)};`),
    `embed({`,
    `  manifest: ${JSON.stringify(manifest)},`,
    `  modules: { ${plugins.map((lp, i) => `${JSON.stringify(lp.plugin.name)}: pickPlugin(p${i})`).join(', ')} },`,
    `  all: ${JSON.stringify(full.map((m) => m.name))},`,
    `  allOptions: ${JSON.stringify(allOptions)},`,
    `  version: ${JSON.stringify(VERSION)},`,
    `  workerExec: fileURLToPath(import.meta.url),`,
    `  runtime, sdk,`,
    `  built: ${JSON.stringify({ plugins: plugins.map((p) => p.plugin.name), at: new Date().toISOString() })},`,
    `});`,
    // a cluster worker forked by this file's master runs the worker loop; anything else is the CLI
    `if (cluster.isWorker && process.env.UWCORE__WORKER_ID) {`,
    `  const { runWorker } = await import(${imp(path.join(DIST, 'core/run.js'))});`,
    `  await runWorker();`,
    `} else {`,
    `  const { main } = await import(${imp(path.join(DIST, 'core/cli.js'))});`,
    `  await main(process.argv.slice(2));`,
    `}`,
  ];
  const out = path.resolve(cwd, opts.out);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const stubSubcommands = {
    name: 'uwcore-no-subcommands',
    setup(b: import('esbuild').PluginBuild) {
      // `uwcore build` and `uwcore plugin new` are development tools: not part of a deployed server
      b.onResolve({ filter: /^\.\/(build|scaffold)\.js$/ }, (a) => (a.importer.startsWith(path.join(DIST, 'core')) ? { path: a.path, namespace: 'uwcore-stub' } : undefined));
      b.onLoad({ filter: /.*/, namespace: 'uwcore-stub' }, () => ({
        contents: `export async function run() { process.stderr.write('uwcore: ${Codes.NOT_ENABLED}: this command is not part of a bundled build; run it with the uwcore package (npx uwcore ...)\\n'); return 2; }`,
        loader: 'js',
      }));
    },
  };
  const minify = opts.minify ?? true;
  try {
    await esbuild.build({
      stdin: { contents: lines.join('\n'), resolveDir: DIST, sourcefile: 'uwcore-build-entry.mjs', loader: 'js' },
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      outfile: out,
      minify,
      treeShaking: true,
      legalComments: 'none',
      sourcemap: opts.sourcemap ? 'inline' : false,
      external: ['esbuild'],
      alias: { 'uwcore/sdk': path.join(DIST, 'sdk/index.js'), 'uwcore/sdk/socket': path.join(DIST, 'sdk/socket.js'), uwcore: path.join(DIST, 'core/runtime.js') },
      // CommonJS dependencies (pino, semver, tapable, ini) call require(): give the ES module one
      banner: { js: `#!/usr/bin/env node\n// uwcore ${VERSION} bundle: ${plugins.map((p) => `${p.plugin.name}@${p.plugin.version}`).join(', ')}\nimport { createRequire as __uwcoreCreateRequire } from 'node:module';\nconst require = __uwcoreCreateRequire(import.meta.url);` },
      plugins: [stubSubcommands],
      logLevel: 'silent',
    });
  } catch (e) {
    const errs = (e as { errors?: Array<{ text: string; location?: { file: string; line: number } | null }> }).errors ?? [];
    const first = errs[0];
    throw new UwError(Codes.INTERNAL, `bundling failed: ${first ? `${first.text}${first.location ? ` (${first.location.file}:${first.location.line})` : ''}` : (e as Error).message}`);
  }
  fs.chmodSync(out, 0o755);
  return { file: out, bytes: fs.statSync(out).size, plugins: plugins.map((p) => p.plugin.name) };
}

export function formatSize(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(2)} MiB`;
}

function nice(file: string): string {
  const rel = path.relative(process.cwd(), file);
  return rel && !rel.startsWith('..') ? rel : file;
}

export async function run(argv: string[]): Promise<number> {
  try {
    let parsed;
    try {
      parsed = parseArgs({
        args: argv,
        allowPositionals: false,
        options: {
          plugins: { type: 'string', multiple: true },
          plugin: { type: 'string', multiple: true },
          all: { type: 'boolean', default: false },
          'plugins-dir': { type: 'string', multiple: true },
          out: { type: 'string', short: 'o' },
          'no-minify': { type: 'boolean', default: false },
          sourcemap: { type: 'boolean', default: false },
          help: { type: 'boolean', short: 'h', default: false },
        },
      });
    } catch (e) {
      throw usage((e as Error).message.split('\n')[0]!.replace(/\.$/, ''));
    }
    const v = parsed.values;
    if (v.help) { process.stdout.write(USAGE); return 0; }
    const names: string[] = [];
    for (const list of [...(v.plugins ?? []), ...(v.plugin ?? [])]) for (const n of list.split(',').map((s) => s.trim()).filter(Boolean)) if (!names.includes(n)) names.push(n);
    if (v.all) for (const m of builtinManifest()) if (!names.includes(m.name)) names.push(m.name);
    if (names.length === 0) throw usage('uwcore build needs --plugins LIST (e.g. --plugins http,static) or --all');
    if (!v.out) throw usage('uwcore build needs --out FILE (e.g. --out dist/server.mjs)');
    if (/\.(cjs|cts|ts)$/i.test(v.out)) throw usage(`--out ${v.out}: the bundle is an ES module; name it .mjs`);
    const t0 = performance.now();
    const r = await build({ names, out: v.out, pluginsDirs: v['plugins-dir'], minify: !v['no-minify'], sourcemap: v.sourcemap });
    const ms = Math.round(performance.now() - t0);
    const shown = nice(r.file);
    process.stdout.write(`wrote ${shown}: ${formatSize(r.bytes)} (${r.bytes} bytes), uwcore ${VERSION} with plugins ${r.plugins.join(', ')} in ${ms} ms\n`);
    if (!/\.mjs$/i.test(r.file)) process.stdout.write(`note: ${path.basename(r.file)} is an ES module; without "type": "module" in a package.json next to it, name it .mjs\n`);
    process.stdout.write(`run: node ${shown} --http :8000 --app app.js\n`);
    return 0;
  } catch (e) {
    process.stderr.write(formatFatal(e) + '\n');
    return (e as UwError).exitCode ?? 1;
  }
}
