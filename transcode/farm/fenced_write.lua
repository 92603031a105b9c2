-- A channel's writes, made only while the writer still holds the channel's lease.
-- KEYS[1]: tc:owner:{ch}; KEYS[2..]: the keys written, every one with the channel's
-- hash tag {ch} (Ownership.write checks it), so all KEYS sit in one Cluster slot
-- ARGV[1]: "node|token" the writer holds
-- ARGV[2]: JSON list of writes [command, index into KEYS, arguments...]
-- Returns 1 when written, 0 when fenced (the lease expired or another node holds it):
-- then nothing is written.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
-- ZREM, ZREMRANGEBYSCORE, PEXPIRE: a placed signal leaves the queue (transcode/live/cuequeue.py)
local allowed = {ZADD = true, HSET = true, ZREM = true, ZREMRANGEBYSCORE = true, PEXPIRE = true}
local writes = cjson.decode(ARGV[2])
for _, w in ipairs(writes) do
  if not allowed[w[1]] then
    return redis.error_reply('fenced_write: ' .. tostring(w[1]) .. ' is not allowed')
  end
end
for _, w in ipairs(writes) do
  redis.call(w[1], KEYS[w[2]], unpack(w, 3))
end
return 1
