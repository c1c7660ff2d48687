-- Claims an Idempotency-Key for a write about to be published outside Redis
-- (Kafka, SQS). The record is `<message id>|<p|c>|<fingerprint>|<since ms>`
-- (wal_core::idempotency).
--
-- KEYS[1] the idempotency record
-- ARGV[1] message id, ARGV[2] request fingerprint, ARGV[3] dedup window (ms),
-- ARGV[4] age (ms) after which a pending claim of the same request is taken
--         over: the gateway that made it died before resolving it
--
-- Returns {1, record} when claimed (new or taken over), {0, record} when an
-- earlier write holds the key.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local previous = redis.call('GET', KEYS[1])
if previous then
  local _, state, fp, since = string.match(previous, '^([^|]*)|(%a)|([^|]*)|(%d+)$')
  local stale = state == 'p' and fp == ARGV[2] and now - tonumber(since) > tonumber(ARGV[4])
  if not stale then
    return {0, previous}
  end
end
local record = ARGV[1] .. '|p|' .. ARGV[2] .. '|' .. string.format('%.0f', now)
redis.call('SET', KEYS[1], record, 'PX', ARGV[3])
return {1, record}
