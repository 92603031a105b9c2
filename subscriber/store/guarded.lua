-- Guarded writes: every guard is checked, then every write runs; a failed
-- guard writes nothing and returns its (1-based) index and the current value.
-- ARGV[1] = {"g": [[key index, hash field, expected ('' = absent)], ...],
--            "w": [[command, key index, arg...], ...],
--            "i": [key index, token, step] (optional)}
-- A guard [key index, '', expected, 'len'] compares the hash's field count instead.
-- With "i" the writes are step `step` of the idempotent request whose claim (the JSON
-- record at that key) carries `token`: the step is marked applied in the claim, in this
-- same script, and a step already marked (the call sent again after a lost reply)
-- returns success without writing twice.
local spec = cjson.decode(ARGV[1])
local mark = spec['i']
local record = nil
if mark then
  local raw = redis.call('GET', KEYS[mark[1]])
  if raw then
    record = cjson.decode(raw)
    if record['t'] ~= mark[2] then
      record = nil
    elseif record['a'] ~= nil and record['a'] ~= cjson.null then
      for _, step in ipairs(record['a']) do
        if step == mark[3] then return {0, ''} end
      end
    end
  end
end
for i, g in ipairs(spec['g']) do
  local cur
  if g[4] == 'len' then
    cur = tostring(redis.call('HLEN', KEYS[g[1]]))
  else
    cur = redis.call('HGET', KEYS[g[1]], g[2]) or ''
  end
  if cur ~= g[3] then return {i, cur} end
end
for _, w in ipairs(spec['w']) do
  local args = {}
  for j = 3, #w do args[#args + 1] = w[j] end
  redis.call(w[1], KEYS[w[2]], unpack(args))
end
if record then
  local applied = record['a']
  if applied == nil or applied == cjson.null then applied = {} end
  applied[#applied + 1] = mark[3]
  record['a'] = applied
  redis.call('SET', KEYS[mark[1]], cjson.encode(record), 'KEEPTTL')
end
return {0, ''}
