// Build step: write dist/plugins/manifest.json — each built-in plugin's name, version, entry and option
// names, and the router actions/conditions it provides — so the core can autoload a plugin by its options
// (or by an action a route rule names) without importing the ones not used.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dir = path.join(root, 'dist/plugins');
const out = [];
for (const name of fs.readdirSync(dir).sort()) {
  const entry = path.join(dir, name, 'index.js');
  if (!fs.existsSync(entry)) continue;
  const mod = await import(pathToFileURL(entry).href);
  const p = mod.default;
  if (!p || p.name !== name) throw new Error(`plugins/${name}: default export must be a plugin named "${name}"`);
  out.push({
    name: p.name, version: p.version, description: p.description ?? '', entry: `${name}/index.js`,
    options: (p.options ?? []).map((o) => ({ name: o.name, type: o.type, alias: o.alias, short: o.short, multiple: o.multiple })),
    ...(p.provides ? { provides: { routerActions: p.provides.routerActions ?? [], routeConditions: p.provides.routeConditions ?? [] } } : {}),
  });
}
fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(out, null, 1) + '\n');
console.log(`manifest: ${out.map((p) => p.name).join(', ')}`);
