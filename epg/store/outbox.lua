-- The channel's changes the feed may not have yet (see common.lua's outbox).
-- KEYS: record idx data rights seq out; ARGV: channel sent
return outbox()
