-- The cues of some channels that end at or after from_ms and were not trimmed yet.
-- KEYS: cues(channel) ends(channel), for each channel (the feed's tag)
-- ARGV: from_ms
local out = {}
for i = 1, #KEYS, 2 do
  local ids = redis.call('ZRANGEBYSCORE', KEYS[i + 1], ARGV[1], '+inf')
  if #ids > 0 then
    for _, raw in ipairs(redis.call('HMGET', KEYS[i], unpack(ids))) do
      if raw then out[#out + 1] = raw end
    end
  end
end
return out
