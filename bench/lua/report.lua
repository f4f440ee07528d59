-- Shared by every bench script (adapted from shared/peers/better-auth/lua/report.lua).
-- Each thread counts responses whose status is not 2xx (wrk itself only counts >= 400) and, for
-- chained scripts, requests that had no token to send; done() prints one machine-readable line
-- (latencies in ms) that bench/api_bench.py parses.
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

non2xx = 0
starved = 0

function count_status(status)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

response = function(status, headers, body)
  count_status(status)
end

done = function(summary, latency, requests)
  local bad, hungry = 0, 0
  for _, thread in ipairs(threads) do
    bad = bad + (thread:get("non2xx") or 0)
    hungry = hungry + (thread:get("starved") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_s":%.3f,"rps":%.2f,"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,'
      .. '"max_ms":%.3f,"mean_ms":%.3f,"non2xx":%d,"starved":%d,"err_connect":%d,"err_read":%d,'
      .. '"err_write":%d,"err_timeout":%d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, latency.mean / 1000, bad, hungry,
    e.connect, e.read, e.write, e.timeout))
end
