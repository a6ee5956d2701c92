// Answers with the status given in ?s= (no body for 204 and 304).
export function application(env, start_response) {
  const s = Number(new URLSearchParams(env.QUERY_STRING).get('s') ?? 200);
  start_response(`${s} X`, [['Content-Type', 'text/plain']]);
  return s === 204 || s === 304 ? [] : ['body\n'];
}
