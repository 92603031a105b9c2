-- Replace a cue (a cancellation) and put the channel's change in the EPG feed, in one step;
-- refused unless the stored cue is still the version the caller read.
-- KEYS: cues(channel) ends(channel) version changes (the feed's tag)
-- ARGV: id expected_version json(an object without "fp") end_ms maxlen channel
-- The new record keeps the inserted cue's fingerprint (what a retried insert compares).
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return {'missing'} end
local stored = cjson.decode(raw)
if tostring(stored.v) ~= ARGV[2] then return {'conflict'} end
local record = string.sub(ARGV[3], 1, -2) .. ',"fp":' .. cjson.encode(stored.fp) .. '}'
redis.call('HSET', KEYS[1], ARGV[1], record)
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
local v = redis.call('INCR', KEYS[3])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[5], v .. '-0', 'kind', 'cues', 'ch', ARGV[6],
  'deleted', '0', 'ids', ARGV[1], 'from', '', 'to', '')
return {'ok', record}
