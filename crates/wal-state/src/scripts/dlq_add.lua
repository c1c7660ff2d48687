-- Dead-letters one record: appends it to the DLQ stream and records the new
-- entry id in the index, in one atomic step (the index never names an entry
-- that was not written, and never misses one that was).
--
-- KEYS[1] DLQ stream, KEYS[2] DLQ index (hash: message id -> space-separated entry ids)
-- ARGV[1] message id, ARGV[2..] the record's field/value pairs
--
-- Returns the new DLQ entry id.
local entry = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))
local current = redis.call('HGET', KEYS[2], ARGV[1])
if current and current ~= '' then
  redis.call('HSET', KEYS[2], ARGV[1], current .. ' ' .. entry)
else
  redis.call('HSET', KEYS[2], ARGV[1], entry)
end
return entry
