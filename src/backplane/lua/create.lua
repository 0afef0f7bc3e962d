-- Creates a room unless its id is taken (0) or the cluster is full (-1); 1: created.
-- KEYS: room, events, listeners, rooms, chat. ARGV: id, version, json, ttl_ms, max_rooms,
-- room key prefix, room key suffix (the key layout, from keys:: in redis.rs).
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if redis.call('ZCARD', KEYS[4]) >= tonumber(ARGV[5]) then
  for _, id in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do
    if redis.call('EXISTS', ARGV[6] .. id .. ARGV[7]) == 0 then
      redis.call('ZREM', KEYS[4], id)
    end
  end
  if redis.call('ZCARD', KEYS[4]) >= tonumber(ARGV[5]) then return -1 end
end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[5])
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'json', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[4], 0, ARGV[1])
return 1
