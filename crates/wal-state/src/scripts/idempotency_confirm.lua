-- Marks an idempotency record confirmed once its write is known to be
-- recorded; only if it is still the pending claim of that write.
--
-- KEYS[1] the idempotency record, ARGV[1] the message id it was claimed for
--
-- Returns 1 when confirmed, 0 otherwise.
local record = redis.call('GET', KEYS[1])
if not record then
  return 0
end
local id, rest = string.match(record, '^([^|]*)|p|(.*)$')
if id == ARGV[1] then
  redis.call('SET', KEYS[1], id .. '|c|' .. rest, 'KEEPTTL')
  return 1
end
return 0
