-- Cancel a queued job now, or flag a running one and tell its worker.
-- KEYS: job, events, delayed; ARGV: job id, now, pub/sub channel
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing'} end
if state == 'QUEUED' then
  redis.call('HSET', KEYS[1], 'state', 'CANCELLED', 'reason', 'cancelled before it started',
             'updated_at', ARGV[2], 'cancel', '1')
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', 200, '*', 'state', 'CANCELLED',
             'reason', 'cancelled before it started', 'percent', '0', 'speed', '0', 'eta', '0',
             'phase', '')
  return {'CANCELLED'}
end
if state == 'RUNNING' then
  redis.call('HSET', KEYS[1], 'cancel', '1')
  redis.call('PUBLISH', ARGV[3], ARGV[1])
end
return {state}
