-- Deletes DLQ entries and removes them from the index, atomically per call.
-- An entry already gone (requeued or purged meanwhile) is skipped.
--
-- KEYS[1] DLQ stream, KEYS[2] DLQ index
-- ARGV pairs: DLQ entry id, message id
--
-- Returns the number of entries deleted.
local deleted = 0
for i = 1, #ARGV, 2 do
  local entry = ARGV[i]
  local message = ARGV[i + 1]
  deleted = deleted + redis.call('XDEL', KEYS[1], entry)
  local current = redis.call('HGET', KEYS[2], message)
  if current then
    local kept = {}
    for id in string.gmatch(current, '%S+') do
      if id ~= entry then
        kept[#kept + 1] = id
      end
    end
    if #kept == 0 then
      redis.call('HDEL', KEYS[2], message)
    else
      redis.call('HSET', KEYS[2], message, table.concat(kept, ' '))
    end
  end
end
return deleted
