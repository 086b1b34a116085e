"""The Lua scripts that keep shared state consistent: each runs atomically inside Redis and reads
the time from Redis (``TIME``), so replicas on machines with skewed clocks still agree.

Keys (``<p>`` is ``[state] key_prefix``): ``<p>health`` (hash: backend -> the last status change
any replica saw, as JSON), ``<p>cooldowns`` (hash: backend -> end of its cooldown, Redis ms),
``<p>leases:<backend>`` (sorted set: lease id ``<replica>:<n>`` scored by its expiry, Redis ms),
``<p>stats`` (hash: the cluster's counters) and ``<p>stats:<replica>`` (hash: one replica's
counters, so that publishing them again is harmless).
"""

from __future__ import annotations

#: One background sync of a replica. KEYS: health, cooldowns, stats, replica stats, then one
#: lease set per backend. ARGV[1]: JSON ``{"replica", "ttl_ms", "stats_ttl", "health": [[name,
#: record]], "cooldowns": [[name, ms]], "leases": [[[ids to add or refresh], [ids to remove]]]
#: (one per lease set), "stats": [[field, total]]}``. Returns ``[health (flat hash), cooldowns
#: (flat: name, ms left), other replicas' live leases per lease set, cluster stats (flat)]``.
TICK = """
local p = cjson.decode(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, h in ipairs(p.health) do redis.call('HSET', KEYS[1], h[1], h[2]) end
for _, c in ipairs(p.cooldowns) do
  local ends = now + c[2]
  if ends > tonumber(redis.call('HGET', KEYS[2], c[1]) or '0') then
    redis.call('HSET', KEYS[2], c[1], ends)
  end
end
local cooldowns = {}
local raw = redis.call('HGETALL', KEYS[2])
for i = 1, #raw, 2 do
  local left = tonumber(raw[i + 1]) - now
  if left > 0 then
    cooldowns[#cooldowns + 1] = raw[i]
    cooldowns[#cooldowns + 1] = left
  else
    redis.call('HDEL', KEYS[2], raw[i])
  end
end
local prefix = p.replica .. ':'
local others = {}
for i, ops in ipairs(p.leases) do
  local key = KEYS[4 + i]
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  for _, id in ipairs(ops[1]) do redis.call('ZADD', key, now + p.ttl_ms, id) end
  for _, id in ipairs(ops[2]) do redis.call('ZREM', key, id) end
  local count = 0
  for _, member in ipairs(redis.call('ZRANGE', key, 0, -1)) do
    if string.sub(member, 1, #prefix) ~= prefix then count = count + 1 end
  end
  others[i] = count
  redis.call('PEXPIRE', key, 2 * p.ttl_ms)
end
for _, s in ipairs(p.stats) do
  local old = tonumber(redis.call('HGET', KEYS[4], s[1]) or '0')
  if s[2] > old then
    redis.call('HINCRBY', KEYS[3], s[1], s[2] - old)
    redis.call('HSET', KEYS[4], s[1], s[2])
  end
end
redis.call('EXPIRE', KEYS[4], p.stats_ttl)
return {redis.call('HGETALL', KEYS[1]), cooldowns, others, redis.call('HGETALL', KEYS[3])}
"""

#: Admit one attempt on a backend with ``max_concurrent``. KEYS[1]: its lease set. ARGV: lease id,
#: limit, lease TTL (ms), the replica's lease id prefix. Returns ``[1, 0]`` when admitted (the
#: lease is in the set), ``[0, other replicas' live leases]`` when the limit is reached.
ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return {1, 0} end
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
if #members >= tonumber(ARGV[2]) then
  local others = 0
  for _, member in ipairs(members) do
    if string.sub(member, 1, #ARGV[4]) ~= ARGV[4] then others = others + 1 end
  end
  return {0, others}
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], 2 * tonumber(ARGV[3]))
return {1, 0}
"""
