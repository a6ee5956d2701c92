-- wrk script used for every wrk run of the bench: optional method/body from the environment, and a
-- machine-readable summary line (BENCH_JSON {...}) printed by done(). Latencies are in microseconds.
local method = os.getenv("BENCH_METHOD")
local size = tonumber(os.getenv("BENCH_BODY_SIZE") or "0")
if method and method ~= "" then wrk.method = method end
-- BENCH_HTTP10=1 (new-connection scenarios): send HTTP/1.0 requests (with Connection: close). wrk only
-- reconnects when the *response* says the connection ends; uWSGI's --http-socket closes after an HTTP/1.1
-- answer without saying so, and wrk would then write its next request into the closed socket and count a
-- read error per request. An HTTP/1.0 request makes every server's answer unambiguous; the request stays
-- static (no Lua request() per call), so wrk keeps its full speed.
if os.getenv("BENCH_HTTP10") == "1" then
  local format = wrk.format
  wrk.format = function(...)
    return (string.gsub(format(...), " HTTP/1%.1\r\n", " HTTP/1.0\r\n", 1))
  end
end
if size and size > 0 then
  wrk.body = string.rep("x", size)
  wrk.headers["Content-Type"] = "application/octet-stream"
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
