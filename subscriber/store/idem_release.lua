-- Forget a failed request's claim (ARGV[1], its token), so a retry runs again: only
-- while it is this attempt's and none of its guarded writes was applied. Returns 1 when
-- deleted; 0 when the key is another attempt's, gone, or holds an applied change
-- (then it lapses with its TTL).
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local record = cjson.decode(raw)
if record['t'] ~= ARGV[1] then return 0 end
local applied = record['a']
if applied ~= nil and applied ~= cjson.null and #applied > 0 then return 0 end
redis.call('DEL', KEYS[1])
return 1
