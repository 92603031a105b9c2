-- One step of an alert (confirm, cancel, expire, a refused confirmation) and its change in
-- the EPG feed, in one step; refused unless the stored alert is still the version the
-- caller read, in one of the states the step starts from, and (when now_ms is given) not
-- past its confirmation time while pending.
-- KEYS: alerts ended version changes (the feed's tag)
-- ARGV: id expected_version states(comma) json ended_ms('' open) maxlen now_ms('' no check)
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return {'missing'} end
local stored = cjson.decode(raw)
if tostring(stored.version) ~= ARGV[2] then return {'conflict'} end
local allowed = false
for state in string.gmatch(ARGV[3], '[^,]+') do
  if state == stored.state then allowed = true end
end
if not allowed then return {'state', stored.state} end
if ARGV[7] ~= '' and stored.state == 'pending' and type(stored.confirm_by) == 'number'
    and tonumber(ARGV[7]) >= stored.confirm_by then
  return {'state', 'expired'}
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
if ARGV[5] == '' then redis.call('ZREM', KEYS[2], ARGV[1])
else redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1]) end
local v = redis.call('INCR', KEYS[3])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[6], v .. '-0', 'kind', 'alerts', 'ch', '',
  'deleted', '0', 'ids', ARGV[1], 'from', '', 'to', '')
return {'ok', ARGV[4]}
