// Run every compiled test file (node --test has no globs on Node 20).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const only = process.argv.slice(2);
const files = [];
const walk = (d) => {
  for (const e of fs.readdirSync(d, { withFileTypes: true })) {
    const p = path.join(d, e.name);
    if (e.isDirectory()) walk(p);
    else if (e.name.endsWith('.test.js')) files.push(p);
  }
};
walk(path.join(root, 'dist/test'));
const selected = only.length ? files.filter((f) => only.some((o) => f.includes(o))) : files;
selected.sort();
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=2', '--test-timeout=180000', ...selected], { stdio: 'inherit', cwd: root });
process.exit(r.status ?? 1);
