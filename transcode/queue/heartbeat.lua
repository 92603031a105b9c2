-- Keep a delivery ours (reset its idle time), record progress, report a cancel.
-- KEYS: job, events, stream; ARGV: token, consumer, group, now, event fields...
-- A token is '<stream id>|<consumer>'; the stream id alone survives XAUTOCLAIM.
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
local id = string.match(ARGV[1], '^([^|]+)')
redis.call('XCLAIM', KEYS[3], ARGV[3], ARGV[2], 0, id, 'JUSTID')
if #ARGV > 4 then
  redis.call('HSET', KEYS[1], 'updated_at', ARGV[4], 'percent', ARGV[10], 'speed', ARGV[12],
             'eta', ARGV[14], 'phase', ARGV[16])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', 200, '*', unpack(ARGV, 5))
end
if redis.call('HGET', KEYS[1], 'cancel') == '1' then return 2 end
return 1
