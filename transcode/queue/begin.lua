-- Count a delivery and mark its job RUNNING, or skip / dead-letter it.
-- KEYS: job, events, stream, dead stream
-- ARGV: message id, consumer, now, max deliveries, group, events ttl, job id
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  redis.call('XACK', KEYS[3], ARGV[5], ARGV[1])
  redis.call('XDEL', KEYS[3], ARGV[1])
  return {'skip', 'job hash missing'}
end
if state == 'SUCCEEDED' or state == 'FAILED' or state == 'CANCELLED' then
  redis.call('XACK', KEYS[3], ARGV[5], ARGV[1])
  redis.call('XDEL', KEYS[3], ARGV[1])
  return {'skip', state}
end
local queued = redis.call('HGET', KEYS[1], 'queued_id')
if queued and queued ~= '' and queued ~= ARGV[1] then
  -- A message left from before a retry (requeue.lua): the retry's own message runs it.
  redis.call('XACK', KEYS[3], ARGV[5], ARGV[1])
  redis.call('XDEL', KEYS[3], ARGV[1])
  return {'skip', 'superseded'}
end
if redis.call('HGET', KEYS[1], 'cancel') == '1' then
  -- Cancel was asked while its worker was dying: honour it instead of running again.
  redis.call('HSET', KEYS[1], 'state', 'CANCELLED', 'reason', 'cancelled by request',
             'updated_at', ARGV[3], 'token', '')
  redis.call('XACK', KEYS[3], ARGV[5], ARGV[1])
  redis.call('XDEL', KEYS[3], ARGV[1])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', 200, '*', 'state', 'CANCELLED',
             'reason', 'cancelled by request', 'percent', '0', 'speed', '0', 'eta', '0',
             'phase', '')
  return {'skip', 'CANCELLED'}
end
local n = redis.call('HINCRBY', KEYS[1], 'deliveries', 1)
if n > tonumber(ARGV[4]) then
  local last = redis.call('HGET', KEYS[1], 'last_error') or ''
  local reason = 'dead-lettered after ' .. (n - 1) .. ' deliveries: ' .. last
  redis.call('HSET', KEYS[1], 'state', 'FAILED', 'reason', reason, 'updated_at', ARGV[3],
             'deliveries', n - 1, 'token', '')
  redis.call('XADD', KEYS[4], '*', 'job', ARGV[7], 'reason', reason,
             'deliveries', n - 1)
  redis.call('XACK', KEYS[3], ARGV[5], ARGV[1])
  redis.call('XDEL', KEYS[3], ARGV[1])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', 200, '*', 'state', 'FAILED', 'reason', reason,
             'percent', '0', 'speed', '0', 'eta', '0', 'phase', '')
  redis.call('EXPIRE', KEYS[2], ARGV[6])
  return {'dead', reason}
end
redis.call('HSET', KEYS[1], 'state', 'RUNNING', 'worker', ARGV[2],
           'token', ARGV[1] .. '|' .. ARGV[2],
           'updated_at', ARGV[3], 'percent', '0', 'speed', '0', 'eta', '0', 'phase', 'starting')
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 200, '*', 'state', 'RUNNING', 'reason', '',
           'percent', '0', 'speed', '0', 'eta', '0', 'phase', 'starting')
return {'run', ''}
