#!/usr/bin/env node
// Summarise a V8 .cpuprofile (node --cpu-prof): self and total (inclusive) share of samples per function,
// as file:line:function. `node bench/profile-summary.mjs FILE.cpuprofile [--top N] [--match SUBSTR]`
// (--match keeps the rows whose url contains SUBSTR in the "total" table, e.g. --match dist/core).
import fs from 'node:fs';

const args = process.argv.slice(2);
const file = args.find((a) => !a.startsWith('--') && !/^\d+$/.test(a));
const top = Number(args[args.indexOf('--top') + 1]) || 25;
const match = args.includes('--match') ? args[args.indexOf('--match') + 1] : null;
if (!file) { process.stderr.write('usage: profile-summary.mjs FILE.cpuprofile [--top N] [--match SUBSTR]\n'); process.exit(2); }
const prof = JSON.parse(fs.readFileSync(file, 'utf8'));
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const counts = new Map();
for (const s of prof.samples) counts.set(s, (counts.get(s) ?? 0) + 1);
const total = prof.samples.length;
const label = (n) => {
  const cf = n.callFrame;
  const url = cf.url ? cf.url.replace(/^file:\/\//, '').replace(/^.*\/(dist|node_modules|bench)\//, '$1/') : '';
  return `${url || '(native)'}:${cf.lineNumber + 1}:${cf.functionName || '(anonymous)'}`;
};
const self = new Map();
const incl = new Map();
for (const [id, c] of counts) {
  const n = byId.get(id);
  const l = label(n);
  self.set(l, (self.get(l) ?? 0) + c);
  const seen = new Set();
  for (let x = id; x !== undefined; x = parent.get(x)) {
    const lx = label(byId.get(x));
    if (seen.has(lx)) continue;
    seen.add(lx);
    incl.set(lx, (incl.get(lx) ?? 0) + c);
  }
}
const pct = (c) => ((100 * c) / total).toFixed(1).padStart(5) + '%';
console.log(`${total} samples`);
console.log('\nself time:');
for (const [l, c] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(c)}  ${l}`);
console.log(`\ntotal (inclusive) time${match ? ` [${match}]` : ''}:`);
for (const [l, c] of [...incl].filter(([l]) => !match || l.includes(match)).sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(c)}  ${l}`);
