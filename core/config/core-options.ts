// Options the core itself declares (process model, application, logging, limits), and the uWSGI
// options uwcore accepts without needing them or refuses because it does not offer them.
import type { OptionSpec } from '../../sdk/index.js';

export const CORE_OPTIONS: OptionSpec[] = [
  // plugins and configuration
  { name: 'plugins', type: 'string', multiple: true, alias: ['plugin', 'need-plugin'], arg: 'LIST', help: 'load these plugins (comma-separated names, npm packages or paths)' },
  { name: 'plugins-dir', type: 'path', multiple: true, alias: ['plugin-dir'], arg: 'DIR', help: 'look for plugins in DIR before node_modules' },
  { name: 'ini', type: 'string', multiple: true, arg: 'FILE[:SECTION]', help: 'read options from an ini file (section [uwcore], else [uwsgi])' },
  { name: 'set-placeholder', type: 'string', multiple: true, alias: ['set-ph'], arg: 'KEY=VALUE', help: 'declare a %(KEY) placeholder for config files' },
  { name: 'plugin-timeout', type: 'seconds', default: 10, min: 0.001, arg: 'S', help: 'a plugin whose setup takes longer stops startup' },
  // application
  { name: 'app', type: 'path', alias: ['wsgi-file', 'file'], arg: 'FILE', help: 'load the application from FILE (.js, .mjs, .cjs)' },
  { name: 'module', type: 'string', alias: ['wsgi'], short: 'w', arg: 'SPECIFIER', help: 'load the application from a module specifier (package or path)' },
  { name: 'callable', type: 'string', default: 'application', arg: 'NAME', help: 'the export to call (default application, else the default export)' },
  { name: 'need-app', type: 'bool', default: false, help: 'exit if no application can be loaded' },
  { name: 'import', type: 'path', multiple: true, alias: ['pyimport', 'py-import', 'python-import'], arg: 'MODULE', help: 'import MODULE (a file, `.js` optional, or a package) in every worker and spooler process before the application, e.g. spooler tasks' },
  { name: 'chdir', type: 'path', arg: 'DIR', help: 'change to DIR before loading the application' },
  { name: 'env', type: 'string', multiple: true, arg: 'KEY=VALUE', help: 'set an environment variable for the application' },
  // processes
  { name: 'master', type: 'bool', default: false, short: 'M', help: 'run a master process that supervises the workers' },
  { name: 'processes', type: 'int', default: 1, min: 1, max: 1024, alias: ['workers'], short: 'p', arg: 'N', help: 'number of worker processes' },
  { name: 'threads', type: 'int', default: 1, min: 1, max: 1024, arg: 'N', help: 'application threads per worker' },
  { name: 'pidfile', type: 'path', arg: 'FILE', help: 'write the master pid to FILE (removed at exit)' },
  { name: 'reload-mercy', type: 'seconds', default: 60, min: 0, arg: 'S', help: 'on SIGTERM/SIGINT, how long in-flight requests may run before their connections are closed' },
  { name: 'worker-reload-mercy', type: 'seconds', default: 60, min: 0, arg: 'S', help: 'on a reload, how long an old worker may finish its requests before it is killed' },
  { name: 'listen', type: 'int', default: 1024, min: 1, max: 65535, short: 'l', arg: 'N', help: 'listen backlog of every socket' },
  { name: 'no-defer-accept', type: 'bool', default: false, help: 'do not set TCP_DEFER_ACCEPT on uwsgi TCP sockets (by default, as in uWSGI, the kernel hands a connection over only once its first bytes arrived, for up to --socket-timeout)' },
  { name: 'harakiri', type: 'seconds', default: 0, min: 0, short: 't', arg: 'S', help: 'a request running longer than S seconds gets its thread (the app then runs in worker threads) killed and replaced; the client gets 504 (0 = off)' },
  { name: 'max-requests', type: 'int', default: 0, min: 0, short: 'R', arg: 'N', impliesMaster: true, help: 'gracefully replace a worker after N requests (0 = never)' },
  { name: 'reload-on-rss', type: 'int', default: 0, min: 0, arg: 'MB', impliesMaster: true, help: 'gracefully replace a worker whose resident memory passes MB megabytes (0 = never)' },
  { name: 'max-worker-lifetime', type: 'seconds', default: 0, min: 0, arg: 'S', impliesMaster: true, help: 'gracefully replace a worker after S seconds of life (0 = never)' },
  { name: 'min-worker-lifetime', type: 'seconds', default: 0, min: 0, arg: 'S', help: 'recycling by --max-requests / --reload-on-rss only after S seconds of worker life (uWSGI defaults to 10)' },
  { name: 'touch-reload', type: 'path', multiple: true, arg: 'FILE', impliesMaster: true, help: 'gracefully reload the workers when FILE\'s modification time changes' },
  { name: 'stats', type: 'addr', alias: ['stats-server'], arg: 'ADDR', impliesMaster: true, help: 'serve uWSGI-compatible stats JSON on ADDR (HOST:PORT or a UNIX socket path)' },
  { name: 'stats-http', type: 'bool', default: false, help: 'serve the stats document over HTTP instead of a raw socket' },
  { name: 'stats-minified', type: 'bool', default: false, alias: ['stats-min'], help: 'no indentation in the stats document' },
  { name: 'uid', type: 'string', arg: 'USER', help: 'switch to USER (name or number) after binding the sockets (needs root)' },
  { name: 'gid', type: 'string', arg: 'GROUP', help: 'switch to GROUP (name or number) after binding the sockets (needs root)' },
  { name: 'chmod-socket', type: 'string', arg: 'MODE', help: 'chmod UNIX sockets to MODE (octal, e.g. 660)' },
  // limits
  { name: 'buffer-size', type: 'size', default: 65536, min: 1024, max: 16 * 1024 * 1024, short: 'b', arg: 'BYTES', help: 'largest request header block / uwsgi vars block (default 64k)' },
  { name: 'limit-post', type: 'size', default: 0, min: 0, arg: 'BYTES', help: 'largest request body; larger ones get 413 (0 = no limit)' },
  { name: 'add-header', type: 'string', multiple: true, arg: '"NAME: VALUE"', help: 'add a header to every response' },
  // internal routing (docs/routing.md): every rule option accumulates, and the rules run in the order written
  { name: 'route', type: 'string', multiple: true, arg: '"REGEX ACTION:ARGS"', help: 'when REGEX matches PATH_INFO, run ACTION' },
  { name: 'route-uri', type: 'string', multiple: true, arg: '"REGEX ACTION:ARGS"', help: 'when REGEX matches REQUEST_URI (raw, with ?query), run ACTION' },
  { name: 'route-qs', type: 'string', multiple: true, arg: '"REGEX ACTION:ARGS"', help: 'when REGEX matches QUERY_STRING, run ACTION' },
  { name: 'route-host', type: 'string', multiple: true, arg: '"REGEX ACTION:ARGS"', help: 'when REGEX matches HTTP_HOST (with :port), run ACTION' },
  { name: 'route-remote-addr', type: 'string', multiple: true, arg: '"REGEX ACTION:ARGS"', help: 'when REGEX matches REMOTE_ADDR, run ACTION' },
  { name: 'route-user-agent', type: 'string', multiple: true, arg: '"REGEX ACTION:ARGS"', help: 'when REGEX matches HTTP_USER_AGENT, run ACTION' },
  { name: 'route-referer', type: 'string', multiple: true, arg: '"REGEX ACTION:ARGS"', help: 'when REGEX matches HTTP_REFERER, run ACTION' },
  { name: 'route-remote-user', type: 'string', multiple: true, arg: '"REGEX ACTION:ARGS"', help: 'when REGEX matches REMOTE_USER, run ACTION' },
  { name: 'route-if', type: 'string', multiple: true, arg: '"COND:ARGS ACTION:ARGS"', help: 'when the condition holds (equal:A;B, startswith, endswith, regexp, contains, empty, isfile, isdir …), run ACTION' },
  { name: 'route-if-not', type: 'string', multiple: true, arg: '"COND:ARGS ACTION:ARGS"', help: 'when the condition does not hold, run ACTION' },
  { name: 'route-run', type: 'string', multiple: true, arg: 'ACTION:ARGS', help: 'always run ACTION (e.g. chunked:, last:)' },
  { name: 'route-label', type: 'string', multiple: true, arg: 'NAME', help: 'a label that goto:NAME jumps to' },
  // logging
  { name: 'logto', type: 'path', alias: ['daemonize-log'], arg: 'FILE', help: 'append logs to FILE instead of stdout' },
  { name: 'disable-logging', type: 'bool', default: false, alias: ['disable-access-log'], help: 'no access-log line per request' },
  { name: 'log-level', type: 'string', default: 'info', choices: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], arg: 'LEVEL', help: 'log level' },
];

/** uWSGI options uwcore accepts and ignores, with the reason shown in the one warning. */
export const UWSGI_NOT_NEEDED: Record<string, string> = {
  'vacuum': 'uwcore always removes its pidfile and UNIX sockets at exit',
  'die-on-term': 'SIGTERM always stops uwcore gracefully',
  'enable-threads': 'threads are enabled by --threads',
  'strict': 'uwcore is always strict about unknown options',
  'wsgi-manage-chunked-input': 'uwcore always de-chunks request bodies',
  'single-interpreter': 'each worker runs one copy of the application',
  'thunder-lock': 'workers accept from the shared socket without a lock',
  'lazy-apps': 'each worker always loads the application itself',
  'lazy': 'each worker always loads the application itself',
  'harakiri-verbose': 'the harakiri log line always names the request, the worker and the duration',
  'no-orphans': 'workers always exit when the master dies',
  'auto-procname': 'process titles are always set',
  'memory-report': 'memory is reported by the stats server',
  'post-buffering': 'the request body is streamed to the application',
  'http-keepalive': 'uwcore\'s --http keeps connections alive by default',
  'http-auto-chunked': 'uwcore frames responses without Content-Length automatically',
  'py-autoreload': 'use --touch-reload',
  'optimize': 'there is no Python interpreter',
};

/** uWSGI options uwcore does not offer: refused with this reason. */
export const UWSGI_NOT_OFFERED: Record<string, string> = {
  'emperor': 'run one uwcore per application under systemd or a container orchestrator',
  'vassal': 'there is no Emperor', 'mule': 'use the spooler or a worker thread', 'mules': 'use the spooler or a worker thread',
  'farm': 'there are no mules', 'legion': 'clustering is not offered', 'subscribe-to': 'the subscription system is not offered',
  'fastrouter': 'put nginx in front', 'rawrouter': 'put nginx in front', 'sslrouter': 'terminate TLS in nginx',
  'https': 'terminate TLS in nginx or a load balancer', 'https-socket': 'terminate TLS in nginx or a load balancer',
  'virtualenv': 'there is no Python: use node_modules', 'venv': 'there is no Python: use node_modules', 'home': 'there is no Python: use node_modules',
  'pythonpath': 'there is no Python: use node_modules', 'python-path': 'there is no Python: use node_modules', 'pyargv': 'there is no Python',
  'chroot': 'use a container', 'unshare': 'use a container', 'cgroup': 'use systemd or a container', 'namespace': 'use a container',
  'attach-daemon': 'use systemd units', 'smart-attach-daemon': 'use systemd units', 'cron': 'use a systemd timer or the spooler\'s `at`',
  'sharedarea': 'use the cache plugin', 'locks': 'use the cache plugin', 'rpc': 'RPC is not offered',
  'cheaper': 'adaptive process spawning is not offered', 'cheaper-algo': 'adaptive process spawning is not offered',
  'async': 'the application is already asynchronous', 'ugreen': 'the application is already asynchronous', 'gevent': 'there is no Python',
  'offload-threads': 'static files are streamed by the event loop', 'daemonize': 'run uwcore under systemd or a container (see examples/deploy)',
  'logger': 'logs go to stdout or --logto as JSON', 'req-logger': 'the access log goes to stdout or --logto',
};

/** uWSGI plugin names that mean "the Python language plugin": uwcore needs none. */
export const UWSGI_LANGUAGE_PLUGINS = /^(python\d*|pypy|psgi|rack|php|lua|jvm|jwsgi|mono|cgi|corerouter|router_\w+|transformation_\w+)$/;
