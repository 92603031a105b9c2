-- Steps on MAC index entries (platform-wide; each entry is its own slot, so on
-- a cluster one call takes the keys of one slot, on one Redis any number).
-- Every step is a compare-and-set: it names the exact entry it saw or wrote,
-- so a step of one change never undoes another change's entry.
-- KEYS: the entries. ARGV: claim_ms, and one JSON argument with per key
-- [op, entry, stale entry] (redis-py packs one argument faster than thousands).
-- 'claim': write `entry` as a pending claim that lapses after claim_ms, if the
--          key is free or still holds `stale` ('' = none) with no expiry (a
--          left-over entry the caller found naming no bound box).
-- 'keep':  make our pending claim `entry` permanent (its box is bound).
-- 'drop':  delete `entry`.
-- Returns per key: 1 if done, else the entry found ('' = none).
local out = {}
local steps = cjson.decode(ARGV[2])
for i, key in ipairs(KEYS) do
  local op, entry, stale = steps[i][1], steps[i][2], steps[i][3]
  local cur = redis.call('GET', key)
  local done = 0
  if op == 'claim' then
    if not cur or (cur == stale and redis.call('PTTL', key) == -1) then
      redis.call('SET', key, entry, 'PX', ARGV[1])
      done = 1
    end
  elseif cur == entry then
    if op == 'keep' then redis.call('PERSIST', key) else redis.call('DEL', key) end
    done = 1
  end
  if done == 1 then out[i] = 1 else out[i] = cur or '' end
end
return out
