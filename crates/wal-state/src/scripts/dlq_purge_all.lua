-- Empties a namespace's DLQ: the stream and its index go together.
--
-- KEYS[1] DLQ stream, KEYS[2] DLQ index
--
-- Returns the number of entries deleted.
local n = redis.call('XLEN', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2])
return n
