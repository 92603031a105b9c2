-- One call upserts a batch of import rows of one carrier. Each row is checked
-- completely before any of its writes, so a refused row leaves nothing behind.
-- The MAC index is not here (its entries are other slots): the caller claimed
-- each row's MAC before and says what it found; it keeps or drops the claims after.
-- KEYS: the carrier's subscriber set, its audit stream, its counts (status -> subscribers,
-- moved here with every new subscriber and status change).
-- ARGV: principal, now_ms, audit maxlen, one JSON argument for the whole
-- batch: [[id, [field, value, ...], mac, serial, model], ...], and one
-- character per row for its MAC: 'n' (claimed for this row), 'o' (the index
-- names this subscriber already), 't' (taken) or '-' (no MAC).
-- Returns per row: 'c' created, 'u' updated, 'n' unchanged, 'e<field>\t<error>';
-- 'c' and 'u' end in 'b' when the row bound its box (the claim is to be kept).
local sub, find = string.sub, string.find
local principal, now, maxlen = ARGV[1], ARGV[2], ARGV[3]
local subs, audit = KEYS[1], KEYS[2]
-- The subscriber and box keys share KEYS[1]'s hash tag: its prefix 'sub:{c}:'.
local prefix = sub(subs, 1, #subs - 4)
local out = {}
local states = ARGV[5]
for n, row in ipairs(cjson.decode(ARGV[4])) do
  local sid, want, mac, serial, model = row[1], row[2], row[3], row[4], row[5]
  local state = sub(states, n, n)
  local skey = prefix .. 's:' .. sid
  local flat = redis.call('HGETALL', skey)
  local cur = {}
  for k = 1, #flat, 2 do cur[flat[k]] = flat[k + 1] end
  local exists = flat[1] ~= nil
  local sets, before, after = {}, {}, {}
  for k = 1, #want, 2 do
    local f, v = want[k], want[k + 1]
    if sub(f, 1, 4) == 'ent:' and sub(v, 1, 1) == '|' then
      -- no explicit start: keep the stored one so a re-run changes nothing
      local old = cur[f]
      local start = now
      if old then start = sub(old, 1, find(old, '|', 1, true) - 1) end
      v = start .. v
    end
    if cur[f] ~= v then
      if cur[f] then before[f] = cur[f] end
      after[f] = v
      sets[#sets + 1] = f; sets[#sets + 1] = v
    end
  end
  local err = false
  local dkey, bind, devsets = false, false, {}
  if mac ~= '' then
    dkey = prefix .. 'd:' .. mac
    local d = {}
    if state == 'o' then d = redis.call('HMGET', dkey, 'sn', 'md', 'sub', 'st') end
    if state == 't' then
      err = 'mac\tMAC address is already bound'
    elseif state == 'n' or d[3] ~= sid or not d[4] or d[4] == 'unbound' then
      -- a new binding, or our own index entry whose binding never got written
      bind = true
      sets[#sets + 1] = 'dev:' .. mac; sets[#sets + 1] = '1'
      after['dev:' .. mac] = serial .. '/' .. model
    elseif d[1] ~= serial or d[2] ~= model then
      devsets = {'sn', serial, 'md', model}
      before['dev:' .. mac] = (d[1] or '') .. '/' .. (d[2] or '')
      after['dev:' .. mac] = serial .. '/' .. model
    end
  end
  local changed = #sets > 0 or #devsets > 0
  if not err and changed and exists and cur['s'] == 'terminated' then
    err = 'status\tsubscriber is terminated'
  end
  if err then
    out[#out + 1] = 'e' .. err
  elseif not changed then
    out[#out + 1] = 'n'
  else
    local v = 1
    if exists then v = tonumber(cur['v']) + 1 else sets[#sets + 1] = 'c'; sets[#sets + 1] = now end
    sets[#sets + 1] = 'v'; sets[#sets + 1] = tostring(v)
    sets[#sets + 1] = 'u'; sets[#sets + 1] = now
    redis.call('HSET', skey, unpack(sets))
    if not exists then redis.call('ZADD', subs, 0, sid) end
    if after['s'] then
      if exists then redis.call('HINCRBY', KEYS[3], cur['s'], -1) end
      redis.call('HINCRBY', KEYS[3], after['s'], 1)
    end
    if bind then
      redis.call('DEL', dkey)
      redis.call('HSET', dkey, 'sub', sid, 'sn', serial, 'md', model, 'st', 'bound', 'b', now)
    elseif #devsets > 0 then
      redis.call('HSET', dkey, unpack(devsets))
    end
    local b = ''
    if exists then b = cjson.encode(before) end
    redis.call('XADD', audit, 'MAXLEN', '~', maxlen, '*', 'p', principal,
      'r', 'ImportSubscribers', 't', now, 's', 'subscriber/' .. sid,
      'b', b, 'a', cjson.encode(after))
    local code = 'c'
    if exists then code = 'u' end
    if bind then code = code .. 'b' end
    out[#out + 1] = code
  end
end
return out
