-- wrk script for scripts/nocard_bench.sh: one signed post_created body (the
-- signature covers the timestamp and the body, not the headers), sent with a
-- unique X-Cativa-Execution-Id per request: "<run tag>-<thread>-<n>".
-- NOCARD_BODY names the body file, NOCARD_SIG is its X-Cativa-Signature
-- (signed just before the run: fresh for 300 s).

local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

local body, sig, prefix
local n = 0

function init(args)
  local f = assert(io.open(os.getenv("NOCARD_BODY"), "rb"))
  body = f:read("*a")
  f:close()
  sig = assert(os.getenv("NOCARD_SIG"), "NOCARD_SIG is not set")
  prefix = (args[1] or "run") .. "-" .. tostring(tid) .. "-"
end

function request()
  n = n + 1
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["X-Cativa-Signature"] = sig,
    ["X-Cativa-Execution-Id"] = prefix .. n,
  }, body)
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  io.write(string.format(
    "RESULT req_s=%.0f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f requests=%d non2xx=%d socket_errors=%d\n",
    summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
