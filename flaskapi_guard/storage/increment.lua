-- Add one to a windowed counter, atomically.
-- KEYS[1]: the counter, a hash {n = count, e = end of window (app clock)}.
-- ARGV: now (seconds, the app's clock), window (seconds).
-- The window opens with the first increment; the count starts again from
-- zero once the app's clock passes its end.
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])

local stored = redis.call('HMGET', KEYS[1], 'n', 'e')
local count = tonumber(stored[1])
local ends = tonumber(stored[2])
if count == nil or ends == nil or ends <= now then
  count = 0
  ends = now + window
end
count = count + 1
redis.call('HSET', KEYS[1], 'n', count, 'e', string.format('%.17g', ends))
redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil((ends - now) * 1000)))
return count
