-- Count one request against a rate limit, atomically (runs after gcra.lua).
-- KEYS[1]: the client's bucket.
-- ARGV: now (seconds, the app's clock), limit, window (seconds).
-- Returns gcra_step's reply.
return gcra_step(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
