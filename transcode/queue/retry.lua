-- Acknowledge a failed attempt and schedule the job again after its backoff.
-- KEYS: job, events, stream, delayed
-- ARGV: token, group, reason, now, due, job id, event fields...
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
local id = string.match(ARGV[1], '^([^|]+)')
redis.call('HSET', KEYS[1], 'state', 'QUEUED', 'last_error', ARGV[3], 'reason', ARGV[3],
           'updated_at', ARGV[4], 'token', '', 'phase', 'retry', 'queued_id', '')
redis.call('XACK', KEYS[3], ARGV[2], id)
redis.call('XDEL', KEYS[3], id)
redis.call('ZADD', KEYS[4], ARGV[5], ARGV[6])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 200, '*', unpack(ARGV, 7))
return 1
