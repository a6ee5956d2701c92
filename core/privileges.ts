// --uid / --gid: resolve names against /etc/passwd and /etc/group at startup (a bad value stops startup
// with one line), and drop privileges after the sockets are bound.
import fs from 'node:fs';
import type pino from 'pino';
import { Codes, UwError } from './errors.js';

export interface Ids { uid: number | null; gid: number | null; user: string | null }

function table(file: string): string[][] {
  try { return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(':')); } catch { return []; }
}

/** The uid/gid the options ask for (null when neither is set). Throws a usage error for unknown names. */
export function resolveIds(options: Record<string, unknown>): Ids | null {
  const u = options.uid as string | undefined;
  const g = options.gid as string | undefined;
  if (u === undefined && g === undefined) return null;
  const ids: Ids = { uid: null, gid: null, user: null };
  if (u !== undefined) {
    const passwd = table('/etc/passwd');
    const row = /^\d+$/.test(u) ? passwd.find((r) => r[2] === u) : passwd.find((r) => r[0] === u);
    if (/^\d+$/.test(u)) ids.uid = Number(u);
    else if (row) ids.uid = Number(row[2]);
    else throw new UwError(Codes.CONFIG_BAD_VALUE, `invalid value ${JSON.stringify(u)} for option --uid: no such user (give a user name from /etc/passwd or a number)`, { exitCode: 2 });
    if (row) { ids.user = row[0]!; if (g === undefined) ids.gid = Number(row[3]); }
  }
  if (g !== undefined) {
    if (/^\d+$/.test(g)) ids.gid = Number(g);
    else {
      const row = table('/etc/group').find((r) => r[0] === g);
      if (!row) throw new UwError(Codes.CONFIG_BAD_VALUE, `invalid value ${JSON.stringify(g)} for option --gid: no such group (give a group name from /etc/group or a number)`, { exitCode: 2 });
      ids.gid = Number(row[2]);
    }
  }
  const myUid = process.getuid?.() ?? 0;
  const needRoot = (ids.uid !== null && ids.uid !== myUid) || (ids.gid !== null && ids.gid !== (process.getgid?.() ?? 0));
  if (needRoot && myUid !== 0) {
    throw new UwError(Codes.CONFIG_BAD_VALUE, `--uid/--gid need uwcore to start as root to switch user (it runs as uid ${myUid}); start it as root or drop these options`, { exitCode: 2 });
  }
  return ids;
}

/** Switch to the configured group, then user (supplementary groups too when root). */
export function dropPrivileges(ids: Ids | null, log?: pino.Logger): void {
  if (ids === null || !process.setuid) return;
  const root = process.getuid!() === 0;
  if (ids.gid !== null) {
    if (root) {
      if (ids.user !== null) (process as unknown as { initgroups(u: string, g: number): void }).initgroups(ids.user, ids.gid);
      else process.setgroups!([ids.gid]);
    }
    process.setgid!(ids.gid);
  }
  if (ids.uid !== null) process.setuid(ids.uid);
  if (root) log?.info({ uid: process.getuid!(), gid: process.getgid!() }, `dropped privileges: now running as uid ${process.getuid!()} gid ${process.getgid!()}`);
}
