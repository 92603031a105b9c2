-- Helpers every EPG channel script starts with (prepended by epg.store.base.lua).
-- KEYS: record idx data rights seq out, all of one channel (one hash tag);
-- ARGV[1] the channel, ARGV[2] the last change number the feed has from it.
local function parse(v)
  local s, t, d = string.match(v, '^(%-?%d+)|(%-?%d+)|(.*)$')
  return tonumber(s), tonumber(t), d
end
-- record: number the change (KEYS[5]) and keep it in the channel's outbox (KEYS[6]) until
-- the feed has it (emit.lua). released: ids the channel no longer holds.
local function record(kind, deleted, ids, lo, hi, released, json)
  local seq = redis.call('INCR', KEYS[5])
  redis.call('XADD', KEYS[6], seq .. '-0', 'kind', kind, 'deleted', deleted,
    'ids', table.concat(ids, ','), 'from', lo, 'to', hi,
    'released', table.concat(released, ','), 'json', json)
  return seq
end
-- outbox: the changes the feed may not have yet, oldest first, 8 fields each (seq kind
-- deleted ids from to released json). A released id the channel holds again is left
-- out of released: its reservation must stay.
local function outbox()
  redis.call('XTRIM', KEYS[6], 'MINID', (tonumber(ARGV[2]) + 1) .. '-0')
  local out = {}
  for _, entry in ipairs(redis.call('XRANGE', KEYS[6], '-', '+')) do
    local f = {}
    for i = 1, #entry[2], 2 do f[entry[2][i]] = entry[2][i + 1] end
    local free = {}
    for id in string.gmatch(f.released, '[^,]+') do
      if redis.call('HEXISTS', KEYS[3], id) == 0 then free[#free + 1] = id end
    end
    out[#out + 1] = string.match(entry[1], '^(%d+)')
    out[#out + 1] = f.kind
    out[#out + 1] = f.deleted
    out[#out + 1] = f.ids
    out[#out + 1] = f.from
    out[#out + 1] = f.to
    out[#out + 1] = table.concat(free, ',')
    out[#out + 1] = f.json
  end
  return out
end
