-- Loads the playback state of every MAC in ARGV (concurrent requests share
-- one call): {catalogue version, then per MAC: holder, device, subscriber,
-- carrier status}. KEYS[1] = the catalogue version key.
local out = {redis.call('GET', KEYS[1]) or ''}
for _, mac in ipairs(ARGV) do
  local holder = redis.call('GET', 'sub:mac:' .. mac)
  if not holder then
    out[#out + 1] = ''; out[#out + 1] = {}; out[#out + 1] = {}; out[#out + 1] = ''
  else
    local slash = string.find(holder, '/', 1, true)
    local c = string.sub(holder, 1, slash - 1)
    out[#out + 1] = holder
    out[#out + 1] = redis.call('HGETALL', 'sub:' .. c .. ':d:' .. mac)
    out[#out + 1] = redis.call('HGETALL', 'sub:' .. c .. ':s:' .. string.sub(holder, slash + 1))
    out[#out + 1] = redis.call('HGET', 'sub:' .. c .. ':carrier', 's') or ''
  end
end
return out
