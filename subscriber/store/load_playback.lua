-- Loads the playback state of the boxes of one carrier (concurrent requests
-- share one call): every key carries the carrier's hash tag.
-- KEYS: the carrier's hash, then per box its hash and its subscriber's hash.
-- ARGV[1] = '1' (a login): also each box's device profile, resolved here so a login
-- costs no round trip more: the profile naming the box's model (sub:{c}:profx names
-- it), else the carrier's 'default', else none ('' for both).
-- Returns {carrier status, then per box: box fields, subscriber fields, then (a login)
-- per box: {profile id, profile value}}.
local out = {redis.call('HGET', KEYS[1], 's') or ''}
for i = 2, #KEYS do out[i] = redis.call('HGETALL', KEYS[i]) end
if ARGV[1] == '1' then
  -- The carrier's key prefix 'sub:{c}:' (its hash is 'sub:{c}:carrier').
  local prefix = string.sub(KEYS[1], 1, #KEYS[1] - 7)
  local profiles, index = prefix .. 'prof', prefix .. 'profx'
  for i = 2, #KEYS, 2 do
    local model = redis.call('HGET', KEYS[i], 'md')
    local id = model and model ~= '' and redis.call('HGET', index, model)
    local value = id and redis.call('HGET', profiles, id)
    if not value then
      id = 'default'
      value = redis.call('HGET', profiles, id)
    end
    if not value then id, value = '', '' end
    out[#out + 1] = {id, value}
  end
end
return out
