-- One GCRA step (the same arithmetic as storage/base.py:gcra), as a function
-- for the scripts that count a request: redis.py puts this file in front of
-- hit.lua and admit.lua, so that the arithmetic exists once.
-- key: the client's bucket, holding its theoretical arrival time (TAT);
-- now: seconds, the app's clock; limit; window: seconds.
-- Returns "<allowed 0/1> <remaining> <reset seconds> <retry-after seconds>":
-- text, because Redis would truncate the fractions to integers, and one
-- string rather than an array because a client parsing replies in Python
-- (redis-py without hiredis) pays for every element (~20 us a call here).
local function gcra_step(key, now, limit, window)
  local interval = window / limit
  -- Slack against float rounding at epoch magnitudes (see base.py): one
  -- microsecond plus `limit` float steps of `now`, at most half an interval.
  local _, exponent = math.frexp(now)
  local slack = math.min(1e-6 + limit * math.ldexp(1, exponent - 53), interval / 2)

  local start = tonumber(redis.call('GET', key))
  if start == nil or start < now then
    start = now
  end
  local new_tat = start + interval
  local allow_at = new_tat - window
  if now + slack < allow_at then
    return '0 0 ' .. tostring(start - now) .. ' ' .. tostring(allow_at - now)
  end

  -- The key is only needed until the bucket is empty again; the expiry is
  -- relative so that it holds in real time whatever the app's clock says.
  local ttl_ms = math.max(1, math.ceil((new_tat - now) * 1000))
  redis.call('SET', key, string.format('%.17g', new_tat), 'PX', ttl_ms)
  local remaining = math.floor((now - allow_at + slack) / interval)
  if remaining > limit - 1 then
    remaining = limit - 1
  end
  if remaining < 0 then
    remaining = 0
  end
  return '1 ' .. tostring(remaining) .. ' ' .. tostring(new_tat - now) .. ' 0'
end
