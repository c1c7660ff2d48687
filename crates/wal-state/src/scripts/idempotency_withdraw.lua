-- Withdraws an idempotency claim, only if it is still ours: a claim made by
-- another request (after ours expired or was taken over) is left alone.
--
-- KEYS[1] the idempotency record, ARGV[1] the message id we claimed it for
--
-- Returns 1 when the claim was deleted, 0 otherwise.
local record = redis.call('GET', KEYS[1])
if record and string.match(record, '^[^|]*') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
