-- Record a terminal state and acknowledge, if the token still owns the job.
-- KEYS: job, events, stream; ARGV: token, group, state, reason, now, output, ttl, fields...
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
local id = string.match(ARGV[1], '^([^|]+)')
redis.call('HSET', KEYS[1], 'state', ARGV[3], 'reason', ARGV[4], 'updated_at', ARGV[5],
           'output', ARGV[6], 'token', '')
if ARGV[3] == 'SUCCEEDED' then
  redis.call('HSET', KEYS[1], 'percent', '100', 'eta', '0', 'phase', 'done')
end
redis.call('XACK', KEYS[3], ARGV[2], id)
redis.call('XDEL', KEYS[3], id)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 200, '*', unpack(ARGV, 8))
redis.call('EXPIRE', KEYS[2], ARGV[7])
return 1
