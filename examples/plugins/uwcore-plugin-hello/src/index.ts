// uwcore-plugin-hello: the example third-party plugin of the uwcore SDK guide (sdk/README.md).
//   --hello-header NAME=VALUE   adds a header to every response (the `headers` hook)
//   --hello-path PATH           answers GET PATH?name=X with a greeting (the `request` hook)
//   --hello-greeting TEXT       the greeting (alias --hello-text)
//   route action  hello:NAME    answers with a greeting from a routing rule (`routerActions`)
import { definePlugin, HttpError, type HeaderList, type PluginApi, type RequestContext } from 'uwcore/sdk';

/** What this plugin's setup returns: other plugins reach it with requires: ['hello'] + api.use('hello'). */
export interface HelloApi {
  /** the greeting sentence for a name. */
  greet(name: string): string;
  /** the headers added to every response, parsed from --hello-header. */
  readonly headers: HeaderList;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_VALUE = /[\r\n\0]/;

/** Parse `NAME=VALUE` (or `NAME: VALUE`) into a header, refusing what HTTP would not carry. */
export function parseHelloHeader(api: Pick<PluginApi, 'error'>, raw: string): [string, string] {
  const m = /^([^=:]+)(?:=|:\s*)(.*)$/.exec(raw);
  const name = m?.[1]?.trim() ?? '';
  const value = m?.[2]?.trim() ?? '';
  if (!m || !TOKEN.test(name) || BAD_VALUE.test(value)) {
    throw api.error('UW_ERR_CONFIG_BAD_VALUE', `invalid value ${JSON.stringify(raw)} for option --hello-header: expected NAME=VALUE with a header name made of letters, digits and !#$%&'*+-.^_\`|~`);
  }
  return [name, value];
}

function text(ctx: RequestContext, status: number, body: string): void {
  ctx.respond(status, [['Content-Type', 'text/plain; charset=utf-8'], ['Content-Length', String(Buffer.byteLength(body))]], ctx.env.REQUEST_METHOD === 'HEAD' ? null : body);
}

function nameFrom(query: string): string {
  for (const part of query.split('&')) {
    if (part.startsWith('name=')) {
      try { return decodeURIComponent(part.slice(5).replace(/\+/g, ' ')) || 'world'; } catch { throw new HttpError(400, 'name is not valid percent-encoding'); }
    }
  }
  return 'world';
}

export default definePlugin<HelloApi>({
  name: 'hello',
  version: '1.0.0',
  sdk: '^1.0.0',
  description: 'example plugin: --hello-header, a /hello answer and the hello: router action',
  options: [
    { name: 'hello-header', type: 'string', multiple: true, arg: 'NAME=VALUE', help: 'add the header NAME: VALUE to every response' },
    { name: 'hello-path', type: 'string', default: '/hello', arg: 'PATH', help: 'answer GET PATH?name=X with a greeting (empty: off)' },
    { name: 'hello-greeting', type: 'string', default: 'Hello', alias: ['hello-text'], arg: 'TEXT', help: 'the greeting word' },
  ],
  setup(api) {
    const greeting = api.options['hello-greeting'] as string;
    const helloPath = api.options['hello-path'] as string;
    const extra: HeaderList = ((api.options['hello-header'] as string[]) ?? []).map((h) => parseHelloHeader(api, h));
    const greet = (name: string) => `${greeting}, ${name}!\n`;

    // 1. a response header: a sync waterfall, it must return the (edited) list
    if (extra.length > 0) {
      api.hooks.headers.tap('hello', (headers) => {
        for (const h of extra) headers.push([h[0], h[1]]);
        return headers;
      });
    }

    // 2. an answer before the application: an async series bail, `true` means "answered, stop here"
    if (helloPath) {
      api.hooks.request.tap('hello', (ctx) => {
        if (ctx.env.PATH_INFO !== helloPath) return false;
        const method = ctx.env.REQUEST_METHOD;
        if (method !== 'GET' && method !== 'HEAD') {
          ctx.respond(405, [['Allow', 'GET, HEAD'], ['Content-Type', 'text/plain'], ['Content-Length', '19']], 'Method Not Allowed\n');
          return true;
        }
        text(ctx, 200, greet(nameFrom(ctx.env.QUERY_STRING)));
        return true;
      });
    }

    // 3. a router action: `--route '^/hi/(.+)$ hello:$1'` answers "Hello, <capture>!"
    api.routerActions.register('hello', (args, rule) => (ctx, match) => {
      const who = rule.expand(args, ctx, match).trim() || 'world';
      text(ctx, 200, greet(who));
      return 'break';
    });

    api.log.debug({ headers: extra.length, path: helloPath }, 'hello plugin ready');
    return { greet, headers: extra };
  },
});
