-- wrk script for bench/load.sh: a mix of "similar items" and "for you"
-- requests over real ids, and a check of every response: status 200 and a
-- model version header naming one of the versions in VERSIONS.
local items, customers = {}, {}
local threads = {}

local function lines(path)
  local t = {}
  for l in io.lines(path) do t[#t + 1] = l end
  return t
end

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  items = lines(os.getenv("ITEMS"))
  customers = lines(os.getenv("CUSTOMERS"))
  allowed = {}
  for v in string.gmatch(os.getenv("VERSIONS"), "[^,]+") do allowed[v] = true end
  share = tonumber(os.getenv("SIMILAR_SHARE") or "0.5")
  bad_status, bad_version, seen = 0, 0, 0
  math.randomseed(42 + (tonumber(os.getenv("SEED_OFFSET") or "0")))
end

function request()
  if math.random() < share then
    return wrk.format("GET", "/v1/items/" .. items[math.random(#items)] .. "/similar?k=10")
  else
    return wrk.format("GET", "/v1/customers/" .. customers[math.random(#customers)] .. "/recommendations?k=10")
  end
end

function response(status, headers, body)
  seen = seen + 1
  if status ~= 200 then bad_status = bad_status + 1 end
  local v = headers["x-encore-model-version"]
  if v == nil or not allowed[v] then bad_version = bad_version + 1 end
end

function done(summary, latency, requests)
  local bs, bv, n = 0, 0, 0
  for _, t in ipairs(threads) do
    bs = bs + t:get("bad_status")
    bv = bv + t:get("bad_version")
    n = n + t:get("seen")
  end
  io.write(string.format("checked %d responses: %d not 200, %d without a known model version\n", n, bs, bv))
  io.write(string.format("socket errors: connect %d, read %d, write %d, timeout %d\n",
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout))
  io.write(string.format("p50_ms %.3f p90_ms %.3f p99_ms %.3f\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000))
end
