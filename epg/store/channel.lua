-- Create, update (optimistic version) or delete a channel.
-- KEYS: record idx data rights seq out (one channel)
-- ARGV: channel sent op(create|update|delete) json expected_version force
local op = ARGV[3]
local cur = redis.call('GET', KEYS[1])
if op == 'create' then
  if cur then return {'exists'} end
  redis.call('SET', KEYS[1], ARGV[4])
  return {'ok', record('channel', 0, {}, '', '', {}, ARGV[4]), outbox()}
end
if not cur then return {'nochannel'} end
if op == 'update' then
  local have = cjson.decode(cur)['version']
  if tostring(have) ~= ARGV[5] then return {'version', have} end
  redis.call('SET', KEYS[1], ARGV[4])
  return {'ok', record('channel', 0, {}, '', '', {}, ARGV[4]), outbox()}
end
local count = redis.call('ZCARD', KEYS[2])
if count > 0 and ARGV[6] ~= '1' then return {'notempty', count} end
local ids = redis.call('ZRANGE', KEYS[2], 0, -1)
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
return {'ok', record('channel', 1, {}, '', '', ids, ''), outbox()}
