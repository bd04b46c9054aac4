-- wrk script for `marquee bench feed_load --generator wrk`: GET a random path from a file
-- (one path per line: each user's feed) with the API key header, and print the figures
-- as one JSON line at the end, for the Python side to read.
-- Usage: wrk -t1 -c8 -d20s -s bench/wrk/feed.lua http://127.0.0.1:PORT -- PATHS_FILE KEY

local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("slot", threads)
end

function init(args)
  paths = {}
  for line in io.lines(args[1]) do
    paths[#paths + 1] = line
  end
  -- a new connection per request, as from many independent users (and as the Python
  -- generator does): with keep-alive, all connections stick to the server process that
  -- accepted them first, and the figure measures one process instead of the server
  headers = { ["X-API-Key"] = args[2], ["Connection"] = "close" }
  math.randomseed(slot or 1)  -- seeded per thread: a rerun asks for the same users
end

function request()
  return wrk.format("GET", paths[math.random(#paths)], headers)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "errors": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
