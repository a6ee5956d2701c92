// `uwcore plugin new NAME`: write a third-party plugin package skeleton in ./uwcore-plugin-NAME that builds
// (tsc) and passes its own test (node:test + uwcore/sdk/testing) as soon as its devDependencies are installed.
import { Buffer } from 'node:buffer';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { SDK_VERSION } from '../sdk/index.js';
import { Codes, UwError, formatFatal } from './errors.js';
import { VERSION } from './version.js';

const NAME_RE = /^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$/;

const USAGE = `Usage: uwcore plugin new NAME [--dir DIR] [--force]

Creates DIR (default ./uwcore-plugin-NAME): a TypeScript npm package with a plugin named NAME,
its test (node:test with uwcore/sdk/testing) and a README. Then:
  cd uwcore-plugin-NAME && npm install && npm test
  uwcore --plugins NAME --plugins-dir .. --http :8000 --app app.js
NAME: lower-case kebab-case letters and digits (e.g. "rate-limit").
`;

export async function run(argv: string[]): Promise<number> {
  try {
    if (argv[0] === undefined || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
      process.stdout.write(USAGE);
      return argv[0] === undefined ? 2 : 0;
    }
    if (argv[0] !== 'new') throw new UwError(Codes.CONFIG_BAD_VALUE, `unknown command "uwcore plugin ${argv[0]}": the plugin command has one subcommand, new (uwcore plugin new NAME)`, { exitCode: 2 });
    let parsed;
    try {
      parsed = parseArgs({ args: argv.slice(1), allowPositionals: true, options: { dir: { type: 'string' }, force: { type: 'boolean', default: false } } });
    } catch (e) {
      throw new UwError(Codes.CONFIG_UNKNOWN_OPTION, `${(e as Error).message}; usage: uwcore plugin new NAME [--dir DIR] [--force]`, { exitCode: 2 });
    }
    const [name, ...extra] = parsed.positionals;
    if (!name || extra.length) throw new UwError(Codes.CONFIG_BAD_VALUE, 'uwcore plugin new needs exactly one NAME: uwcore plugin new NAME [--dir DIR]', { exitCode: 2 });
    if (!NAME_RE.test(name)) throw new UwError(Codes.CONFIG_BAD_VALUE, `plugin name "${name}" is malformed: use lower-case kebab-case letters and digits, e.g. "my-plugin"`, { exitCode: 2 });
    const dir = path.resolve(parsed.values.dir ?? `uwcore-plugin-${name}`);
    if (fs.existsSync(dir) && fs.readdirSync(dir).length > 0 && !parsed.values.force) {
      throw new UwError(Codes.CONFIG_BAD_VALUE, `${dir} already exists and is not empty; choose another --dir or pass --force to overwrite its files`, { exitCode: 2 });
    }
    const files = skeleton(name);
    for (const [rel, text] of Object.entries(files)) {
      const f = path.join(dir, rel);
      fs.mkdirSync(path.dirname(f), { recursive: true });
      fs.writeFileSync(f, text);
    }
    const shown = path.relative(process.cwd(), dir) || '.';
    process.stdout.write(`created ${shown}/ (plugin \`${name}\`, SDK ^${SDK_VERSION}): ${Object.keys(files).join(', ')}\n\nnext:\n  cd ${shown}\n  npm install\n  npm test\n  uwcore --plugins ${name} --plugins-dir ${path.dirname(shown) || '.'} --http :8000 --app app.js\n`);
    return 0;
  } catch (e) {
    process.stderr.write(formatFatal(e) + '\n');
    return (e as UwError).exitCode ?? 1;
  }
}

/** The files of a new plugin package, by path. */
export function skeleton(name: string): Record<string, string> {
  const pkg = `uwcore-plugin-${name}`;
  const camel = name.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
  const Api = camel[0]!.toUpperCase() + camel.slice(1) + 'Api';
  const sdkMajor = SDK_VERSION.split('.')[0];
  return {
    'package.json': JSON.stringify({
      name: pkg,
      version: '0.1.0',
      description: `uwcore plugin ${name}`,
      keywords: ['uwcore', 'uwcore-plugin'],
      license: 'MIT',
      type: 'module',
      main: './dist/index.js',
      types: './dist/index.d.ts',
      exports: {
        '.': { types: './dist/index.d.ts', import: './dist/index.js', default: './dist/index.js' },
        './package.json': './package.json',
      },
      files: ['dist', '!dist/test', 'README.md'],
      scripts: {
        build: 'tsc -p tsconfig.json',
        test: `tsc -p tsconfig.json && node --test dist/test/${name}.test.js`,
        prepare: 'tsc -p tsconfig.json',
      },
      engines: { node: '>=20.17' },
      peerDependencies: { uwcore: `>=${VERSION}` },
      devDependencies: { '@types/node': '^20.19.0', typescript: '^5.9.0', uwcore: `^${VERSION}` },
    }, null, 2) + '\n',
    'tsconfig.json': JSON.stringify({
      compilerOptions: {
        target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', lib: ['ES2023'], types: ['node'],
        strict: true, declaration: true, sourceMap: true, rootDir: 'src', outDir: 'dist', skipLibCheck: true, isolatedModules: true,
      },
      include: ['src/**/*.ts'],
    }, null, 2) + '\n',
    '.gitignore': 'node_modules/\ndist/\n',
    'src/index.ts': `// uwcore plugin \`${name}\`. Guide: https://github.com/uwcore/uwcore/blob/main/sdk/README.md
import { definePlugin } from 'uwcore/sdk';

/** What setup returns: other plugins get it with requires: ['${name}'] and api.use('${name}'). */
export interface ${Api} {
  /** how many requests this plugin answered in this process. */
  answered(): number;
}

export default definePlugin<${Api}>({
  name: '${name}',
  version: '0.1.0',
  sdk: '^${sdkMajor}.0.0',
  description: 'what ${name} does, in one line',
  options: [
    { name: '${name}-path', type: 'string', default: '/${name}', arg: 'PATH', help: 'answer GET PATH with --${name}-message (empty: off)' },
    { name: '${name}-message', type: 'string', default: 'hello from ${name}', arg: 'TEXT', help: 'the text answered on --${name}-path' },
  ],
  setup(api) {
    const where = api.options['${name}-path'] as string;
    const message = (api.options['${name}-message'] as string) + '\\n';
    let count = 0;
    if (where) {
      // request: async series bail; return true when this plugin answered (the app does not run)
      api.hooks.request.tap('${name}', (ctx) => {
        if (ctx.env.PATH_INFO !== where) return false;
        count++;
        ctx.respond(200, [['Content-Type', 'text/plain; charset=utf-8'], ['Content-Length', String(Buffer.byteLength(message))]], message);
        return true;
      });
    }
    api.log.debug({ path: where }, '${name} ready');
    return { answered: () => count };
  },
});
`,
    [`src/test/${name}.test.ts`]: `import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createTestServer } from 'uwcore/sdk/testing';
import plugin, { type ${Api} } from '../index.js';

const app = (_env: unknown, startResponse: (status: string, headers: Array<[string, string]>) => void) => {
  startResponse('200 OK', [['Content-Type', 'text/plain']]);
  return ['from the app'];
};

test('answers its path and lets every other request through to the app', async () => {
  const server = await createTestServer({ plugins: [plugin], options: { '${name}-message': 'hi' }, app });
  try {
    const mine = await server.request('GET', '/${name}');
    assert.equal(mine.status, 200);
    assert.equal(mine.text, 'hi\\n');
    const other = await server.request('GET', '/else');
    assert.equal(other.text, 'from the app');
    assert.equal(server.api<${Api}>('${name}').answered(), 1);
  } finally {
    await server.close();
  }
});
`,
    'README.md': `# ${pkg}

A [uwcore](https://www.npmjs.com/package/uwcore) plugin.

\`\`\`sh
npm install ${pkg}
uwcore --plugins ${name} --http :8000 --app app.js
\`\`\`

## Options

| option | type | default | meaning |
|---|---|---|---|
| \`--${name}-path PATH\` | string | \`/${name}\` | answer \`GET PATH\` with the message (empty: off) |
| \`--${name}-message TEXT\` | string | \`hello from ${name}\` | the text answered |

Every option also works as an ini key (\`${name}-path = /x\`) and as \`UWCORE_${name.toUpperCase().replace(/-/g, '_')}_PATH\`.

## Develop

\`\`\`sh
npm install
npm test        # builds with tsc, runs node --test against the real uwcore core (uwcore/sdk/testing)
\`\`\`
`,
  };
}
