"""The Lua scripts of RedisCache: each operation is one atomic round trip.

Layout under the cache's prefix P:
    P v:{key}   the value (a string, with PX when it has a TTL, so Redis frees it on time)
    P lru       sorted set: key -> access sequence number (lowest = least recently used)
    P exp       sorted set: key -> deadline in ms on the Redis server's clock
    P seq       the access sequence counter
Every script first prunes entries whose deadline passed (from both sets) and returns how many,
so `size` (ZCARD of lru) counts live entries only and expirations are counted. Deadlines use
the server's TIME, so processes with skewed clocks agree. KEYS are lru, exp, seq; ARGV[1] is
the value-key prefix `P v:` (value keys are built in the script: one Redis, not a cluster).
"""

from __future__ import annotations

_PRUNE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1000)
for _, k in ipairs(dead) do
  redis.call('DEL', ARGV[1] .. k)
  redis.call('ZREM', KEYS[1], k)
  redis.call('ZREM', KEYS[2], k)
end
local expired = #dead
"""

#: ARGV: prefix, key... -> {expired, {value or false, ...}}; a hit becomes most recently used.
GET = (
    _PRUNE
    + """
local out = {}
for i = 2, #ARGV do
  local v = redis.call('GET', ARGV[1] .. ARGV[i])
  if v then
    redis.call('ZADD', KEYS[1], redis.call('INCR', KEYS[3]), ARGV[i])
    out[#out + 1] = v
  else
    out[#out + 1] = false
  end
end
return {expired, out}
"""
)

#: ARGV: prefix, max_size, then (key, value, ttl_ms or 0) triples -> {expired, evicted}.
SET = (
    _PRUNE
    + """
for i = 3, #ARGV, 3 do
  local k, v, ttl = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  if ttl > 0 then
    redis.call('SET', ARGV[1] .. k, v, 'PX', ttl)
    redis.call('ZADD', KEYS[2], now + ttl, k)
  else
    redis.call('SET', ARGV[1] .. k, v)
    redis.call('ZREM', KEYS[2], k)
  end
  redis.call('ZADD', KEYS[1], redis.call('INCR', KEYS[3]), k)
end
local evicted = 0
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[2])
if over > 0 then
  local victims = redis.call('ZPOPMIN', KEYS[1], over)
  for j = 1, #victims, 2 do
    redis.call('DEL', ARGV[1] .. victims[j])
    redis.call('ZREM', KEYS[2], victims[j])
    evicted = evicted + 1
  end
end
return {expired, evicted}
"""
)

#: ARGV: prefix, key... -> {expired, removed}.
DELETE = (
    _PRUNE
    + """
local removed = 0
for i = 2, #ARGV do
  removed = removed + redis.call('DEL', ARGV[1] .. ARGV[i])
  redis.call('ZREM', KEYS[1], ARGV[i])
  redis.call('ZREM', KEYS[2], ARGV[i])
end
return {expired, removed}
"""
)

#: ARGV: prefix -> {expired, size}.
SIZE = (
    _PRUNE
    + """
return {expired, redis.call('ZCARD', KEYS[1])}
"""
)

#: ARGV: prefix -> entries removed; drops the bookkeeping keys too.
CLEAR = """
local removed = 0
while true do
  local batch = redis.call('ZRANGE', KEYS[1], 0, 499)
  if #batch == 0 then break end
  for _, k in ipairs(batch) do
    removed = removed + redis.call('DEL', ARGV[1] .. k)
    redis.call('ZREM', KEYS[1], k)
  end
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return removed
"""
