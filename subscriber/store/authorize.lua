-- The playback decision for the asks of one carrier, in Redis, so the hot path
-- moves two small values per ask instead of two hashes. The MAC index (its own
-- slot) already named each box's subscriber, so every key here carries the
-- carrier's hash tag. It mirrors subscriber.domain.decide check for check (a
-- test holds them equal).
-- KEYS: the carrier's hash, then per ask the box's hash and the subscriber's hash.
-- ARGV per ask: subscriber id, at_ms, the packages carrying the channel as
--   ',a,b,' ('' = none), from the catalogue the caller holds.
-- Returns per ask: reason ('' = allowed), version ('' = no such box or account:
-- the box moved or its account is gone).
local out = {}
local sub, find = string.sub, string.find
local active = redis.call('HGET', KEYS[1], 's') == 'active'
for i = 1, #ARGV / 3 do
  local sid, at, packages = ARGV[3 * i - 2], tonumber(ARGV[3 * i - 1]), ARGV[3 * i]
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
  out[#out + 1] = reason; out[#out + 1] = version
end
return out
