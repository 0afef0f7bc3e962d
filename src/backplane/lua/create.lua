-- Creates a room unless its id is taken (0), the cluster is full (-1), its creator
-- holds as many open rooms as it may (-2) or it is to be persistent and the cluster
-- holds as many persistent rooms as it may (-3); 1: created.
-- KEYS: room, events, listeners, rooms, chat, public, creator, persistent rooms.
-- ARGV: id, version, json, ttl_ms, max_rooms, room key prefix, room key suffix (the
-- key layout, from keys:: in redis.rs), max rooms per creator, public ('1'/'0'),
-- persistent ('1'/'0'), max persistent rooms.
--
-- A persistent room (field `p` = '1') has no expiry, nor has its creator's set while
-- it counts there; the cluster's persistent rooms are the set KEYS[8], cleaned of
-- rooms that are gone or no longer persistent when it looks full.
--
-- A creator's rooms are a set of ids, not a counter: a room counts while it exists
-- and names this creator (field `c`), so a room that expired, or a node that died
-- mid-way, can never leave a count behind. The set outlives its rooms: every write
-- that extends a room's life extends the set's as far (commit.lua, presence.lua).
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if redis.call('ZCARD', KEYS[7]) >= tonumber(ARGV[8]) then
  for _, id in ipairs(redis.call('ZRANGE', KEYS[7], 0, -1)) do
    if redis.call('HGET', ARGV[6] .. id .. ARGV[7], 'c') ~= KEYS[7] then
      redis.call('ZREM', KEYS[7], id)
    end
  end
  if redis.call('ZCARD', KEYS[7]) >= tonumber(ARGV[8]) then return -2 end
end
if redis.call('ZCARD', KEYS[4]) >= tonumber(ARGV[5]) then
  for _, id in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do
    if redis.call('EXISTS', ARGV[6] .. id .. ARGV[7]) == 0 then
      redis.call('ZREM', KEYS[4], id)
      redis.call('ZREM', KEYS[6], id)
    end
  end
  if redis.call('ZCARD', KEYS[4]) >= tonumber(ARGV[5]) then return -1 end
end
local persistent = ARGV[10] == '1'
if persistent and redis.call('ZCARD', KEYS[8]) >= tonumber(ARGV[11]) then
  for _, id in ipairs(redis.call('ZRANGE', KEYS[8], 0, -1)) do
    if redis.call('HGET', ARGV[6] .. id .. ARGV[7], 'p') ~= '1' then
      redis.call('ZREM', KEYS[8], id)
    end
  end
  if redis.call('ZCARD', KEYS[8]) >= tonumber(ARGV[11]) then return -3 end
end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[5])
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'json', ARGV[3], 'c', KEYS[7], 'p', ARGV[10])
if persistent then
  redis.call('ZADD', KEYS[8], 0, ARGV[1])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
redis.call('ZADD', KEYS[4], 0, ARGV[1])
if ARGV[9] == '1' then
  redis.call('ZADD', KEYS[6], 0, ARGV[1])
else
  redis.call('ZREM', KEYS[6], ARGV[1])
end
-- Read before the set may be made: -1 then means a persistent room keeps it.
local creator_ttl = redis.call('PTTL', KEYS[7])
redis.call('ZADD', KEYS[7], 0, ARGV[1])
if persistent then
  redis.call('PERSIST', KEYS[7])
elseif creator_ttl ~= -1 and creator_ttl < tonumber(ARGV[4]) then
  redis.call('PEXPIRE', KEYS[7], ARGV[4])
end
return 1
