-- Creates a room unless its id is taken (0), the cluster is full (-1) or its creator
-- holds as many open rooms as it may (-2); 1: created.
-- KEYS: room, events, listeners, rooms, chat, public, creator. ARGV: id, version, json,
-- ttl_ms, max_rooms, room key prefix, room key suffix (the key layout, from keys:: in
-- redis.rs), max rooms per creator, public ('1'/'0').
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
redis.call('DEL', KEYS[2], KEYS[3], KEYS[5])
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'json', ARGV[3], 'c', KEYS[7])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[4], 0, ARGV[1])
if ARGV[9] == '1' then
  redis.call('ZADD', KEYS[6], 0, ARGV[1])
else
  redis.call('ZREM', KEYS[6], ARGV[1])
end
redis.call('ZADD', KEYS[7], 0, ARGV[1])
if redis.call('PTTL', KEYS[7]) < tonumber(ARGV[4]) then
  redis.call('PEXPIRE', KEYS[7], ARGV[4])
end
return 1
