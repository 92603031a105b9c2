-- Delete programmes by id, or those starting in [from, to).
-- KEYS: record idx data rights seq out (one channel)
-- ARGV: channel sent mode(ids|range) ids... | from to
if redis.call('EXISTS', KEYS[1]) == 0 then return {'nochannel'} end
local targets = {}
if ARGV[3] == 'range' then
  targets = redis.call('ZRANGEBYSCORE', KEYS[2], ARGV[4], '(' .. ARGV[5])
else
  for i = 4, #ARGV do
    if redis.call('HEXISTS', KEYS[3], ARGV[i]) == 1 then targets[#targets + 1] = ARGV[i] end
  end
end
if #targets == 0 then return {'ok', 0, {}, outbox()} end
local lo, hi = nil, nil
for _, id in ipairs(targets) do
  local s, t = parse(redis.call('HGET', KEYS[3], id))
  if not lo or s < lo then lo = s end
  if not hi or t > hi then hi = t end
  redis.call('ZREM', KEYS[2], id)
  redis.call('HDEL', KEYS[3], id)
  redis.call('HDEL', KEYS[4], id)
end
local seq = record('programmes', 0, targets, lo, hi, targets, '')
return {'ok', seq, targets, outbox()}
