-- The viewing figures of one cell (a channel, a carrier, a region, or a combination
-- of them), kept as its leases progress. Every key is the cell's (one hash tag); the
-- per-bucket keys are built from the tag of KEYS[1].
-- KEYS: live leases (hash id -> mac\tcredited_ms\tchannel\tcarrier\tregion), their
--       expiries (zset id -> ms), the last hour seen (string), and for a carrier cell
--       the raw lease log (stream; absent for other cells).
-- ARGV: keep_ms (bucket hashes outlive their day by it), set_keep_ms (the box sets
--       outlive their bucket by it, and always live that long after a write, so a box
--       seen late is not counted twice), log_ms (the log keeps entries this long, by
--       the server's clock, which names its entries), then per event six values: op
--       ('s' start, 'b' heartbeat, 'e' end, 'x' sweep the expired), lease id, mac,
--       at_ms, expires_ms, 'channel\tcarrier\tregion'.
-- Per day hash d:<day_ms>: w<h> watch ms, u<h> distinct boxes, p<h> peak live leases
-- of hour h (0-23), u distinct boxes of the day. Returns the live leases after.
local H, D = 3600000, 86400000
local find, sub = string.find, string.sub
local live, exp, hourkey, log = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local prefix = sub(live, 1, #live - 4)
local keep, set_keep, log_ms = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local n = redis.call('HLEN', live)
local last = tonumber(redis.call('GET', hourkey) or '-1')
local expiring = {}
local clock = redis.call('TIME')
local server_ms = clock[1] * 1000

local function expire(key, at)
  if not expiring[key] then redis.call('PEXPIREAT', key, at); expiring[key] = true end
end

local function day_of(hour)
  local day = hour - hour % D
  return prefix .. 'd:' .. day, day, (hour - day) / H
end

local function peak(hour, value)
  local key, day, h = day_of(hour)
  if value > tonumber(redis.call('HGET', key, 'p' .. h) or '0') then
    redis.call('HSET', key, 'p' .. h, value)
    expire(key, day + D + keep)
  end
end

local function seen(hour, mac)
  local key, day, h = day_of(hour)
  local hour_set, day_set = prefix .. 'u:' .. hour, prefix .. 'ud:' .. day
  if redis.call('SADD', hour_set, mac) == 1 then
    redis.call('HINCRBY', key, 'u' .. h, 1)
    expire(hour_set, math.max(hour + H, server_ms) + set_keep)
  end
  if redis.call('SADD', day_set, mac) == 1 then
    redis.call('HINCRBY', key, 'u', 1)
    expire(day_set, math.max(day + D, server_ms) + set_keep)
  end
  expire(key, day + D + keep)
end

-- Watch time from..to, split at hour boundaries; the box is seen in every hour it touches.
local function credit(from, to, mac)
  while from < to do
    local hour = from - from % H
    local upto = math.min(to, hour + H)
    local key, _, h = day_of(hour)
    redis.call('HINCRBY', key, 'w' .. h, upto - from)
    seen(hour, mac)
    from = upto
  end
end

-- The leases live when an hour begins are its first candidate peak: every hour since the
-- last one seen carries the count it had (nothing changed it in between).
local function carry(at)
  local hour = at - at % H
  if hour <= last then return end
  if n > 0 and last >= 0 then
    for h = math.max(last + H, hour - keep), hour, H do peak(h, n) end
  end
  last = hour
  redis.call('SET', hourkey, hour, 'PX', keep)
end

local function logged(op, id, mac, info, at, left)
  if not log then return end
  local t1 = find(info, '\t', 1, true)
  local t2 = find(info, '\t', t1 + 1, true)
  redis.call('XADD', log, 'MINID', '~', server_ms - log_ms, '*', 'op', op, 'lease', id, 'mac', mac,
    'channel', sub(info, 1, t1 - 1), 'carrier', sub(info, t1 + 1, t2 - 1),
    'region', sub(info, t2 + 1), 'at', at, 'left', left)
end

-- A live lease's value: mac, credited ms (its start, then its last heartbeat), the rest.
local function parse(value)
  local t1 = find(value, '\t', 1, true)
  local t2 = find(value, '\t', t1 + 1, true)
  return sub(value, 1, t1 - 1), tonumber(sub(value, t1 + 1, t2 - 1)), sub(value, t2 + 1)
end

for i = 4, #ARGV, 6 do
  local op, id, at, expires = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 3]), ARGV[i + 4]
  carry(at)
  if op == 's' then
    local mac, info = ARGV[i + 2], ARGV[i + 5]
    if redis.call('HSETNX', live, id, mac .. '\t' .. at .. '\t' .. info) == 1 then
      redis.call('ZADD', exp, expires, id)
      n = n + 1
      peak(at - at % H, n)
      seen(at - at % H, mac)
      logged('start', id, mac, info, at, at)
    end
  elseif op == 'x' then
    for _, gone in ipairs(redis.call('ZRANGEBYSCORE', exp, '-inf', at)) do
      local value = redis.call('HGET', live, gone)
      redis.call('ZREM', exp, gone)
      if value then
        redis.call('HDEL', live, gone)
        n = n - 1
        -- It stopped heartbeating: what it watched ends at its last heartbeat.
        local mac, credited, info = parse(value)
        logged('expire', gone, mac, info, credited, at)
      end
    end
  else
    local value = redis.call('HGET', live, id)
    if value then
      local mac, credited, info = parse(value)
      if at > credited then
        credit(credited, at, mac)
        credited = at
      end
      if op == 'b' then
        redis.call('HSET', live, id, mac .. '\t' .. credited .. '\t' .. info)
        redis.call('ZADD', exp, 'GT', expires, id)
      else
        redis.call('HDEL', live, id)
        redis.call('ZREM', exp, id)
        n = n - 1
        logged('end', id, mac, info, credited, at)
      end
    end
  end
end
return n
