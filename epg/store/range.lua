-- Programmes of one channel overlapping [from, to): the one before plus those inside.
-- KEYS: idx data rights; ARGV: from to limit
local lo, hi = tonumber(ARGV[1]), ARGV[2]
local ids = redis.call('ZREVRANGEBYSCORE', KEYS[1], '(' .. lo, '-inf', 'LIMIT', 0, 1)
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], lo, '(' .. hi, 'LIMIT', 0, ARGV[3])) do
  ids[#ids + 1] = id
end
local out = {}
for _, id in ipairs(ids) do
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGET', KEYS[2], id)
  out[#out + 1] = redis.call('HGET', KEYS[3], id) or ''
end
return out
