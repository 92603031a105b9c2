-- Heartbeat (ARGV[4] = 'beat') or end (ARGV[4] = 'end') a live lease of the
-- calling box. A lease is bound to its box: another box's lease id is
-- 'gone' and nothing is written. An ended lease stays reserved for its box
-- for the grace period only (the extension the caller passes).
-- KEYS: lease expiries, lease metadata. ARGV: now_ms, extend_ms, id, op, mac, keep_ms.
local now, extend, id, op, mac, keep = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4],
  ARGV[5], ARGV[6]
local meta = redis.call('HGET', KEYS[2], id)
if not meta then return {'gone'} end
local tab1 = string.find(meta, '\t', 1, true)
local tab2 = string.find(meta, '\t', tab1 + 1, true)
if string.sub(meta, 1, tab1 - 1) ~= mac then return {'gone'} end
local score = redis.call('ZSCORE', KEYS[1], id)
if not score or tonumber(score) <= now then
  redis.call('ZREM', KEYS[1], id); redis.call('HDEL', KEYS[2], id)
  return {'gone'}
end
if string.sub(meta, tab2 + 1) ~= 'active' then return {'gone'} end
local channel = string.sub(meta, tab1 + 1, tab2 - 1)
redis.call('ZADD', KEYS[1], now + extend, id)
if op == 'end' then redis.call('HSET', KEYS[2], id, mac .. '\t' .. channel .. '\tended') end
-- Every lease expires within ttl of now, so keep_ms (ttl + grace + a margin) is safe.
redis.call('PEXPIRE', KEYS[1], keep)
redis.call('PEXPIRE', KEYS[2], keep)
return {'ok', channel, tostring(now + extend), redis.call('ZCARD', KEYS[1])}
