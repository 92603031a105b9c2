-- First step of every change to a channel: reserve the programme ids it writes for that
-- channel (ids are unique across channels) and note the change as on its way to the feed.
-- KEYS: prog pending sent version (the feed's tag); ARGV: channel, ids...
-- prog: id -> "channel" or "channel|stamp" (reserved by the claim with that stamp, see
-- release.lua). pending: channel -> "in-flight changes|stamp of the newest" (stale.lua).
local ch = ARGV[1]
local ids = {}
for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
local fresh = {}
local now = redis.call('TIME')
local stamp = now[1] .. string.format('%06d', tonumber(now[2]))
local mine = ch .. '|' .. stamp
for i = 1, #ids, 1000 do
  local part = {unpack(ids, i, math.min(i + 999, #ids))}
  local owners = redis.call('HMGET', KEYS[1], unpack(part))
  for x, id in ipairs(part) do
    local owner = owners[x] and string.match(owners[x], '^[^|]*')
    if owner and owner ~= ch then return {'idinuse', id, owner} end
    if not owner then
      fresh[#fresh + 1] = id
      fresh[#fresh + 1] = mine
    end
  end
end
for i = 1, #fresh, 1000 do
  redis.call('HSET', KEYS[1], unpack(fresh, i, math.min(i + 999, #fresh)))
end
local inflight = tonumber(string.match(redis.call('HGET', KEYS[2], ch) or '0', '^%d+'))
redis.call('HSET', KEYS[2], ch, (inflight + 1) .. '|' .. stamp)
local sent = string.match(redis.call('HGET', KEYS[3], ch) or '0', '^%d+')
return {'ok', stamp, sent, redis.call('GET', KEYS[4]) or '0'}
