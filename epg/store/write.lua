-- Write a validated, ordered, non-overlapping batch of programmes to one channel.
-- KEYS: record idx data rights seq out (one channel; claim.lua reserved the ids first)
-- ARGV: channel sent policy n, then chunks of up to ROWS_PER_ARG programme rows
-- "id^_start^_stop^_rights^_data" joined by ^^ (^_ = \x1f and ^^ = \x1e, which JSON
-- always escapes, so neither occurs inside a field). A few large arguments instead of
-- one per programme keep the client's per-argument packing off the import path;
-- chunking keeps each argument far below Redis's bulk-string limit.
if redis.call('EXISTS', KEYS[1]) == 0 then return {'nochannel'} end
local policy, n = ARGV[3], tonumber(ARGV[4])
local new, newids, idlist = {}, {}, {}
local FIELDS = '^([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31(.*)$'
local keep_rights = true
for i = 5, #ARGV do
  for row in string.gmatch(ARGV[i], '[^\30]+') do
    local id, s, t, r, d = string.match(row, FIELDS)
    local e = {id = id, s = tonumber(s), t = tonumber(t), d = d, r = r}
    new[#new + 1] = e
    newids[id] = true
    idlist[#idlist + 1] = id
    if r ~= '' then keep_rights = false end
  end
end
if #new ~= n then return redis.error_reply('malformed programme rows') end
-- Bulk reads and writes: one call per 1000 items instead of one per programme.
local function hmget(key, ids)
  local out = {}
  for i = 1, #ids, 1000 do
    local part = redis.call('HMGET', key, unpack(ids, i, math.min(i + 999, #ids)))
    for x = 1, #part do out[#out + 1] = part[x] end
  end
  return out
end
local function bulk(cmd, key, args)
  for i = 1, #args, 1000 do
    redis.call(cmd, key, unpack(args, i, math.min(i + 999, #args)))
  end
end
-- The batch is sorted and free of overlaps, and so is the stored schedule: the
-- only stored programmes it can overlap start inside [first start, last stop)
-- or are the single one starting before that window.
local conflicts, order, pairs_ = {}, {}, {}
if n > 0 then
  local cands = redis.call('ZREVRANGEBYSCORE', KEYS[2], '(' .. new[1].s, '-inf', 'LIMIT', 0, 1)
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], new[1].s, '(' .. new[n].t)) do
    cands[#cands + 1] = id
  end
  local others = {}
  for _, id in ipairs(cands) do
    if not newids[id] then others[#others + 1] = id end
  end
  local vals = hmget(KEYS[3], others)
  local j = 1
  for x, id in ipairs(others) do
    local s, t, d = parse(vals[x])
    while j <= n and new[j].t <= s do j = j + 1 end
    local k = j
    while k <= n and new[k].s < t do
      local e = new[k]
      if not conflicts[id] then
        conflicts[id] = {s = s, t = t, d = d, lo = e.s, hi = e.t}
        order[#order + 1] = id
      else
        local c = conflicts[id]
        if e.s < c.lo then c.lo = e.s end
        if e.t > c.hi then c.hi = e.t end
      end
      pairs_[#pairs_ + 1] = e.id .. '>' .. id
      k = k + 1
    end
  end
end
if #order > 0 and policy ~= 'replace' then
  return {'conflict', order, pairs_}
end
local curs = hmget(KEYS[3], idlist)
local rights = {}
if not keep_rights then rights = hmget(KEYS[4], idlist) end
local changed, unchanged = {}, {}
for x, e in ipairs(new) do
  local val = e.s .. '|' .. e.t .. '|' .. e.d
  local cur = curs[x]
  local same = cur == val
  if same and e.r ~= '' then
    local r = rights[x]
    if e.r == '-' then same = not r else same = r == e.r end
  end
  if same then unchanged[#unchanged + 1] = e.id else
    e.val, e.cur = val, cur
    changed[#changed + 1] = e
  end
end
local removed, trimmed, ids = {}, {}, {}
local lo, hi = nil, nil
local function widen(s, t)
  if not lo or s < lo then lo = s end
  if not hi or t > hi then hi = t end
end
for _, id in ipairs(order) do
  local c = conflicts[id]
  widen(c.s, c.t)
  ids[#ids + 1] = id
  if c.s < c.lo then
    redis.call('HSET', KEYS[3], id, c.s .. '|' .. c.lo .. '|' .. c.d)
    trimmed[#trimmed + 1] = id
  elseif c.t > c.hi then
    redis.call('HSET', KEYS[3], id, c.hi .. '|' .. c.t .. '|' .. c.d)
    redis.call('ZADD', KEYS[2], c.hi, id)
    trimmed[#trimmed + 1] = id
  else
    redis.call('ZREM', KEYS[2], id)
    redis.call('HDEL', KEYS[3], id)
    redis.call('HDEL', KEYS[4], id)
    removed[#removed + 1] = id
  end
end
local written, zargs, dargs, rset, rdel = {}, {}, {}, {}, {}
for _, e in ipairs(changed) do
  if e.cur then
    local s, t = parse(e.cur)
    widen(s, t)
  end
  widen(e.s, e.t)
  zargs[#zargs + 1] = e.s
  zargs[#zargs + 1] = e.id
  dargs[#dargs + 1] = e.id
  dargs[#dargs + 1] = e.val
  if e.r == '-' then rdel[#rdel + 1] = e.id
  elseif e.r ~= '' then
    rset[#rset + 1] = e.id
    rset[#rset + 1] = e.r
  end
  written[#written + 1] = e.id
  ids[#ids + 1] = e.id
end
bulk('ZADD', KEYS[2], zargs)
bulk('HSET', KEYS[3], dargs)
bulk('HSET', KEYS[4], rset)
bulk('HDEL', KEYS[4], rdel)
local seq = 0
if #ids > 0 then seq = record('programmes', 0, ids, lo, hi, removed, '') end
return {'ok', seq, written, unchanged, removed, trimmed, outbox()}
