-- Helpers every EPG write script starts with (prepended by epg.store.base.script).
-- emit: bump the version (KEYS[6]) and append the change to the stream (KEYS[7]).
local function parse(v)
  local s, t, d = string.match(v, '^(%-?%d+)|(%-?%d+)|(.*)$')
  return tonumber(s), tonumber(t), d
end
local function emit(kind, ch, deleted, ids, lo, hi)
  local v = redis.call('INCR', KEYS[6])
  redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[2], v .. '-0', 'kind', kind, 'ch', ch,
    'deleted', deleted, 'ids', table.concat(ids, ','), 'from', lo, 'to', hi)
  return v
end
