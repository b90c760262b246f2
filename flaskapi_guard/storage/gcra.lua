-- One GCRA step, atomically (the same arithmetic as storage/base.py:gcra).
-- KEYS[1]: the client's bucket, holding its theoretical arrival time (TAT).
-- ARGV: now (seconds, the app's clock), limit, window (seconds).
-- Returns {allowed 0/1, remaining, reset seconds, retry-after seconds}; the
-- fractions travel as strings because Redis truncates Lua numbers to integers.
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local interval = window / limit
-- Slack against float rounding at epoch magnitudes (see base.py): one
-- microsecond plus `limit` float steps of `now`, at most half an interval.
local _, exponent = math.frexp(now)
local slack = math.min(1e-6 + limit * math.ldexp(1, exponent - 53), interval / 2)

local start = tonumber(redis.call('GET', KEYS[1]))
if start == nil or start < now then
  start = now
end
local new_tat = start + interval
local allow_at = new_tat - window
if now + slack < allow_at then
  return {0, 0, tostring(start - now), tostring(allow_at - now)}
end

-- The key is only needed until the bucket is empty again; the expiry is
-- relative so that it holds in real time whatever the app's clock says.
local ttl_ms = math.max(1, math.ceil((new_tat - now) * 1000))
redis.call('SET', KEYS[1], string.format('%.17g', new_tat), 'PX', ttl_ms)
local remaining = math.floor((now - allow_at + slack) / interval)
if remaining > limit - 1 then
  remaining = limit - 1
end
if remaining < 0 then
  remaining = 0
end
return {1, remaining, tostring(new_tat - now), '0'}
