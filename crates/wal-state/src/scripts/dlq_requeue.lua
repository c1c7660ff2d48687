-- Moves one DLQ entry back into its partition stream, atomically, so that two
-- concurrent requeues of the same entry can never both re-append it: the
-- entry is requeued only while the index still lists it, and the index entry
-- is removed in the same step.
--
-- KEYS[1] DLQ stream, KEYS[2] DLQ index, KEYS[3] partition stream, KEYS[4] status hash
-- ARGV[1] DLQ entry id, ARGV[2] message id, ARGV[3] requeued envelope JSON,
-- ARGV[4] TargetStatus JSON (pending), ARGV[5] status TTL (ms),
-- ARGV[6] createdAtMs (set only if the status hash has none), ARGV[7..] status fields (t:<target>)
--
-- Returns {1, new stream entry id} when requeued, {0, ''} when the entry is no
-- longer in the DLQ (requeued or purged by someone else).
local current = redis.call('HGET', KEYS[2], ARGV[2])
if not current then
  return {0, ''}
end
local kept = {}
local found = false
for id in string.gmatch(current, '%S+') do
  if id == ARGV[1] then
    found = true
  else
    kept[#kept + 1] = id
  end
end
if not found then
  return {0, ''}
end
-- The same fields the producer writes.
local entry = redis.call('XADD', KEYS[3], '*', 'id', ARGV[2], 'env', ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[1])
if #kept == 0 then
  redis.call('HDEL', KEYS[2], ARGV[2])
else
  redis.call('HSET', KEYS[2], ARGV[2], table.concat(kept, ' '))
end
if #ARGV >= 7 then
  for i = 7, #ARGV do
    redis.call('HSET', KEYS[4], ARGV[i], ARGV[4])
  end
  redis.call('HSETNX', KEYS[4], 'createdAtMs', ARGV[6])
  redis.call('PEXPIRE', KEYS[4], ARGV[5])
end
return {1, entry}
