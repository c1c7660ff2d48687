-- Token buckets shared by every gateway instance (one hash per namespace).
-- Time comes from the Redis server, so gateway clocks do not matter.
--
-- KEYS[1] the namespace's rate-limit hash
-- ARGV[1] cost (messages in this request)
-- ARGV[2], ARGV[3] bucket 0: capacity, refill per ms (capacity 0 = no bucket)
-- ARGV[4], ARGV[5] bucket 1: capacity, refill per ms
-- ARGV[6] key expiry in ms (time to refill both buckets completely)
--
-- Returns {1, 0} when admitted (tokens taken from every bucket), or
-- {0, ms until enough tokens} when refused (nothing taken).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cost = tonumber(ARGV[1])
local wait = 0
local tokens = {}
for i = 0, 1 do
  local cap = tonumber(ARGV[2 + i * 2])
  local rate = tonumber(ARGV[3 + i * 2])
  if cap > 0 then
    local state = redis.call('HMGET', KEYS[1], 't' .. i, 'ts' .. i)
    local have = tonumber(state[1]) or cap
    local ts = tonumber(state[2]) or now
    if now > ts then
      have = math.min(cap, have + (now - ts) * rate)
    end
    if have < cost then
      local need = math.ceil((cost - have) / rate)
      if need > wait then wait = need end
    end
    tokens[i] = have
  end
end
if wait > 0 then
  return {0, wait}
end
for i = 0, 1 do
  if tokens[i] then
    redis.call('HSET', KEYS[1], 't' .. i, tostring(tokens[i] - cost), 'ts' .. i, now)
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return {1, 0}
