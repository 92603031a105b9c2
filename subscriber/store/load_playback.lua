-- Loads the playback state of the boxes of one carrier (concurrent requests
-- share one call): every key carries the carrier's hash tag.
-- KEYS: the carrier's hash, then per box its hash and its subscriber's hash.
-- Returns {carrier status, then per box: box fields, subscriber fields}.
local out = {redis.call('HGET', KEYS[1], 's') or ''}
for i = 2, #KEYS do out[i] = redis.call('HGETALL', KEYS[i]) end
return out
