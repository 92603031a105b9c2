-- Create, update (optimistic version) or delete a channel.
-- KEYS: channels idx data rights prog version changes
-- ARGV: channel maxlen op(create|update|delete) json expected_version force
local ch, op = ARGV[1], ARGV[3]
local cur = redis.call('HGET', KEYS[1], ch)
if op == 'create' then
  if cur then return {'exists'} end
  redis.call('HSET', KEYS[1], ch, ARGV[4])
  return {'ok', emit('channel', ch, 0, {}, '', '')}
end
if not cur then return {'nochannel'} end
if op == 'update' then
  local have = cjson.decode(cur)['version']
  if tostring(have) ~= ARGV[5] then return {'version', have} end
  redis.call('HSET', KEYS[1], ch, ARGV[4])
  return {'ok', emit('channel', ch, 0, {}, '', '')}
end
local count = redis.call('ZCARD', KEYS[2])
if count > 0 and ARGV[6] ~= '1' then return {'notempty', count} end
local ids = redis.call('ZRANGE', KEYS[2], 0, -1)
for i = 1, #ids, 1000 do
  redis.call('HDEL', KEYS[5], unpack(ids, i, math.min(i + 999, #ids)))
end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
redis.call('HDEL', KEYS[1], ch)
return {'ok', emit('channel', ch, 1, {}, '', '')}
