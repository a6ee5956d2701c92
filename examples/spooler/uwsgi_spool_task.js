// The JavaScript twin of the seed's uwsgi_spool_task.py.
import { spool } from 'uwcore';

export const send_email = spool(async function send_email(args) {
  console.log(`Send email to ${args.email_address}`);
});
