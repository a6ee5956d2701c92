// The bench scenarios. Each one names its load, its servers and its target; adding a scenario is adding an
// entry here. Server builders (from lib.mjs):
//   uwcore(name, args)           node bin/uwcore.js ARGS (options are checked against `uwcore --help`)
//   node(name, mode, {workers})  bench/apps/node-server.mjs (bare node:http / node:cluster)
//   netFloor(name, protocol)     bench/apps/net-floor.mjs (raw net: fixed answer, close; protocol http or uwsgi)
//   uwsgi(name, args, {plugins}) /usr/bin/uwsgi --plugin python3 with bench/apps/wsgi_apps.py
//   gunicorn(name, callable)     gunicorn sync workers, where installed
// '{addr}' in args is replaced by 127.0.0.1:PORT; '{static}' by the static files directory; '{spool}' by a
// fresh spool directory. Load kinds: http (wrk, keep-alive), http-close (wrk -H 'Connection: close'),
// uwsgi (raw packets, one new connection each: wrk with bench/wrk-uwsgi.lua, else bench/loadgen.mjs), and
// the special kinds startup, idle-rss, reload and drain (the spool directory is filled with load.tasks spool
// files before the server starts; measured: how fast its spooler empties it).
// target: { baseline, min } (uwcore's requests/s ÷ baseline's), or { baseline, lowerIsBetter: true }.
import { uwcore, node, netFloor, uwsgi, gunicorn } from './lib.mjs';

const HELLO = ['--app', 'bench/apps/hello.js'];

export const scenarios = [
  {
    id: 'hello', title: 'hello world, HTTP keep-alive, 1 process', load: { kind: 'http', path: '/' },
    target: { baseline: 'node-http', min: 0.9 },
    servers: [
      uwcore('uwcore', ['--http', '{addr}', ...HELLO]),
      node('node-http', 'hello'),
      uwsgi('uwsgi', ['--http11-socket', '{addr}', '--callable', 'hello']),
      gunicorn('gunicorn', 'hello'),
    ],
  },
  {
    id: 'hello-p2', title: 'hello world, HTTP keep-alive, 2 worker processes', load: { kind: 'http', path: '/' },
    target: { baseline: 'node-cluster', min: 0.9 },
    servers: [
      uwcore('uwcore', ['--http', '{addr}', '--master', '--processes', '2', ...HELLO]),
      node('node-cluster', 'hello', { workers: 2 }),
      uwsgi('uwsgi', ['--http11-socket', '{addr}', '--master', '--processes', '2', '--callable', 'hello']),
    ],
  },
  {
    id: 'hello-close', title: 'hello world, Connection: close (new connection per request)', load: { kind: 'http-close', path: '/' },
    target: { baseline: 'net-floor', min: 0.8 },
    servers: [
      uwcore('uwcore', ['--http-socket', '{addr}', ...HELLO]),
      netFloor('net-floor'),
      node('node-http', 'hello'),
      uwsgi('uwsgi', ['--http-socket', '{addr}', '--callable', 'hello']),
    ],
  },
  {
    id: 'hello-http11', title: 'hello world, --http11-socket keep-alive', load: { kind: 'http', path: '/' },
    target: { baseline: 'node-http', min: 0.9 },
    servers: [
      uwcore('uwcore', ['--http11-socket', '{addr}', ...HELLO]),
      node('node-http', 'hello'),
      uwsgi('uwsgi', ['--http11-socket', '{addr}', '--callable', 'hello']),
    ],
  },
  {
    id: 'uwsgi-nginx', title: 'hello world, uwsgi protocol behind nginx (keep-alive to nginx)', load: { kind: 'http', path: '/', nginx: true },
    target: { baseline: 'uwsgi', min: 1.0 },
    servers: [
      uwcore('uwcore', ['--socket', '{addr}', ...HELLO]),
      uwsgi('uwsgi', ['--socket', '{addr}', '--callable', 'hello']),
    ],
  },
  {
    id: 'uwsgi-raw', title: 'hello world, raw uwsgi packets, new connection per request', load: { kind: 'uwsgi', path: '/' },
    target: { baseline: 'net-floor', min: 0.8 }, // issue 3: ≥ 0.8 × the raw net floor (uWSGI shown beside it)
    servers: [
      uwcore('uwcore', ['--socket', '{addr}', ...HELLO]),
      netFloor('net-floor', 'uwsgi'),
      uwsgi('uwsgi', ['--socket', '{addr}', '--callable', 'hello']),
    ],
  },
  {
    id: 'chunked', title: 'streamed body, 16 × 1 KiB, chunked (keep-alive)', load: { kind: 'http', path: '/' },
    target: { baseline: 'node-http', min: 0.9 },
    servers: [
      uwcore('uwcore', ['--http', '{addr}', '--app', 'bench/apps/chunked.js']),
      node('node-http', 'chunked'),
      uwsgi('uwsgi', ['--http11-socket', '{addr}', '--callable', 'chunked', '--route-run', 'chunked:'], { plugins: ['transformation_chunked'] }),
    ],
  },
  {
    id: 'post-echo', title: '64 KiB POST echoed back (keep-alive)', load: { kind: 'http', path: '/', method: 'POST', bodySize: 65536 },
    target: { baseline: 'node-http', min: 0.9 },
    servers: [
      uwcore('uwcore', ['--http', '{addr}', '--app', 'bench/apps/echo.js']),
      node('node-http', 'echo'),
      uwsgi('uwsgi', ['--http11-socket', '{addr}', '--callable', 'echo']),
    ],
  },
  {
    id: 'static-1m', title: 'static file, 1 MiB whole (keep-alive)', load: { kind: 'http', path: '/file-1m.bin' },
    target: { baseline: 'node-http', min: 0.9 },
    servers: [
      uwcore('uwcore', ['--http', '{addr}', '--check-static', '{static}', '--honour-range', ...HELLO]),
      node('node-http', 'static', { file: 'file-1m.bin' }),
      uwsgi('uwsgi', ['--http11-socket', '{addr}', '--check-static', '{static}', '--honour-range', '--callable', 'hello']),
    ],
  },
  {
    id: 'static-range', title: 'static file, 100-byte Range of 1 MiB (keep-alive)', load: { kind: 'http', path: '/file-1m.bin', headers: ['Range: bytes=1000-1099'] },
    target: { baseline: 'node-http', min: 0.9 },
    servers: [
      uwcore('uwcore', ['--http', '{addr}', '--check-static', '{static}', '--honour-range', ...HELLO]),
      node('node-http', 'static', { file: 'file-1m.bin' }),
      uwsgi('uwsgi', ['--http11-socket', '{addr}', '--check-static', '{static}', '--honour-range', '--callable', 'hello']),
    ],
  },
  {
    id: 'cache', title: 'cache get + update per request (vs uwcore hello)', load: { kind: 'http', path: '/' },
    target: { baseline: 'uwsgi', min: 1.0 },
    servers: [
      uwcore('uwcore', ['--http', '{addr}', '--cache2', 'name=bench,items=1000', '--app', 'bench/apps/cache.js']),
      uwcore('uwcore-hello', ['--http', '{addr}', ...HELLO]),
      uwsgi('uwsgi', ['--http11-socket', '{addr}', '--cache2', 'name=bench,items=1000', '--callable', 'cache']),
    ],
  },
  {
    id: 'spool', title: 'spooler enqueue per request', load: { kind: 'http', path: '/' },
    target: { baseline: 'uwsgi', min: 1.0 },
    servers: [
      uwcore('uwcore', ['--http', '{addr}', '--spooler', '{spool}', '--app', 'bench/apps/spool.js']),
      uwsgi('uwsgi', ['--http11-socket', '{addr}', '--master', '--spooler', '{spool}', '--callable', 'spool']),
    ],
  },
  {
    // one spooler process drains a directory pre-filled with TASKS no-op tasks in uWSGI's spool file
    // format (written by the bench, not by either server); the figure is tasks executed per second
    id: 'spool-drain', title: 'spooler: tasks executed per second by one spooler process (pre-filled directory)', load: { kind: 'drain', path: '/', tasks: 5000 },
    target: { baseline: 'uwsgi', min: 1.0 },
    servers: [
      uwcore('uwcore', ['--http', '{addr}', '--spooler', '{spool}', '--import', 'bench/apps/spool-task.js', ...HELLO]),
      uwsgi('uwsgi', ['--http11-socket', '{addr}', '--master', '--spooler', '{spool}', '--callable', 'hello']),
    ],
  },
  {
    id: 'routing', title: '5 non-matching `route` rules + `route-run = last:` (vs none)', load: { kind: 'http', path: '/' },
    target: { baseline: 'uwsgi', min: 1.0 },
    servers: [
      uwcore('uwcore', ['--http', '{addr}', ...routes(), ...HELLO]),
      uwcore('uwcore-noroutes', ['--http', '{addr}', ...HELLO]),
      uwsgi('uwsgi', ['--http11-socket', '{addr}', ...routes(), '--callable', 'hello']),
    ],
  },
  {
    id: 'reload', title: 'graceful reload (SIGHUP) under load, 2 workers: failed requests', load: { kind: 'reload', path: '/' },
    target: { baseline: 'uwsgi', min: 0 },
    servers: [
      uwcore('uwcore', ['--http', '{addr}', '--master', '--processes', '2', ...HELLO]),
      uwsgi('uwsgi', ['--http11-socket', '{addr}', '--master', '--processes', '2', '--callable', 'hello']),
    ],
  },
  {
    id: 'startup', title: 'startup: spawn to first response (ms)', load: { kind: 'startup', path: '/' },
    target: { baseline: 'uwsgi', lowerIsBetter: true },
    servers: [
      uwcore('uwcore', ['--http', '{addr}', ...HELLO]),
      node('node-http', 'hello'),
      uwsgi('uwsgi', ['--http11-socket', '{addr}', '--callable', 'hello']),
    ],
  },
  {
    id: 'idle-rss', title: 'idle RSS, master + 2 workers (MiB per worker)', load: { kind: 'idle-rss', path: '/' },
    target: { baseline: 'uwsgi', lowerIsBetter: true },
    servers: [
      uwcore('uwcore', ['--http', '{addr}', '--master', '--processes', '2', ...HELLO]),
      node('node-cluster', 'hello', { workers: 2 }),
      uwsgi('uwsgi', ['--http11-socket', '{addr}', '--master', '--processes', '2', '--callable', 'hello']),
    ],
  },
];

function routes() {
  const r = [];
  for (let i = 1; i <= 5; i++) r.push('--route', `^/never-${i}$ break:404`);
  r.push('--route-run', 'last:');
  return r;
}
