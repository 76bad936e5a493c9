-- wrk script for bench/events_load.sh: POST /v1/events with batches of
-- BATCH purchase events, every id fresh (thread number and a counter), and a
-- count of the answers that were not 200.
local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  batch = tonumber(os.getenv("BATCH") or "10")
  run = os.getenv("RUN") or "r"
  ok, bad = 0, 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  local events = {}
  for i = 1, batch do
    counter = counter + 1
    local id = string.format("%s-%d-%d", run, tid, counter)
    events[i] = string.format(
      '{"id":"%s","type":"purchase","time":"2025-06-01T10:00:00Z","order_id":"o-%s","customer":"c%d","item":"i%d","quantity":1,"price":2.5}',
      id, id, counter % 1000, counter % 50)
  end
  return wrk.format(nil, "/v1/events", nil, '{"events":[' .. table.concat(events, ",") .. ']}')
end

function response(status, headers, body)
  if status == 200 then ok = ok + 1 else bad = bad + 1 end
end

function done(summary, latency, requests)
  local o, b = 0, 0
  for _, t in ipairs(threads) do
    o = o + t:get("ok")
    b = b + t:get("bad")
  end
  io.write(string.format("acknowledged %d batches, %d not 200\n", o, b))
  io.write(string.format("p50_ms %.3f p99_ms %.3f\n", latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
