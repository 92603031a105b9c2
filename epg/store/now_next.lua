-- For each channel: its record, the programme on air at ARGV[1] and the next one.
-- KEYS: channels, then (idx data rights) per channel; ARGV: now, channel ids
local now = tonumber(ARGV[1])
local out = {}
for i = 2, #KEYS, 3 do
  out[#out + 1] = redis.call('HGET', KEYS[1], ARGV[(i + 4) / 3]) or ''
  local cur = redis.call('ZREVRANGEBYSCORE', KEYS[i], now, '-inf', 'LIMIT', 0, 1)[1]
  local nxt = redis.call('ZRANGEBYSCORE', KEYS[i], '(' .. now, '+inf', 'LIMIT', 0, 1)[1]
  for _, id in ipairs({cur or '', nxt or ''}) do
    if id ~= '' then
      out[#out + 1] = id
      out[#out + 1] = redis.call('HGET', KEYS[i + 1], id)
      out[#out + 1] = redis.call('HGET', KEYS[i + 2], id) or ''
    else
      out[#out + 1] = ''
      out[#out + 1] = ''
      out[#out + 1] = ''
    end
  end
end
return out
