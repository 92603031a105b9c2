-- The playback decision for the asks of one carrier, in Redis, so the hot path
-- moves two small values per ask instead of two hashes. The MAC index (its own
-- slot) already named each box's subscriber, so every key here carries the
-- carrier's hash tag. It mirrors subscriber.domain.decide check for check (a
-- test holds them equal).
-- Each decision on a box the carrier holds (or held) is also recorded in the box's
-- helpdesk events (sub:{c}:ev:<mac>, the latest ARGV[1] for ARGV[2] ms), here, so
-- recording costs the hot path no round trip.
-- KEYS: the carrier's hash, then per ask the box's hash and the subscriber's hash.
-- ARGV: events kept, their TTL in ms, then per ask: subscriber id, at_ms, the packages
--   carrying the channel as ',a,b,' ('' = none) from the catalogue the caller holds,
--   the channel id and now_ms ('' = not recorded: the caller does not see the box).
-- Returns per ask: reason ('' = allowed), version ('' = no such box or account:
-- the box moved or its account is gone).
local out = {}
local sub, find = string.sub, string.find
local kept, ttl = tonumber(ARGV[1]), ARGV[2]
-- The carrier's key prefix 'sub:{c}:' (its hash is 'sub:{c}:carrier').
local prefix = sub(KEYS[1], 1, #KEYS[1] - 7)
local active = redis.call('HGET', KEYS[1], 's') == 'active'
for i = 1, (#ARGV - 2) / 5 do
  local a = 5 * i - 2
  local sid, at, packages = ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2]
  local dev = redis.call('HMGET', KEYS[2 * i], 'st', 'sub')
  local flat = redis.call('HGETALL', KEYS[2 * i + 1])
  local st = dev[1]
  local reason, version = 'UNKNOWN_DEVICE', ''
  if st and dev[2] == sid and flat[1] ~= nil then
    local s = {}
    for k = 1, #flat, 2 do s[flat[k]] = flat[k + 1] end
    version = s['v']
    if st == 'unbound' then reason = 'UNKNOWN_DEVICE'
    elseif st == 'blocked' then reason = 'DEVICE_BLOCKED'
    elseif not active then reason = 'CARRIER_NOT_ACTIVE'
    elseif s['s'] == 'terminated' then reason = 'SUBSCRIBER_TERMINATED'
    elseif s['s'] == 'suspended' then reason = 'SUBSCRIBER_SUSPENDED'
    elseif (s['e'] or '') ~= '' and at >= tonumber(s['e']) then reason = 'SERVICE_EXPIRED'
    else
      reason = 'NOT_ENTITLED'
      for k = 1, #flat, 2 do
        local f = flat[k]
        if sub(f, 1, 4) == 'ent:' then
          local w = flat[k + 1]
          local bar = find(w, '|', 1, true)
          local from, untl = tonumber(sub(w, 1, bar - 1)), sub(w, bar + 1)
          if from <= at and (untl == '' or at < tonumber(untl))
            and find(packages, ',' .. sub(f, 5) .. ',', 1, true) then
            reason = ''
            break
          end
        end
      end
    end
  end
  if st and ARGV[a + 4] ~= '' then
    local events = prefix .. 'ev:' .. sub(KEYS[2 * i], #prefix + 3)
    redis.call('LPUSH', events, ARGV[a + 4] .. '\tauthorize\t' .. ARGV[a + 3] .. '\t' .. reason .. '\t\t')
    redis.call('LTRIM', events, 0, kept - 1)
    redis.call('PEXPIRE', events, ttl)
  end
  out[#out + 1] = reason; out[#out + 1] = version
end
return out
