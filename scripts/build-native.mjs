// `npm install` runs this: build native/ (uwcore's optional socket helper) with the node-gyp npm ships.
// It never fails the install: without the helper everything works, slower (sdk/socket says which path runs).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const dir = path.join(root, 'native');
if (process.env.UWCORE_NATIVE === '0') { console.log('uwcore: native helper not built (UWCORE_NATIVE=0)'); process.exit(0); }
if (process.platform !== 'linux') { console.log(`uwcore: native helper not built (only on Linux; this is ${process.platform})`); process.exit(0); }
const candidates = [
  process.env.npm_config_node_gyp,
  path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
].filter((p) => p && fs.existsSync(p));
if (candidates.length === 0) { console.log('uwcore: native helper not built (node-gyp not found); sockets run without it'); process.exit(0); }
const args = [candidates[0], 'rebuild', '--directory', dir];
// headers: npm's configured nodedir, else the ones installed beside node (offline machines)
const nodedir = process.env.npm_config_nodedir || (fs.existsSync(path.join(path.dirname(process.execPath), '..', 'include', 'node', 'node_api.h')) ? path.join(path.dirname(process.execPath), '..') : '');
if (nodedir) args.push(`--nodedir=${nodedir}`);
const r = spawnSync(process.execPath, args, { cwd: dir, encoding: 'utf8', timeout: 180_000 });
const built = path.join(dir, 'build', 'Release', 'uwcore_native.node');
if (r.status === 0 && fs.existsSync(built)) {
  console.log('uwcore: native helper built (native/build/Release/uwcore_native.node)');
} else {
  const why = `${r.error?.message ?? ''}${r.stderr ?? ''}`.split('\n').filter((l) => /error|ERR!/.test(l)).slice(0, 5).join('\n');
  console.log(`uwcore: native helper not built; sockets run without it (slower accept path)\n${why}`);
}
