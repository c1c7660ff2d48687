-- Settles one entry in one atomic step: records target statuses, parks the
-- message (or some of its targets) in the delayed / retry sets, writes
-- dead-letter records, and acknowledges the stream entry last. An entry is
-- never acknowledged without its hand-off being recorded: a write refused
-- (out of memory) aborts the script before the XACK.
--
-- Sent again (its reply was lost and the worker retried, or another worker
-- took the entry over), it writes nothing twice: a stream entry that is no
-- longer pending was settled already; a settlement without a stream entry
-- (Kafka, SQS) that writes dead letters leaves a marker, and one finding the
-- marker stops.
--
-- KEYS[1] stream of the entry   KEYS[2] delayed set   KEYS[3] retry set
-- KEYS[4] DLQ stream            KEYS[5] DLQ index     KEYS[6] status hash
-- KEYS[7] marker of this settlement (used when ARGV[4] ~= '0')
-- KEYS[8] parked set
-- ARGV[1] consumer group
-- ARGV[2] entry id to acknowledge ('' = none)
-- ARGV[3] status TTL (ms)
-- ARGV[4] marker TTL (ms; '0' = no marker)
-- ARGV[5..] operations, each a tag followed by its arguments:
--   'S' field json                      status field
--   'Z' 'd'|'r' score member            delayed / retry set member
--   'D' id reason target error attempts partition at env   DLQ record
--   'P' target member                   parked (breaker open) until released
--
-- Returns the ids of the DLQ entries written.
if ARGV[2] ~= '' then
  if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1) == 0 then
    return {}
  end
elseif ARGV[4] ~= '0' then
  if not redis.call('SET', KEYS[7], '1', 'NX', 'PX', ARGV[4]) then
    return {}
  end
end
local dlq_ids = {}
local status_written = false
local i = 5
while i <= #ARGV do
  local op = ARGV[i]
  if op == 'S' then
    redis.call('HSET', KEYS[6], ARGV[i + 1], ARGV[i + 2])
    status_written = true
    i = i + 3
  elseif op == 'Z' then
    local set = KEYS[3]
    if ARGV[i + 1] == 'd' then set = KEYS[2] end
    redis.call('ZADD', set, ARGV[i + 2], ARGV[i + 3])
    i = i + 4
  elseif op == 'P' then
    redis.call('ZADD', KEYS[8], 0, ARGV[i + 1] .. '\n' .. ARGV[i + 2])
    i = i + 3
  elseif op == 'D' then
    local fields = {'id', ARGV[i + 1], 'reason', ARGV[i + 2], 'target', ARGV[i + 3],
      'error', ARGV[i + 4], 'attempts', ARGV[i + 5], 'partition', ARGV[i + 6],
      'at', ARGV[i + 7], 'env', ARGV[i + 8]}
    -- No trimming here: retention is the worker's DLQ sweep, which keeps
    -- the index in step.
    local entry = redis.call('XADD', KEYS[4], '*', unpack(fields))
    local previous = redis.call('HGET', KEYS[5], ARGV[i + 1])
    if previous then
      redis.call('HSET', KEYS[5], ARGV[i + 1], previous .. ' ' .. entry)
    else
      redis.call('HSET', KEYS[5], ARGV[i + 1], entry)
    end
    table.insert(dlq_ids, entry)
    i = i + 9
  else
    return redis.error_reply('settle: unknown operation ' .. tostring(op))
  end
end
if status_written then
  redis.call('PEXPIRE', KEYS[6], ARGV[3])
end
if ARGV[2] ~= '' then
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
end
return dlq_ids
