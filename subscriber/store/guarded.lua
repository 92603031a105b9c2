-- Guarded writes: every guard is checked, then every write runs; a failed
-- guard writes nothing and returns its (1-based) index and the current value.
-- ARGV[1] = {"g": [[key index, hash field, expected ('' = absent)], ...],
--            "w": [[command, key index, arg...], ...]}
local spec = cjson.decode(ARGV[1])
for i, g in ipairs(spec['g']) do
  local cur = redis.call('HGET', KEYS[g[1]], g[2]) or ''
  if cur ~= g[3] then return {i, cur} end
end
for _, w in ipairs(spec['w']) do
  local args = {}
  for j = 3, #w do args[#args + 1] = w[j] end
  redis.call(w[1], KEYS[w[2]], unpack(args))
end
return {0, ''}
