-- Hand a channel's lease to another node, only while it is still the caller's.
-- KEYS[1]: tc:owner:{ch}; KEYS[2]: tc:fence:{ch}; KEYS[3]: tc:handover:{ch}
-- ARGV[1]: "node|token" the caller holds; ARGV[2]: the new owner's node id;
-- ARGV[3]: lease TTL in milliseconds
-- Returns the new owner's token (a new, higher one), or false when the caller no longer
-- holds the lease (then nothing changes). The handover record is removed either way.
redis.call('DEL', KEYS[3])
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return false
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[2] .. '|' .. token, 'PX', ARGV[3])
return token
