-- Insert a cue and put the channel's change in the EPG feed, in one step.
-- KEYS: cues(channel) ends(channel) cue_channels version changes (the feed's tag)
-- ARGV: id json fingerprint end_ms maxlen max_cues now_ms keep_after_ms channel
-- The same id with the same fingerprint returns the stored cue (a retried insert); with
-- another, 'exists'. Cues that ended before keep_after_ms go first; when the channel still
-- keeps max_cues, the oldest ended before now go; if none has, 'full'.
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if raw then
  if cjson.decode(raw).fp == ARGV[3] then return {'same', raw} end
  return {'exists'}
end
local function drop(ids)
  for _, id in ipairs(ids) do
    redis.call('HDEL', KEYS[1], id)
    redis.call('ZREM', KEYS[2], id)
  end
end
drop(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[8]))
local extra = redis.call('HLEN', KEYS[1]) - tonumber(ARGV[6]) + 1
if extra > 0 then
  drop(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[7], 'LIMIT', 0, extra))
  if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[6]) then return {'full'} end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[9])
local v = redis.call('INCR', KEYS[4])
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[5], v .. '-0', 'kind', 'cues', 'ch', ARGV[9],
  'deleted', '0', 'ids', ARGV[1], 'from', '', 'to', '')
return {'new', ARGV[2]}
