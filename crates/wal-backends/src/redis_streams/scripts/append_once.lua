-- Idempotent append: appends the entry only if the idempotency key is new,
-- and records the key in the same atomic step, so that concurrent writes
-- with one key produce exactly one stream entry.
--
-- KEYS[1] stream, KEYS[2] idempotency key
-- ARGV[1] trim strategy (MAXLEN | MINID), ARGV[2] trim threshold,
-- ARGV[3] message id, ARGV[4] envelope JSON, ARGV[5] dedup window (ms)
--
-- Returns {1, entry id} when appended, {0, first message id} when a duplicate.
local previous = redis.call('GET', KEYS[2])
if previous then
  return {0, previous}
end
local entry = redis.call('XADD', KEYS[1], ARGV[1], '~', ARGV[2], '*', 'id', ARGV[3], 'env', ARGV[4])
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[5])
return {1, entry}
