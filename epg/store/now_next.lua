-- For each channel: its record, the programme on air at ARGV[1] and the next one.
-- KEYS: (record idx data rights) per channel; ARGV: now
local now = tonumber(ARGV[1])
local out = {}
for i = 1, #KEYS, 4 do
  out[#out + 1] = redis.call('GET', KEYS[i]) or ''
  local cur = redis.call('ZREVRANGEBYSCORE', KEYS[i + 1], now, '-inf', 'LIMIT', 0, 1)[1]
  local nxt = redis.call('ZRANGEBYSCORE', KEYS[i + 1], '(' .. now, '+inf', 'LIMIT', 0, 1)[1]
  for _, id in ipairs({cur or '', nxt or ''}) do
    if id ~= '' then
      out[#out + 1] = id
      out[#out + 1] = redis.call('HGET', KEYS[i + 2], id)
      out[#out + 1] = redis.call('HGET', KEYS[i + 3], id) or ''
    else
      out[#out + 1] = ''
      out[#out + 1] = ''
      out[#out + 1] = ''
    end
  end
end
return out
