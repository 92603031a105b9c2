-- One rung's member with sequence ARGV[1], or false. Members are ordered by start
-- time and publishing gives later starts higher sequence numbers, so a binary
-- search over ranks finds it in O(log n) (an out-of-order member is not found:
-- the lookup fails closed).
local want = tonumber(ARGV[1])
local lo, hi = 0, redis.call('ZCARD', KEYS[1]) - 1
while lo <= hi do
  local mid = math.floor((lo + hi) / 2)
  local member = redis.call('ZRANGE', KEYS[1], mid, mid)[1]
  local seq = tonumber(string.match(member, '^(%d+)|'))
  if seq == want then return member end
  if seq < want then lo = mid + 1 else hi = mid - 1 end
end
return false
