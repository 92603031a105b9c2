-- One rate-limit operation on one key, atomically. Every key shares one hash
-- tag ({name:key}), so this runs on Redis Cluster too.
-- KEYS: hits (zset: attempt -> ms), fails (zset: failure -> ms), lock (string: until ms).
-- ARGV: op ('hit' | 'fail' | 'check' | 'succeed' | 'clear'), now_ms ('' = Redis TIME),
--       window_ms, limit, lockout_after (0 = no lockout), lockout_ms, a unique member.
-- Returns {allowed 0/1, retry_after_ms, remaining, locked 0/1}.
local hits, fails, lock = KEYS[1], KEYS[2], KEYS[3]
local op = ARGV[1]
local now
if ARGV[2] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
else
  now = tonumber(ARGV[2])
end
local window, limit = tonumber(ARGV[3]), tonumber(ARGV[4])
local after, lockout, member = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
local since = now - window

-- The lock's value is its end, so a lock ends on the caller's clock as well
-- as by its TTL (which only bounds how long Redis keeps it).
local function lock_left()
  local untl = tonumber(redis.call('GET', lock) or '')
  if untl == nil or untl <= now then return 0 end
  return untl - now
end

if op == 'clear' then
  local was = lock_left()
  redis.call('DEL', hits, fails, lock)
  if was > 0 then return {1, 0, limit, 1} end
  return {1, 0, limit, 0}
end
if op == 'succeed' then
  redis.call('DEL', fails)
  return {1, 0, after, 0}
end

local left = lock_left()
if left > 0 then return {0, left, 0, 1} end

if op == 'fail' then
  redis.call('ZREMRANGEBYSCORE', fails, '-inf', since)
  redis.call('ZADD', fails, now, member)
  local count = redis.call('ZCARD', fails)
  if count >= after then
    redis.call('DEL', fails)
    redis.call('SET', lock, tostring(now + lockout), 'PX', lockout)
    return {0, lockout, 0, 1}
  end
  redis.call('PEXPIRE', fails, window)
  return {1, 0, after - count, 0}
end

-- 'hit' and 'check': a sliding window over the attempts log.
local count
if op == 'hit' then
  redis.call('ZREMRANGEBYSCORE', hits, '-inf', since)
  count = redis.call('ZCARD', hits)
else
  count = redis.call('ZCOUNT', hits, '(' .. since, '+inf')
end
if count >= limit then
  local oldest = redis.call('ZRANGEBYSCORE', hits, '(' .. since, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  local retry = 1
  if oldest[2] then retry = math.max(tonumber(oldest[2]) + window - now, 1) end
  return {0, retry, 0, 0}
end
if op == 'hit' then
  redis.call('ZADD', hits, now, member)
  redis.call('PEXPIRE', hits, window)
  count = count + 1
end
return {1, 0, limit - count, 0}
