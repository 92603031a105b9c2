-- Fail the job for good and move it to the dead-letter stream.
-- KEYS: job, events, stream, dead stream; ARGV: token, group, reason, now, job id, ttl
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
local id = string.match(ARGV[1], '^([^|]+)')
local n = redis.call('HGET', KEYS[1], 'deliveries')
local reason = 'dead-lettered after ' .. n .. ' deliveries: ' .. ARGV[3]
redis.call('HSET', KEYS[1], 'state', 'FAILED', 'reason', reason, 'last_error', ARGV[3],
           'updated_at', ARGV[4], 'token', '')
redis.call('XADD', KEYS[4], '*', 'job', ARGV[5], 'reason', reason, 'deliveries', n)
redis.call('XACK', KEYS[3], ARGV[2], id)
redis.call('XDEL', KEYS[3], id)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 200, '*', 'state', 'FAILED', 'reason', reason,
           'percent', '0', 'speed', '0', 'eta', '0', 'phase', '')
redis.call('EXPIRE', KEYS[2], ARGV[6])
return 1
