-- Delete programmes by id, or those starting in [from, to).
-- KEYS: channels idx data rights prog version changes
-- ARGV: channel maxlen mode(ids|range) ids... | from to
local ch = ARGV[1]
if redis.call('HEXISTS', KEYS[1], ch) == 0 then return {'nochannel'} end
local targets = {}
if ARGV[3] == 'range' then
  targets = redis.call('ZRANGEBYSCORE', KEYS[2], ARGV[4], '(' .. ARGV[5])
else
  for i = 4, #ARGV do
    if redis.call('HEXISTS', KEYS[3], ARGV[i]) == 1 then targets[#targets + 1] = ARGV[i] end
  end
end
if #targets == 0 then return {'ok', tonumber(redis.call('GET', KEYS[6]) or '0'), {}} end
local lo, hi = nil, nil
for _, id in ipairs(targets) do
  local s, t = parse(redis.call('HGET', KEYS[3], id))
  if not lo or s < lo then lo = s end
  if not hi or t > hi then hi = t end
  redis.call('ZREM', KEYS[2], id)
  redis.call('HDEL', KEYS[3], id)
  redis.call('HDEL', KEYS[4], id)
  redis.call('HDEL', KEYS[5], id)
end
return {'ok', emit('programmes', ch, 0, targets, lo, hi), targets}
