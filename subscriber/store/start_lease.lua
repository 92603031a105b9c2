-- Start a lease: one stream per box. A box that already holds a lease (live,
-- or ended within the grace period) keeps its slot, but its old lease is
-- ended here, in the same atomic step, so the old id is refused from now on
-- (a channel switch replaces the stream; it never adds one). Other boxes
-- count against the subscriber's limit.
-- The grant or the refusal is recorded in the box's helpdesk events in the same step.
-- KEYS: lease expiries (zset id -> ms), lease metadata (hash id ->
--       mac\tchannel\tstate\tregion), the box's hash (it must still be bound to this
--       subscriber), the box's events (list, newest first), the subscriber's hash (its
--       region, kept with the lease for the viewing figures); all in the carrier's slot
--       (one hash tag).
-- ARGV: now_ms, ttl_ms, limit, new id, mac, channel, subscriber id, keep_ms, events kept,
--       their TTL in ms.
-- Returns {'new', id, active count, replaced id or '', {id, meta} of each replaced lease
-- still active, region} | {'full', ids, macs} | {'moved'}.
local now, ttl, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local new_id, mac, channel, sid, keep = ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local dev = redis.call('HMGET', KEYS[3], 'sub', 'st')
if dev[1] ~= sid or not dev[2] or dev[2] == 'unbound' then return {'moved'} end
local function record(refusal, detail, id)
  redis.call('LPUSH', KEYS[4], table.concat({now, 'start_session', channel, refusal, detail, id}, '\t'))
  redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[9]) - 1)
  redis.call('PEXPIRE', KEYS[4], ARGV[10])
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
  redis.call('ZREM', KEYS[1], id); redis.call('HDEL', KEYS[2], id)
end
local metas = redis.call('HGETALL', KEYS[2])
local holders, macs, own, playing = {}, {}, {}, {}
for k = 1, #metas, 2 do
  local m = metas[k + 1]
  local box = string.sub(m, 1, string.find(m, '\t', 1, true) - 1)
  if box == mac then
    own[#own + 1] = metas[k]
    local tab2 = string.find(m, '\t', #box + 2, true)
    local tab3 = string.find(m, '\t', tab2 + 1, true)
    if string.sub(m, tab2 + 1, (tab3 or 0) - 1) == 'active' then
      playing[#playing + 1] = metas[k]; playing[#playing + 1] = m
    end
  else
    holders[#holders + 1] = metas[k]; macs[#macs + 1] = box
  end
end
if #holders >= limit then
  record('STREAM_LIMIT_REACHED',
    'stream limit ' .. limit .. ' reached (' .. table.concat(macs, ',') .. ')', '')
  return {'full', table.concat(holders, ','), table.concat(macs, ',')}
end
for _, id in ipairs(own) do
  redis.call('ZREM', KEYS[1], id); redis.call('HDEL', KEYS[2], id)
end
redis.call('ZADD', KEYS[1], now + ttl, new_id)
local region = redis.call('HGET', KEYS[5], 'r') or ''
redis.call('HSET', KEYS[2], new_id, mac .. '\t' .. channel .. '\tactive\t' .. region)
redis.call('PEXPIRE', KEYS[1], keep)
redis.call('PEXPIRE', KEYS[2], keep)
record('', '', new_id)
return {'new', new_id, #holders + 1, table.concat(own, ','), playing, region}
