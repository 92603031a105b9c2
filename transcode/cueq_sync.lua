-- A channel's signal queue made to hold exactly the desired signals (transcode/cueq.py).
-- KEYS[1]: tc:cueq:{ch}, sorted set by due time, member = the whole signal (JSON, its id first)
-- KEYS[2]: tc:cueplaced:{ch}, sorted set of the ids placed, by due time
-- ARGV[1]: the earliest due time kept (now - late), epoch seconds
-- ARGV[2]: placed ids due before this are forgotten, epoch seconds
-- ARGV[3]: milliseconds both keys live after this call
-- ARGV[4..]: the desired signals, three values each: id, due time, member
-- Returns {added, removed}. A placed id is never queued again; a member that is not a
-- signal's, or whose id is not desired, or desired with other bytes, is removed.
local queue, placed = KEYS[1], KEYS[2]
local earliest = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', placed, '-inf', '(' .. ARGV[2])
local wanted = {}
for i = 4, #ARGV, 3 do
  local id, due, member = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  if due >= earliest and not redis.call('ZSCORE', placed, id) then
    wanted[member] = due
  end
end
local removed = 0
for _, member in ipairs(redis.call('ZRANGE', queue, 0, -1)) do
  if wanted[member] then
    wanted[member] = nil -- already there
  else
    redis.call('ZREM', queue, member)
    removed = removed + 1
  end
end
local added = 0
for member, due in pairs(wanted) do
  redis.call('ZADD', queue, due, member)
  added = added + 1
end
redis.call('PEXPIRE', queue, ARGV[3])
redis.call('PEXPIRE', placed, ARGV[3])
return {added, removed}
