-- Extend a lease, only while it is still the caller's.
-- KEYS[1]: tc:owner:{ch}; ARGV[1]: "node|token"; ARGV[2]: lease TTL in milliseconds
-- Returns 1 when renewed, 0 when the lease is gone or someone else's.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
