// Answers with the request variables routing may have changed, so a case can see them.
export function application(env, start_response) {
  const body = [
    `PATH_INFO=${env.PATH_INFO}`,
    `QUERY_STRING=${env.QUERY_STRING}`,
    `REQUEST_URI=${env.REQUEST_URI}`,
    ...(env.MY_VAR !== undefined ? [`MY_VAR=${env.MY_VAR}`] : []),
  ].join('\n') + '\n';
  start_response('200 OK', [['Content-Type', 'text/plain'], ['X-App', 'echo']]);
  return [body];
}
