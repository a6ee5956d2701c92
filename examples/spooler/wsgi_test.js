// The seed's wsgi_test.py with the spooler call: enqueue, then answer.
import { send_email } from './uwsgi_spool_task.js';

export async function application(env, start_response) {
  const data = 'Hello World';
  start_response('200 OK', [['Content-Type', 'text/plain'], ['Content-Length', String(data.length)]]);
  await send_email.spool({ email_address: 'someone@no.spam' });
  return [data];
}
