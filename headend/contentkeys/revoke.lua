-- Mark one key revoked and bump the scope's generation, so the next segment of every
-- period gets a new key. Returns 0 when the scope holds no such key.
-- KEYS: gen, keys (one scope's hash tag); ARGV: key id
local text = redis.call('HGET', KEYS[2], ARGV[1])
if not text then
  return 0
end
local record = cjson.decode(text)
record['revoked'] = true
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode(record))
redis.call('INCR', KEYS[1])
return 1
