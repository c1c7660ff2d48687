-- Idempotent append: appends the entry only if the idempotency key is new,
-- and records the key in the same atomic step, so that concurrent writes
-- with one key produce exactly one stream entry. The record is
-- `<message id>|<p|c>|<fingerprint>|<since ms>` (wal_core::idempotency):
-- pending while the append waits for replicas, confirmed otherwise.
--
-- KEYS[1] stream, KEYS[2] idempotency record
-- ARGV[1] trim strategy (MAXLEN | MINID), ARGV[2] trim threshold,
-- ARGV[3] message id, ARGV[4] envelope JSON, ARGV[5] dedup window (ms),
-- ARGV[6] request fingerprint, ARGV[7] '1' when the write waits for replicas
--
-- Returns {1, entry id} when appended, {0, record} when the key was seen.
local previous = redis.call('GET', KEYS[2])
if previous then
  if ARGV[7] == '1' and string.find(previous, '|p|', 1, true) then
    -- Written again, so that the WAIT this connection sends next also
    -- covers the first write (replication is in order).
    redis.call('SET', KEYS[2], previous, 'KEEPTTL')
  end
  return {0, previous}
end
local entry = redis.call('XADD', KEYS[1], ARGV[1], '~', ARGV[2], '*', 'id', ARGV[3], 'env', ARGV[4])
local state = 'c'
if ARGV[7] == '1' then
  state = 'p'
end
local t = redis.call('TIME')
local since = t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000))
redis.call('SET', KEYS[2], ARGV[3] .. '|' .. state .. '|' .. ARGV[6] .. '|' .. since, 'PX', ARGV[5])
return {1, entry}
