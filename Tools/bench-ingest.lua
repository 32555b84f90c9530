-- wrk script for Tools/bench: POST /v1/signals with 100 new signals per request (unique
-- sourceIds per connection and request), the pipeline's write path.
math.randomseed(os.time() + math.floor(os.clock() * 1000000))
local counter = 0
local thread_id = tostring(math.random(1, 1000000000))

local function item(i)
  return string.format(
    '{"source":"bench","sourceId":"%s-%d-%d","title":"Brent crude rises after shipping disruption",' ..
    '"summary":"Futures rose as carriers rerouted; freight and insurance costs expected to rise.",' ..
    '"sourceUrl":"https://news.example.org/bench/%d","category":"economic","severity":"high","confidence":0.87,' ..
    '"modelVersion":"sitrep-classifier-2026.11.1","tags":["oil","shipping"],"region":"Gulf",' ..
    '"publishedAt":"2026-11-25T08:00:00Z"}', thread_id, counter, i, i)
end

request = function()
  counter = counter + 1
  local items = {}
  for i = 1, 100 do items[i] = item(i) end
  return wrk.format("POST", nil, nil, '{"items":[' .. table.concat(items, ",") .. ']}')
end
