-- wrk script: optional pipelining, and a JSON summary line at the end.
--   wrk ... -s benches/wrk/report.lua URL -- [depth] [method] [body]
-- With depth > 1, each request sent is a batch of `depth` pipelined GETs
-- (TechEmpower's plaintext test uses 16). wrk then counts one "request"
-- per batch; the JSON reports requests (batches x depth) and notes it.
local depth = 1

function init(args)
  depth = tonumber(args[1] or "1") or 1
  local method, body = args[2], args[3]
  local headers = { ["Host"] = "localhost" }
  if body then headers["Content-Length"] = tostring(#body) end
  local one = wrk.format(method, nil, headers, body)
  request_bytes = string.rep(one, depth)
end

function request()
  return request_bytes
end

function done(summary, latency, requests)
  local us = function(p) return latency:percentile(p) end
  io.write(string.format(
    '{"batches":%d,"depth":%d,"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%.1f,"p90":%.1f,"p99":%.1f,"p999":%.1f,"max":%.1f,"mean":%.1f}}\n',
    summary.requests, depth, summary.requests * depth, summary.duration, summary.bytes,
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status, summary.errors.timeout,
    us(50), us(90), us(99), us(99.9), latency.max, latency.mean))
end
