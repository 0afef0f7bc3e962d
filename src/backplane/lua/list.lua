-- The busiest public rooms with their JSON, as score, json pairs; forgets ids whose
-- room expired. KEYS: public. ARGV: limit, room key prefix, room key suffix.
local out = {}
local ids = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[1]) * 2, 'WITHSCORES')
for i = 1, #ids, 2 do
  local json = redis.call('HGET', ARGV[2] .. ids[i] .. ARGV[3], 'json')
  if json then
    table.insert(out, ids[i + 1])
    table.insert(out, json)
  else
    redis.call('ZREM', KEYS[1], ids[i])
  end
end
return out
