-- Give a lease up, only when it is still the caller's.
-- KEYS[1]: tc:owner:{ch}; ARGV[1]: "node|token"
-- Returns 1 when released, 0 when it was not the caller's any more.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
