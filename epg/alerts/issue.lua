-- Issue an alert and put the change in the EPG feed, in one step.
-- KEYS: alerts ended version changes (the feed's tag)
-- ARGV: id json fingerprint ended_ms maxlen max_alerts now_ms
-- The same id with the same fingerprint returns the stored alert (a retried issue); with
-- another, 'exists'. Over max_alerts, the oldest alerts ended before now go.
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if raw then
  if cjson.decode(raw).fp == ARGV[3] then return {'same', raw} end
  return {'exists'}
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[4] ~= '' then redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1]) end
local extra = redis.call('HLEN', KEYS[1]) - tonumber(ARGV[6])
if extra > 0 then
  local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[7], 'LIMIT', 0, extra)
  for _, id in ipairs(old) do
    redis.call('HDEL', KEYS[1], id)
    redis.call('ZREM', KEYS[2], id)
  end
end
local v = redis.call('INCR', KEYS[3])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[5], v .. '-0', 'kind', 'alerts', 'ch', '',
  'deleted', '0', 'ids', ARGV[1], 'from', '', 'to', '')
return {'new', ARGV[2]}
