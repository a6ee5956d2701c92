// `last:` — stop routing and hand the request to the application (uWSGI's `last`, the same as `continue:`).
import { definePlugin } from '../../sdk/index.js';

export default definePlugin({
  name: 'router-last',
  version: '1.0.0',
  sdk: '^1.1.0',
  description: 'route action last: (stop routing, run the application)',
  provides: { routerActions: ['last'] },
  setup(api) {
    api.routerActions.register('last', (args) => {
      if (args.trim() !== '') throw new Error(`last: takes no argument (got ${JSON.stringify(args)})`);
      return lastAction;
    });
  },
});

function lastAction(): 'continue' {
  return 'continue';
}
