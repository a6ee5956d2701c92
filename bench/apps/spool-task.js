// uwcore: the no-op spooler task of the spool scenarios (the twin of wsgi_apps.py's uwsgi.spooler).
import { spool, SPOOL_OK } from 'uwcore';
export const noop = spool('bench_noop', () => SPOOL_OK);
