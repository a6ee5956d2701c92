// The `uwcore` command: --help / --version / --list-plugins, subcommands, then the server in the
// process model the options ask for. Exit status: 0 fine, 1 runtime failure, 2 usage error.
import ini from 'ini';
import type { OptionSpec } from '../sdk/index.js';
import { SDK_VERSION } from '../sdk/index.js';
import { formatFatal, UwError } from './errors.js';
import { loadConfig, type LoadedConfig } from './config/index.js';
import { CORE_OPTIONS } from './config/core-options.js';
import { runMaster, runSingle } from './run.js';
import { VERSION } from './version.js';

type Subcommand = (argv: string[]) => Promise<number>;
const subcommands: Record<string, () => Promise<Subcommand>> = {};

/** Register a subcommand (`uwcore NAME ...`); loaded only when used. */
export function registerSubcommand(name: string, load: () => Promise<Subcommand>): void {
  subcommands[name] = load;
}

registerSubcommand('plugin', () => import('./scaffold.js').then((m) => m.run));
registerSubcommand('build', () => import('./build.js').then((m) => m.run));
// `uwcore spooler ls|retry|rm DIR ...` (implemented next to the spool format it reads)
registerSubcommand('spooler', async () => (await import('../plugins/spooler/cli.js')).default);

function optionLine(o: OptionSpec, shorts = true): string {
  const names = [`--${o.name}`, ...(o.alias ?? []).map((a) => `--${a}`)];
  if (shorts && o.short) names.unshift(`-${o.short}`);
  const arg = o.type === 'bool' ? '' : ` ${o.arg ?? o.type.toUpperCase()}`;
  const left = `  ${names.join(', ')}${arg}`;
  const def = o.default !== undefined && o.default !== false && !(Array.isArray(o.default) && o.default.length === 0) ? ` (default: ${o.default})` : '';
  const multi = o.multiple ? ' [repeatable]' : '';
  return left.length > 34 ? `${left}\n${' '.repeat(36)}${o.help}${def}${multi}` : `${left.padEnd(36)}${o.help}${def}${multi}`;
}

function printHelp(cfg: LoadedConfig, only: string | null): void {
  const out: string[] = [];
  if (only === null) {
    out.push(`uwcore ${VERSION} — an application server for Node.js on uWSGI's plugin model`, '',
      'Usage: uwcore [CONFIG.ini[:section]] [--option value ...]',
      '       uwcore --http :8000 --app app.js --master --processes 2',
      '       uwcore --help PLUGIN | --version | --list-plugins | --show-config',
      '       uwcore build --plugins LIST --out FILE    (one self-contained file with only those plugins)',
      '       uwcore plugin new NAME                    (a new plugin package in ./uwcore-plugin-NAME)',
      '', 'Every option also works as an ini key (section [uwcore] or [uwsgi]) and as UWCORE_<OPTION> in the environment.',
      'Precedence: defaults < ini < environment < command line; repeatable options accumulate.', '');
  }
  const groups = [...cfg.table.groups.entries()];
  let shown = 0;
  for (const [plugin, specs] of groups) {
    if (only !== null && plugin !== only) continue;
    const lp = cfg.plugins.find((p) => p.plugin.name === plugin);
    out.push(plugin === 'core' ? 'core options:' : `plugin ${plugin} ${lp?.plugin.version ?? ''} (${lp?.origin ?? ''})${lp?.plugin.description ? ` — ${lp.plugin.description}` : ''}:`);
    if (specs.length === 0) out.push('  (no options)');
    for (const s of specs) out.push(optionLine(s));
    out.push('');
    shown++;
  }
  if (only !== null && shown === 0) throw new UwError('UW_ERR_PLUGIN_NOT_FOUND', `no plugin named ${only}; uwcore --list-plugins shows them`, { exitCode: 2 });
  process.stdout.write(out.join('\n') + '\n');
}

function printPlugins(cfg: LoadedConfig): void {
  const rows = cfg.plugins.map((p) => [p.plugin.name, p.plugin.version, p.origin, p.origin === 'builtin' ? '' : p.file, (p.plugin.options ?? []).map((o) => `--${o.name}`).join(' ')]);
  const built = (globalThis as { __UWCORE_EMBEDDED__?: { built?: { plugins: string[]; at: string } } }).__UWCORE_EMBEDDED__?.built;
  process.stdout.write(`uwcore ${VERSION}, SDK ${SDK_VERSION}${built ? `, a build carrying ${built.plugins.join(', ')} (uwcore build, ${built.at})` : ''}\n`);
  process.stdout.write(['NAME', 'VERSION', 'ORIGIN', 'OPTIONS'].join('\t') + '\n');
  for (const r of rows) process.stdout.write(`${r[0]}\t${r[1]}\t${r[2]}${r[3] ? ` (${r[3]})` : ''}\t${r[4] || '-'}\n`);
}

/**
 * uWSGI's --show-config: the effective configuration (every option that differs from its default, after ini,
 * environment and command line are merged) as an ini file that uwcore reads back as it is.
 */
function showConfig(cfg: LoadedConfig): string {
  const section: Record<string, unknown> = {};
  for (const [name, { spec }] of cfg.table.byName) {
    const v = cfg.options[name];
    if (v === undefined || v === spec.default || (Array.isArray(v) && v.length === 0)) continue;
    const text = (x: unknown): string => (x !== null && typeof x === 'object' && 'raw' in (x as object) ? String((x as { raw: string }).raw) : String(x));
    section[name] = Array.isArray(v) ? v.map(text) : text(v);
  }
  return ini.encode({ uwcore: section }, { bracketedArray: false, whitespace: true });
}

/** Only the arguments that choose plugins (for --help, which must not fail on other options). */
function pluginArgs(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (/^--(plugins?|plugins-dir|plugin-dir)=/.test(a)) out.push(a);
    else if (/^--(plugins?|plugins-dir|plugin-dir)$/.test(a) && argv[i + 1] !== undefined) out.push(a, argv[++i]!);
  }
  return out;
}

export async function main(argv: string[]): Promise<void> {
  // `uwcore --help | head`: a reader that goes away is not an error
  process.stdout.on('error', (e: NodeJS.ErrnoException) => { if (e.code === 'EPIPE') process.exit(0); else throw e; });
  try {
    const first = argv[0];
    if (first !== undefined && !first.startsWith('-') && subcommands[first]) {
      const run = await subcommands[first]!();
      process.exitCode = await run(argv.slice(1));
      return;
    }
    if (argv.includes('--version') || argv.includes('-V')) {
      process.stdout.write(`uwcore ${VERSION} (SDK ${SDK_VERSION}, node ${process.version})\n`);
      return;
    }
    const helpIdx = argv.findIndex((a) => a === '--help' || a === '-h' || a.startsWith('--help='));
    if (helpIdx >= 0) {
      const a = argv[helpIdx]!;
      const next = a.startsWith('--help=') ? a.slice(7) : argv[helpIdx + 1];
      const only = next !== undefined && !next.startsWith('-') ? next : null;
      const rest = argv.filter((_, i) => i !== helpIdx && !(only !== null && !a.startsWith('--help=') && i === helpIdx + 1));
      const cfg = await loadConfig(pluginArgs(rest), { allPlugins: only === null, onlyPlugin: only ?? undefined });
      printHelp(cfg, only);
      return;
    }
    if (argv.includes('--list-plugins') || argv.includes('--plugins-list')) {
      const rest = argv.filter((a) => a !== '--list-plugins' && a !== '--plugins-list');
      const cfg = await loadConfig(rest, { allPlugins: true });
      printPlugins(cfg);
      return;
    }
    if (argv.includes('--show-config') || argv.includes('--print-config')) {
      const cfg = await loadConfig(argv.filter((a) => a !== '--show-config' && a !== '--print-config'));
      process.stdout.write(showConfig(cfg));
      return;
    }
    const cfg = await loadConfig(argv);
    const o = cfg.options;
    const chmod = o['chmod-socket'] as string | undefined;
    if (chmod !== undefined && !/^[0-7]{3,4}$/.test(chmod)) throw new UwError('UW_ERR_CONFIG_BAD_VALUE', `invalid value ${JSON.stringify(chmod)} for option --chmod-socket: expected an octal mode such as 660`, { exitCode: 2 });
    const impliesMaster = [...cfg.table.byName.values()].some(({ spec }) => spec.impliesMaster && o[spec.name] !== undefined && o[spec.name] !== spec.default && !(Array.isArray(o[spec.name]) && (o[spec.name] as unknown[]).length === 0));
    if (o.master || (o.processes as number) > 1 || impliesMaster) await runMaster(cfg, argv);
    else await runSingle(cfg);
  } catch (e) {
    process.stderr.write(formatFatal(e) + '\n');
    process.exitCode = (e as UwError)?.exitCode ?? 1;
  }
}

export { CORE_OPTIONS };
