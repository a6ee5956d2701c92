// The JavaScript twin of the seed's uwsgi_module.py: set a value in the shared cache, answer with what get returns.
import { cache } from 'uwcore';

export async function application(env, start_response) {
  const data = 'Hello World';
  const mycache = cache('mycache');
  await mycache.set('return_data', data);
  start_response('200 OK', [['Content-Type', 'text/plain'], ['Content-Length', String(data.length)]]);
  return [await mycache.get('return_data')];
}
