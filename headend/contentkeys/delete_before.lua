-- Delete up to ARGV[2] keys whose period ended at or before ARGV[1] (epoch seconds), with
-- their current-key entries. Returns the deleted key ids.
-- KEYS: cur, keys, idx (one scope's hash tag)
local kids = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, kid in ipairs(kids) do
  local text = redis.call('HGET', KEYS[2], kid)
  if text then
    local record = cjson.decode(text)
    local slot = record['period'] .. ':' .. record['generation']
    if redis.call('HGET', KEYS[1], slot) == kid then
      redis.call('HDEL', KEYS[1], slot)
    end
    redis.call('HDEL', KEYS[2], kid)
  end
  redis.call('ZREM', KEYS[3], kid)
end
return kids
