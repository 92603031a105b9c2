-- Guarded writes: every guard is checked, then every write runs; a failed
-- guard writes nothing and returns its (1-based) index and the current value.
-- ARGV[1] = {"g": [[kind ('h' | 'g'), key index, field, expected], ...],
--            "w": [[command, key index, arg...], ...]}
local spec = cjson.decode(ARGV[1])
for i, g in ipairs(spec['g']) do
  local cur
  if g[1] == 'h' then cur = redis.call('HGET', KEYS[g[2]], g[3])
  else cur = redis.call('GET', KEYS[g[2]]) end
  if not cur then cur = '' end
  if cur ~= g[4] then return {i, cur} end
end
for _, w in ipairs(spec['w']) do
  local args = {}
  for j = 3, #w do args[#args + 1] = w[j] end
  redis.call(w[1], KEYS[w[2]], unpack(args))
end
return {0, ''}
