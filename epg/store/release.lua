-- A refused change: settle its claim (claim.lua) and, unless another change of the channel
-- is in flight (which may write the same ids), drop the reservations it made.
-- KEYS: prog pending (the feed's tag); ARGV: channel stamp ids...
local ch, stamp = ARGV[1], ARGV[2]
local inflight, newest = string.match(redis.call('HGET', KEYS[2], ch) or '1|0', '^(%d+)|(%d+)$')
inflight = tonumber(inflight) - 1
if inflight > 0 then
  redis.call('HSET', KEYS[2], ch, inflight .. '|' .. newest)
  return 0
end
redis.call('HDEL', KEYS[2], ch)
local mine, dropped = ch .. '|' .. stamp, 0
for i = 3, #ARGV do
  if redis.call('HGET', KEYS[1], ARGV[i]) == mine then
    redis.call('HDEL', KEYS[1], ARGV[i])
    dropped = dropped + 1
  end
end
return dropped
