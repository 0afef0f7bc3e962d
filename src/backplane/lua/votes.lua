-- Casts or takes back votes to skip a room's item; answers {changed, votes} and
-- publishes the item's votes on the room's feed when they changed.
-- KEYS: votes set (of this item). ARGV: set ttl_ms, item, feed channel, op
-- ("cast" or "forget"), then the stream ids.
local changed = 0
if ARGV[4] == 'cast' then
  changed = redis.call('SADD', KEYS[1], ARGV[5])
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
else
  for i = 5, #ARGV do
    changed = changed + redis.call('SREM', KEYS[1], ARGV[i])
  end
end
local votes = redis.call('SCARD', KEYS[1])
if changed > 0 then
  -- An item id is a room version: far below the 14 significant digits cjson writes exactly.
  redis.call('PUBLISH', ARGV[3], cjson.encode({
    votes = {item = tonumber(ARGV[2]), skip = votes},
  }))
end
return {changed, votes}
