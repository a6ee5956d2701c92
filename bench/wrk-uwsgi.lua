-- wrk script for the raw uwsgi-protocol scenarios: the request wrk sends is one binary uwsgi packet
-- (modifier1 0, the same vars as bench/loadgen.mjs), built once; wrk parses the HTTP answer as usual.
-- SERVER_PROTOCOL is HTTP/1.0, so every server answers with an HTTP/1.0 status line and wrk reconnects
-- after each response (the uwsgi protocol has no keep-alive): one new connection per request, as nginx does.
-- The summary line comes from wrk-report.lua's done().
local path = os.getenv("BENCH_PATH") or "/"
local port = os.getenv("BENCH_PORT") or "80"

local function u16(n) return string.char(n % 256, math.floor(n / 256) % 256) end

local function packet()
  local vars = {
    { "REQUEST_METHOD", "GET" }, { "REQUEST_URI", path }, { "PATH_INFO", (string.gsub(path, "%?.*$", "")) },
    { "QUERY_STRING", "" }, { "SERVER_PROTOCOL", "HTTP/1.0" }, { "SCRIPT_NAME", "" },
    { "SERVER_NAME", "localhost" }, { "SERVER_PORT", port }, { "REMOTE_ADDR", "127.0.0.1" },
    { "REMOTE_PORT", "40000" }, { "HTTP_HOST", "localhost" }, { "HTTP_USER_AGENT", "uwcore-bench" },
  }
  local parts = {}
  for _, kv in ipairs(vars) do
    parts[#parts + 1] = u16(#kv[1]) .. kv[1] .. u16(#kv[2]) .. kv[2]
  end
  local block = table.concat(parts)
  return string.char(0) .. u16(#block) .. string.char(0) .. block
end

-- done() (the BENCH_JSON line) comes from the common script
dofile(os.getenv("BENCH_WRK_REPORT") or "bench/wrk-report.lua")

-- wrk checks its request once at startup with an HTTP request parser (script_verify_request), which a
-- binary packet cannot pass: that first call gets a plain HTTP request (never sent), every later call the
-- packet. A request() function makes wrk call it for each request (a Lua call, no allocation: `req` is
-- built once).
local req = packet()
local verified = false
function request()
  if not verified then
    verified = true
    return "GET / HTTP/1.0\r\n\r\n"
  end
  return req
end
