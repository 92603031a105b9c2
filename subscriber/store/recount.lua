-- A carrier's subscriber counts, counted from its subscribers once: for counts that
-- predate their upkeep (data stored before the scripts kept them). Counts whose field
-- 'ready' is set are kept up to date by every write and are returned as they are.
-- One script, so no write interleaves with the scan; it reads every subscriber of the
-- carrier once (about a second per million), then never again.
-- KEYS: the carrier's subscriber set, its counts. Returns the counts, flat (HGETALL).
if redis.call('HEXISTS', KEYS[2], 'ready') == 1 then return redis.call('HGETALL', KEYS[2]) end
-- The subscriber hashes share KEYS[1]'s hash tag: its prefix 'sub:{c}:'.
local prefix = string.sub(KEYS[1], 1, #KEYS[1] - 4)
local counts, total, chunk = {}, redis.call('ZCARD', KEYS[1]), 10000
for start = 0, total - 1, chunk do
  for _, sid in ipairs(redis.call('ZRANGE', KEYS[1], start, start + chunk - 1)) do
    local status = redis.call('HGET', prefix .. 's:' .. sid, 's')
    if status then counts[status] = (counts[status] or 0) + 1 end
  end
end
redis.call('DEL', KEYS[2])
local flat = {'ready', '1'}
for status, n in pairs(counts) do flat[#flat + 1] = status; flat[#flat + 1] = tostring(n) end
redis.call('HSET', KEYS[2], unpack(flat))
return redis.call('HGETALL', KEYS[2])
