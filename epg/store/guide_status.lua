-- For each channel: the stop of its last programme, then the start and stop of each
-- programme overlapping [now, min(horizon, that stop)) (none when the guide ended).
-- KEYS: (idx data) per channel; ARGV: now horizon
-- Reply per channel: last_stop (0: no programme), n, then n pairs start, stop.
local now, horizon = tonumber(ARGV[1]), tonumber(ARGV[2])
local function times(data, id)
  local s, e = string.match(redis.call('HGET', data, id), '^(-?%d+)|(-?%d+)|')
  return tonumber(s), tonumber(e)
end
local out = {}
for i = 1, #KEYS, 2 do
  local idx, data = KEYS[i], KEYS[i + 1]
  local last = redis.call('ZREVRANGE', idx, 0, 0)[1]
  local last_stop = 0
  if last then
    local _, e = times(data, last)
    last_stop = e
  end
  out[#out + 1] = last_stop
  local at = #out + 1
  out[at] = 0
  local hi = math.min(horizon, last_stop)
  if hi > now then
    -- The programme before now may still be on; then those starting before hi.
    local ids = redis.call('ZREVRANGEBYSCORE', idx, '(' .. now, '-inf', 'LIMIT', 0, 1)
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', idx, now, '(' .. hi)) do
      ids[#ids + 1] = id
    end
    for _, id in ipairs(ids) do
      local s, e = times(data, id)
      out[#out + 1] = s
      out[#out + 1] = e
    end
    out[at] = #ids
  end
end
return out
