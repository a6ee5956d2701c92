// The seed's wsgi_test.py: spool a task, then answer Hello World.
import { sendEmail } from './tasks.js';

export async function application(env, start_response) {
  const data = 'Hello World';
  await sendEmail.spool({ email_address: 'someone@no.spam' });
  start_response('200 OK', [['Content-Type', 'text/plain'], ['Content-Length', String(data.length)]]);
  return [data];
}
