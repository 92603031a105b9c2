-- Last step of a change: put the channel's outbox entries (outbox() of common.lua) into
-- the feed, in order, each once, under the next versions; keep the channel catalogue and
-- the programme id reservations in step with the feed.
-- KEYS: version changes channels prog sent pending (the feed's tag)
-- ARGV: channel maxlen mode entries... (8 fields each: seq kind deleted ids from to
-- released json). mode 'writer': the writer of a change, whose claim is now settled;
-- otherwise the pending value stale.lua saw, settled only if nobody claimed since.
local ch, mode = ARGV[1], ARGV[3]
local pending = redis.call('HGET', KEYS[6], ch)
local free = false  -- may released ids lose their reservation?
if mode == 'writer' then
  local inflight, stamp = string.match(pending or '1|0', '^(%d+)|(%d+)$')
  inflight = tonumber(inflight) - 1
  -- A change of this channel still in flight may write a released id again.
  free = inflight == 0
  if free then redis.call('HDEL', KEYS[6], ch)
  else redis.call('HSET', KEYS[6], ch, inflight .. '|' .. stamp) end
elseif pending == mode then
  free = true
  redis.call('HDEL', KEYS[6], ch)
end
local sent, last = string.match(redis.call('HGET', KEYS[5], ch) or '0|0', '^(%d+)|(%d+)$')
sent, last = tonumber(sent), tonumber(last)
local out = {0}
for i = 4, #ARGV, 8 do
  local seq = tonumber(ARGV[i])
  if seq > sent then
    local kind, deleted, json = ARGV[i + 1], ARGV[i + 2], ARGV[i + 7]
    last = redis.call('INCR', KEYS[1])
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], last .. '-0', 'kind', kind, 'ch', ch,
      'deleted', deleted, 'ids', ARGV[i + 3], 'from', ARGV[i + 4], 'to', ARGV[i + 5])
    if kind == 'channel' then
      if deleted == '1' then redis.call('HDEL', KEYS[3], ch)
      else redis.call('HSET', KEYS[3], ch, json) end
    end
    if free then
      for id in string.gmatch(ARGV[i + 6], '[^,]+') do
        local owner = string.match(redis.call('HGET', KEYS[4], id) or '', '^[^|]*')
        if owner == ch then redis.call('HDEL', KEYS[4], id) end
      end
    end
    sent = seq
    redis.call('HSET', KEYS[5], ch, seq .. '|' .. last)
    out[#out + 1] = seq
    out[#out + 1] = last
  end
end
out[1] = last
return out
