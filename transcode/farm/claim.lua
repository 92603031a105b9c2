-- Claim a channel for a node, only when no node owns it.
-- KEYS[1]: tc:owner:{ch}; KEYS[2]: tc:fence:{ch}
-- ARGV[1]: node id; ARGV[2]: lease TTL in milliseconds
-- Returns the new fencing token (it only ever grows), or false when someone owns it.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return false
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. token, 'PX', ARGV[2])
return token
