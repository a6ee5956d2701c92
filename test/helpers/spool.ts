// Helpers of the spooler's end-to-end tests: the runs the fixture tasks logged, and polling for a state.
import fs from 'node:fs';

/** One run of a fixture task (test/plugins/fixtures/spooler/tasks.js appends one JSON line per run). */
export interface Run { fn: string; id: string; pid: number; t: number; attempt?: number; n?: string; phase?: string; body?: number | null; priority?: number | null; args?: Record<string, unknown> }

export function runs(log: string): Run[] {
  try { return fs.readFileSync(log, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Run); } catch { return []; }
}

/** Poll `fn` every 25 ms until it returns something truthy (returned), or throw after `ms`. */
export async function until<T>(what: string, fn: () => T | undefined | false | null, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
