-- Casts or takes back votes to skip a room's item; answers {changed, votes} and
-- publishes the item's votes on the room's feed when they changed.
-- KEYS: votes set (of this item), the room's gone set (streams that ended).
-- ARGV: set ttl_ms, item, feed channel, op ("cast" or "forget"), the most
-- streams the gone set keeps, publish command (PUBLISH, or SPUBLISH on a cluster),
-- then the stream ids.
-- A stream that ended is forgotten and remembered as gone: its token, still
-- valid until it expires, casts no vote after that.
local changed = 0
if ARGV[4] == 'cast' then
  if not redis.call('ZSCORE', KEYS[2], ARGV[7]) then
    changed = redis.call('SADD', KEYS[1], ARGV[7])
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
  end
else
  local now = redis.call('TIME')
  local score = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  for i = 7, #ARGV do
    changed = changed + redis.call('SREM', KEYS[1], ARGV[i])
    redis.call('ZADD', KEYS[2], score, ARGV[i])
  end
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -tonumber(ARGV[5]) - 1)
  redis.call('PEXPIRE', KEYS[2], ARGV[1])
end
local votes = redis.call('SCARD', KEYS[1])
if changed > 0 then
  -- An item id is a room version: far below the 14 significant digits cjson writes exactly.
  redis.call(ARGV[6], ARGV[3], cjson.encode({
    votes = {item = tonumber(ARGV[2]), skip = votes},
  }))
end
return {changed, votes}
