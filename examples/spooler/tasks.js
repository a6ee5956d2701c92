// The JS twin of the seed's uwsgi_spool_task.py (`@spool def send_email(arguments): ...`).
import { spool } from 'uwcore';

export const sendEmail = spool(async function send_email(args) {
  console.log(`Send email to ${args.email_address}`);
});
