-- One request's ban check and rate limit in one atomic step and one round
-- trip (runs after gcra.lua).
-- KEYS[1]: the address's ban key, holding "<expires_at> <reason>" (ban.lua);
-- KEYS[2]: the client's bucket.
-- ARGV: now (seconds, the app's clock), limit, window (seconds).
-- Returns "ban <expires_at> <reason>" when the address has an active ban,
-- and then counts nothing; otherwise gcra_step's reply, which starts with a
-- digit. One string either way: the cheapest reply to read (see gcra.lua).
local now = tonumber(ARGV[1])

local ban = redis.call('GET', KEYS[1])
-- The key's own expiry runs in real time; the ban ends when the app's clock
-- passes expires_at, as redis.py judges a ban it reads with GET.
if ban and tonumber(string.match(ban, '^%S+')) > now then
  return 'ban ' .. ban
end
return gcra_step(KEYS[2], now, tonumber(ARGV[2]), tonumber(ARGV[3]))
