// Start a real nginx on a free loopback port with a generated config in a temp dir (pid, logs and temp paths
// inside it), in front of uwcore over uwsgi_pass, with nginx's stock uwsgi_params; stop it afterwards.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { freePort, ROOT, tmpDir } from './server.js';

/** The nginx binary, or null when nginx is not installed (tests skip with this message). */
export function findNginx(): string | null {
  for (const p of [process.env.NGINX_BIN, '/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/bin/nginx', '/usr/local/nginx/sbin/nginx']) {
    if (p && fs.existsSync(p)) return p;
  }
  const r = spawnSync('sh', ['-c', 'command -v nginx'], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() ? r.stdout.trim() : null;
}

export const NGINX_MISSING = 'nginx is not installed (apt-get install nginx-light, or set NGINX_BIN)';

/** nginx's stock uwsgi_params: the public test-vector copy, else the system's. */
export function uwsgiParams(): string {
  for (const p of [path.join(ROOT, '../shared/test-vectors/http/nginx/uwsgi_params'), '/work/shared/test-vectors/http/nginx/uwsgi_params', '/etc/nginx/uwsgi_params']) {
    if (fs.existsSync(p)) return p;
  }
  throw new Error('no uwsgi_params found');
}

export interface Nginx {
  port: number;
  dir: string;
  errorLog(): string;
  stop(): Promise<void>;
}

/** Each location maps a path prefix to a uwsgi_pass target (`127.0.0.1:PORT` or `unix:/path`). */
export async function startNginx(locations: Record<string, string>, opts: { extra?: string } = {}): Promise<Nginx> {
  const bin = findNginx();
  if (!bin) throw new Error(NGINX_MISSING);
  const dir = tmpDir('uwcore-nginx-');
  const port = await freePort();
  const params = path.join(dir, 'uwsgi_params');
  fs.copyFileSync(uwsgiParams(), params);
  const locs = Object.entries(locations).map(([prefix, target]) => `
    location ${prefix} {
      include ${params};
      uwsgi_pass ${target};
    }`).join('\n');
  // as root, nginx's workers would run as nobody and could not reach the temp dir or a socket inside it
  const user = process.getuid?.() === 0 ? 'user root;' : '';
  const conf = `
${user}
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 512; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  client_max_body_size 100m;
  ${opts.extra ?? ''}
  server {
    listen 127.0.0.1:${port};
    server_name localhost;
${locs}
  }
}
`;
  fs.writeFileSync(path.join(dir, 'nginx.conf'), conf);
  // its own process group: stop() can reach the workers too if the master has to be killed
  const proc: ChildProcess = spawn(bin, ['-p', dir, '-e', path.join(dir, 'error.log'), '-c', path.join(dir, 'nginx.conf'), '-g', 'daemon off;'], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`nginx exited (${proc.exitCode}): ${out}\n${readErr(dir)}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (ok) break;
    if (Date.now() > deadline) { try { process.kill(-proc.pid!, 'SIGKILL'); } catch { /* gone */ } throw new Error(`nginx did not listen on ${port}: ${out}\n${readErr(dir)}`); }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    dir,
    errorLog: () => readErr(dir),
    stop: async () => {
      if (proc.exitCode === null) {
        // SIGTERM: nginx's fast shutdown (SIGQUIT waits for open keep-alive connections, and a master
        // killed after that left its workers behind)
        proc.kill('SIGTERM');
        const t = setTimeout(() => { try { process.kill(-proc.pid!, 'SIGKILL'); } catch { /* gone */ } }, 5000);
        await exited;
        clearTimeout(t);
      }
      try { process.kill(-proc.pid!, 'SIGKILL'); } catch { /* the group is gone: nothing left behind */ }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

function readErr(dir: string): string {
  try { return fs.readFileSync(path.join(dir, 'error.log'), 'utf8'); } catch { return ''; }
}
