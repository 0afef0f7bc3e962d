-- Reserves a room's place in a budget set (a creator's rooms, the persistent
-- rooms): 2 reserved now, 1 it already had one, 0 the set is full.
-- KEYS: the set (ids scored by reservation time, ms). ARGV: room id, most
-- members, now ms, expiry: ms to extend the set's life to at least, 0 to leave
-- it, -1 to make it last (a persistent room counts in it).
-- Members whose room is gone are removed by the node when the set looks full
-- (it must read their rooms, which live in other slots).
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  if ARGV[4] == '-1' then redis.call('PERSIST', KEYS[1]) end
  return 1
end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
-- Read before ZADD may make the set: -1 then means a persistent room keeps it.
local left = redis.call('PTTL', KEYS[1])
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
local ttl = tonumber(ARGV[4])
if ttl < 0 then
  redis.call('PERSIST', KEYS[1])
elseif ttl > 0 and left ~= -1 and left < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return 2
