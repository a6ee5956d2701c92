// A third-party plugin (plain JavaScript, loaded with --plugins-dir): its own router actions and conditions.
import { setTimeout as sleep } from 'node:timers/promises';

export default {
  name: 'tenant',
  version: '1.0.0',
  sdk: '^1.1.0',
  description: 'example: tenant routing',
  setup(api) {
    // an action compiled once per rule: tenant:NAME-TEMPLATE sets TENANT in the env and a response header
    api.routerActions.register('tenant', (args, rule) => {
      const tpl = rule.template(args);
      return (ctx, match) => {
        const name = tpl(ctx, match);
        ctx.env.TENANT = name;
        ctx.addTransform({ name: 'tenant', headers(_ctx, h) { h.push(['X-Tenant', name]); } });
        return 'next';
      };
    });
    // an asynchronous action: answers after a lookup, or lets routing go on
    api.routerActions.register('tenant-gate', (args) => {
      const banned = args.split(',');
      return async (ctx) => {
        await sleep(5);
        if (!banned.includes(ctx.env.TENANT)) return 'next';
        const body = `tenant ${ctx.env.TENANT} is unavailable\n`;
        ctx.start(451, 'Unavailable For Legal Reasons', [['Content-Type', 'text/plain'], ['Content-Length', String(Buffer.byteLength(body))]]);
        ctx.end(body);
        return 'break';
      };
    });
    // a condition in the simple form: the whole argument, expanded
    api.routeConditions.register('tenanted', (value) => value.startsWith('t-'));
    // a condition compiled once: SUBJECT;LENGTH
    api.routeConditions.register('longer', {
      compile(args, rule) {
        const [s, n] = args.split(';');
        const subject = rule.template(s);
        const limit = Number(n);
        if (!Number.isInteger(limit)) throw new Error(`longer: ${JSON.stringify(n)} is not a number`);
        return (ctx, m) => subject(ctx, m).length > limit;
      },
    });
  },
};
