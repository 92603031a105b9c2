-- Record an idempotent request's response, only if its claim is still this attempt's
-- (ARGV[1], its token) and holds at least ARGV[2] applied steps: a marker each guarded
-- write set in the same script as its change, so a master that has the marks has the
-- change. Returns 1 when recorded, 0 when the change is not here (lost in a failover).
-- ARGV[3] = the record, ARGV[4] = its TTL in seconds, ARGV[5] = the request's
-- fingerprint: a record of it already there (this call sent again) is kept, and 1.
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local record = cjson.decode(raw)
if record['r'] ~= nil and record['r'] ~= cjson.null and record['f'] == ARGV[5] then
  return 1
end
if record['t'] ~= ARGV[1] then return 0 end
local applied = record['a']
if applied == nil or applied == cjson.null then applied = {} end
if #applied < tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[4])
return 1
