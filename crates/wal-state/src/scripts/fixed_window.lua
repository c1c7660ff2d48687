-- Fixed-window counter shared by every gateway instance (e.g. the budget of
-- requeue-by-filter calls of a namespace).
--
-- KEYS[1] counter key, ARGV[1] calls allowed per window, ARGV[2] window (ms)
--
-- Returns {1, 0} when admitted, {0, ms until the window ends} when refused.
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if n == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  ttl = tonumber(ARGV[2])
end
if n > tonumber(ARGV[1]) then
  return {0, ttl}
end
return {1, 0}
