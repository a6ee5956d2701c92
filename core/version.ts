// uwcore's own version (package.json), distinct from the SDK version plugins are checked against.
import fs from 'node:fs';

function read(): string {
  const embedded = (globalThis as { __UWCORE_VERSION__?: string }).__UWCORE_VERSION__;
  if (embedded) return embedded;
  try {
    return (JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0';
  }
}

export const VERSION = read();
