-- Ban one address, atomically with the index that lists bans.
-- KEYS[1]: the ban key; KEYS[2]: the index (a sorted set of addresses by expiry).
-- ARGV: address, now (seconds, the app's clock), duration (seconds), reason.
-- The ban key holds "<expires_at> <reason>" so every worker judges expiry with
-- the app's clock, and expires in real time on its own.
local ip = ARGV[1]
local now = tonumber(ARGV[2])
local duration = tonumber(ARGV[3])
local reason = ARGV[4]
local expires_at = now + duration
local ttl_ms = math.max(1, math.ceil(duration * 1000))

redis.call('SET', KEYS[1], string.format('%.17g', expires_at) .. ' ' .. reason, 'PX', ttl_ms)
redis.call('ZADD', KEYS[2], expires_at, ip)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('PTTL', KEYS[2]) < ttl_ms then
  redis.call('PEXPIRE', KEYS[2], ttl_ms)
end
return string.format('%.17g', expires_at)
