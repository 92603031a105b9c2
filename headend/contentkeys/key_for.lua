-- The scope's key for one period at its current generation: the existing one, or the
-- candidate written as it (ARGV[2] empty: look up only). One script, so every node and
-- rung asking for the same (scope, period) agrees on one key.
-- KEYS: gen, cur, keys, idx (one scope's hash tag)
-- ARGV: period, candidate key id, candidate record JSON, its not_after (epoch seconds)
local gen = tonumber(redis.call('GET', KEYS[1]) or '0')
local slot = ARGV[1] .. ':' .. gen
local kid = redis.call('HGET', KEYS[2], slot)
if kid then
  return {kid, redis.call('HGET', KEYS[3], kid)}
end
if ARGV[2] == '' then
  return false
end
if redis.call('HEXISTS', KEYS[3], ARGV[2]) == 1 then
  return redis.error_reply('DUPLICATE content key id')
end
local record = cjson.decode(ARGV[3])
record['generation'] = gen
local text = cjson.encode(record)
redis.call('HSET', KEYS[2], slot, ARGV[2])
redis.call('HSET', KEYS[3], ARGV[2], text)
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[2])
return {ARGV[2], text}
