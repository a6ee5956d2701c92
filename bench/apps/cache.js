// uwcore: one cache get and one cache set per request (the hello body otherwise).
import { cache } from 'uwcore';
let n = 0;
export async function application(env, start_response) {
  const c = cache();
  const k = 'k' + (n++ & 255);
  await c.get(k);
  await c.update(k, 'Hello World');
  start_response('200 OK', [['Content-Type', 'text/plain'], ['Content-Length', '11']]);
  return ['Hello World'];
}
