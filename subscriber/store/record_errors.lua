-- Record refused provisioning requests of one carrier, only while the carrier exists
-- (a request naming an unknown carrier leaves no key), trimmed to the latest ARGV[1].
-- KEYS: the carrier's hash, its provisioning errors stream.
-- ARGV: entries kept, one JSON argument [[time_ms, principal, rpc, subject, reason,
--   message], ...], oldest first. Returns 1 when recorded, 0 for an unknown carrier.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for _, e in ipairs(cjson.decode(ARGV[2])) do
  redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[1], '*', 't', e[1], 'p', e[2], 'r', e[3],
    's', e[4], 'c', e[5], 'm', e[6])
end
return 1
