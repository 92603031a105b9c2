-- Channels whose newest change claimed (claim.lua) longer than ARGV[1] microseconds ago
-- has not reached the feed: its writer stopped between steps. Returns channel, pending
-- value and the last change number the feed has, for each (at most ARGV[2] of them).
-- KEYS: pending sent (the feed's tag)
local now = redis.call('TIME')
local before = tonumber(now[1] .. string.format('%06d', tonumber(now[2]))) - tonumber(ARGV[1])
local out = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if #out >= 3 * tonumber(ARGV[2]) then break end
  if tonumber(string.match(all[i + 1], '|(%d+)$')) <= before then
    out[#out + 1] = all[i]
    out[#out + 1] = all[i + 1]
    out[#out + 1] = string.match(redis.call('HGET', KEYS[2], all[i]) or '0', '^%d+')
  end
end
return out
