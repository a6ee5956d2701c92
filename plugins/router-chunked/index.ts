// `chunked:` — send the response with chunked transfer coding (HTTP/1.1), whatever the application declared.
// The transfer coding is the outermost one: the protocol frames the bytes after every content transformation
// (gzip, cache-store …) however the rules are ordered; each write of the application leaves as one chunk at
// once (streaming), and the zero-length chunk ends the response.
import { definePlugin, type RequestContext } from '../../sdk/index.js';

function chunkedAction(ctx: RequestContext): 'next' {
  ctx.forceChunked = true;
  return 'next';
}

export default definePlugin({
  name: 'router-chunked',
  version: '1.0.0',
  sdk: '^1.1.0',
  description: 'route action chunked: (chunked transfer encoding of the response)',
  provides: { routerActions: ['chunked'] },
  setup(api) {
    api.routerActions.register('chunked', (args) => {
      if (args.trim() !== '') throw new Error(`chunked: takes no argument (got ${JSON.stringify(args)})`);
      return chunkedAction;
    });
  },
});
