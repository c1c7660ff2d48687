-- Releases up to ARGV[2] messages parked for one target (its circuit breaker
-- let them through) into the retry set, due at ARGV[3]. Parked members are
-- `<target>\n<retry member>` in a sorted set whose scores are all 0, so a
-- target's members are one lexicographic range.
--
-- KEYS[1] parked set, KEYS[2] retry set
-- ARGV[1] target, ARGV[2] most to release, ARGV[3] due time (ms)
--
-- Returns how many were released.
local prefix = ARGV[1] .. '\n'
local members = redis.call('ZRANGEBYLEX', KEYS[1], '[' .. prefix, '(' .. ARGV[1] .. '\v',
  'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(members) do
  redis.call('ZREM', KEYS[1], m)
  redis.call('ZADD', KEYS[2], ARGV[3], string.sub(m, #prefix + 1))
end
return #members
