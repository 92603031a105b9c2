-- Heartbeat (ARGV[4] = 'beat') or end (ARGV[4] = 'end') a live lease of the
-- calling box. A lease is bound to its box: another box's lease id is
-- 'gone' and no lease is touched. An ended lease stays reserved for its box
-- for the grace period only (the extension the caller passes).
-- An end, granted or not, is recorded in the box's helpdesk events in the same step.
-- KEYS: lease expiries, lease metadata (mac\tchannel\tstate\tregion; a lease written
--       before regions has none), the box's events (list, newest first).
-- ARGV: now_ms, extend_ms, id, op, mac, keep_ms, events kept, their TTL in ms.
-- Returns {'gone'} | {'ok', channel, expiry ms, active count, region}.
local now, extend, id, op, mac, keep = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4],
  ARGV[5], ARGV[6]
local function record(channel, refusal)
  if op ~= 'end' then return end
  redis.call('LPUSH', KEYS[3], table.concat({now, 'end_session', channel, refusal, '', id}, '\t'))
  redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[7]) - 1)
  redis.call('PEXPIRE', KEYS[3], ARGV[8])
end
local meta = redis.call('HGET', KEYS[2], id)
if not meta then record('', 'LEASE_NOT_FOUND'); return {'gone'} end
local tab1 = string.find(meta, '\t', 1, true)
local tab2 = string.find(meta, '\t', tab1 + 1, true)
local tab3 = string.find(meta, '\t', tab2 + 1, true)
local channel = string.sub(meta, tab1 + 1, tab2 - 1)
local region = tab3 and string.sub(meta, tab3 + 1) or ''
if string.sub(meta, 1, tab1 - 1) ~= mac then record('', 'LEASE_NOT_FOUND'); return {'gone'} end
local score = redis.call('ZSCORE', KEYS[1], id)
if not score or tonumber(score) <= now then
  redis.call('ZREM', KEYS[1], id); redis.call('HDEL', KEYS[2], id)
  record(channel, 'LEASE_NOT_FOUND')
  return {'gone'}
end
if string.sub(meta, tab2 + 1, (tab3 or 0) - 1) ~= 'active' then record(channel, 'LEASE_NOT_FOUND'); return {'gone'} end
redis.call('ZADD', KEYS[1], now + extend, id)
if op == 'end' then
  redis.call('HSET', KEYS[2], id, mac .. '\t' .. channel .. '\tended\t' .. region)
end
record(channel, '')
-- Every lease expires within ttl of now, so keep_ms (ttl + grace + a margin) is safe.
redis.call('PEXPIRE', KEYS[1], keep)
redis.call('PEXPIRE', KEYS[2], keep)
return {'ok', channel, tostring(now + extend), redis.call('ZCARD', KEYS[1]), region}
