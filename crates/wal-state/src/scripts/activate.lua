-- Moves the due members of a delayed or retry set back into their partition
-- streams, atomically: a member is removed and appended in one step, so two
-- workers running this at the same instant can never both activate it.
--
-- KEYS[1] the sorted set (score = due time in ms)
-- KEYS[2..] the partition streams p:0 .. p:n-1
-- ARGV[1] now (ms)   ARGV[2] most members to move
-- ARGV[3] trim strategy (MAXLEN | MINID)   ARGV[4] trim threshold
-- A member is '<partition>:<message id>:<envelope json>'.
--
-- Returns {moved, score of the new head or '-1', members left}.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
  redis.call('ZREM', KEYS[1], member)
  local c1 = string.find(member, ':', 1, true)
  local c2 = c1 and string.find(member, ':', c1 + 1, true)
  if c1 and c2 then
    local partition = tonumber(string.sub(member, 1, c1 - 1)) or 0
    -- A partition beyond today's count (the namespace shrank) goes to p:0.
    local stream = KEYS[partition + 2] or KEYS[2]
    redis.call('XADD', stream, ARGV[3], '~', ARGV[4], '*',
      'id', string.sub(member, c1 + 1, c2 - 1), 'env', string.sub(member, c2 + 1))
  else
    -- Not a member this service wrote: append it raw so the worker
    -- dead-letters it as malformed instead of it blocking the set.
    redis.call('XADD', KEYS[2], ARGV[3], '~', ARGV[4], '*', 'id', 'malformed', 'env', member)
  end
end
local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {#due, head[2] or '-1', redis.call('ZCARD', KEYS[1])}
