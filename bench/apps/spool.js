// uwcore: enqueue one spooler task per request (the task itself does nothing).
import { noop } from './spool-task.js';
export async function application(env, start_response) {
  await noop.spool({ n: '1' });
  start_response('200 OK', [['Content-Type', 'text/plain'], ['Content-Length', '11']]);
  return ['Hello World'];
}
