-- Record why a reclaimed delivery's worker vanished.
-- KEYS: job; ARGV: message id, reason
if redis.call('HGET', KEYS[1], 'state') == 'RUNNING' then
  redis.call('HSET', KEYS[1], 'last_error', ARGV[2])
end
return 1
