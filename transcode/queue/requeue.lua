-- Queue a failed or cancelled job again (an operator's retry): its delivery count, progress
-- and events start afresh, its dead letters go, and a new message goes onto the stream.
-- KEYS: job, events, stream, dead stream, delayed
-- ARGV: job id, now, scan batch, event fields...
-- Returns {'retried', dead letters removed}, or {state} / {'missing'} when refused.
-- A job cancelled while queued may still have its old message in the stream: 'queued_id'
-- names the one message that may start the job now (begin.lua skips any other).
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing'} end
if state ~= 'FAILED' and state ~= 'CANCELLED' then return {state} end
local removed = 0
local start = '-'
local batch = tonumber(ARGV[3])
while true do
  local entries = redis.call('XRANGE', KEYS[4], start, '+', 'COUNT', batch)
  for _, entry in ipairs(entries) do
    local fields = entry[2]
    for i = 1, #fields, 2 do
      if fields[i] == 'job' and fields[i + 1] == ARGV[1] then
        removed = removed + redis.call('XDEL', KEYS[4], entry[1])
      end
    end
  end
  if #entries < batch then break end
  start = '(' .. entries[#entries][1]
end
redis.call('ZREM', KEYS[5], ARGV[1])
local id = redis.call('XADD', KEYS[3], '*', 'job', ARGV[1])
redis.call('HSET', KEYS[1], 'state', 'QUEUED', 'reason', 'retried by request',
           'updated_at', ARGV[2], 'deliveries', '0', 'cancel', '0', 'token', '', 'worker', '',
           'output', '', 'last_error', '', 'percent', '0', 'speed', '0', 'eta', '0',
           'phase', 'queued', 'queued_id', id)
-- WatchJob reads the events from the first: the ended run's must not end the new one's.
redis.call('DEL', KEYS[2])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 200, '*', unpack(ARGV, 4))
return {'retried', removed}
