-- wrk script for Tools/bench: POST /v1/actions, each request with an Idempotency-Key of its own
-- (unique per connection and request), so every request is a new effect: the key row, the
-- action and its audit event written in one transaction.
math.randomseed(os.time() + math.floor(os.clock() * 1000000))
local counter = 0
local thread_id = tostring(math.random(1, 1000000000))
local body = '{"title":"Brief the CFO on Red Sea freight cost exposure","ownerId":"bench:owner","ownerName":"Bench Owner",' ..
  '"dueDate":"2026-12-15","priority":"high"}'

request = function()
  counter = counter + 1
  -- wrk.format uses the table given instead of the command line's -H headers: copy them in.
  local headers = {}
  for name, value in pairs(wrk.headers) do headers[name] = value end
  headers["Idempotency-Key"] = "bench-" .. thread_id .. "-" .. counter
  return wrk.format("POST", nil, headers, body)
end
