-- Compare-and-set commit: 1 done, 0 version conflict, -1 room gone, -2 past the
-- caller's deadline, -3 the room would become persistent past the cluster's bound
-- (nothing written).
-- KEYS: room, events, listeners, rooms, chat, public, persistent rooms. ARGV: read
-- version, new version, json, ttl_ms, history length, feed channel, id, closing
-- ('1'/'0'), deadline_ms, chat history length, public ('1'/'0'), clear the kept chat
-- first ('1'/'0'), persistent ('1'/'0'), max persistent rooms, k, then k chat messages
-- to keep (ARGV[16..15+k]), then each event's feed message.
-- A persistent room's keys have no expiry (see create.lua).
local t = redis.call('TIME')
if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > tonumber(ARGV[9]) then return -2 end
local v = redis.call('HGET', KEYS[1], 'v')
if not v then return -1 end
if v ~= ARGV[1] then return 0 end
local persistent = ARGV[8] ~= '1' and ARGV[13] == '1'
-- Every script that makes a room persistent or ends one keeps KEYS[7] exact.
if persistent and not redis.call('ZSCORE', KEYS[7], ARGV[7])
    and redis.call('ZCARD', KEYS[7]) >= tonumber(ARGV[14]) then
  return -3
end
local version = tonumber(ARGV[1])
local keep = tonumber(ARGV[10])
local chats = tonumber(ARGV[15])
if ARGV[12] == '1' then
  redis.call('DEL', KEYS[5])
end
for i = 16, 15 + chats do
  if keep > 0 then
    redis.call('RPUSH', KEYS[5], ARGV[i])
    redis.call('LTRIM', KEYS[5], -keep, -1)
  end
end
for i = 16 + chats, #ARGV do
  version = version + 1
  redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[5], string.format('%d-0', version), 'e', ARGV[i])
  redis.call('PUBLISH', ARGV[6], ARGV[i])
end
-- The creator's set of rooms (see create.lua).
local creator = redis.call('HGET', KEYS[1], 'c')
if ARGV[8] == '1' then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[5])
  redis.call('ZREM', KEYS[4], ARGV[7])
  redis.call('ZREM', KEYS[6], ARGV[7])
  redis.call('ZREM', KEYS[7], ARGV[7])
  if creator then redis.call('ZREM', creator, ARGV[7]) end
else
  redis.call('HSET', KEYS[1], 'v', ARGV[2], 'json', ARGV[3], 'p', ARGV[13])
  if persistent then
    redis.call('ZADD', KEYS[7], 0, ARGV[7])
    redis.call('PERSIST', KEYS[1])
    redis.call('PERSIST', KEYS[2])
    redis.call('PERSIST', KEYS[5])
    if creator then redis.call('PERSIST', creator) end
  else
    redis.call('ZREM', KEYS[7], ARGV[7])
    redis.call('PEXPIRE', KEYS[1], ARGV[4])
    redis.call('PEXPIRE', KEYS[2], ARGV[4])
    redis.call('PEXPIRE', KEYS[5], ARGV[4])
  end
  if ARGV[11] == '1' then
    if not redis.call('ZSCORE', KEYS[6], ARGV[7]) then
      redis.call('ZADD', KEYS[6], redis.call('ZSCORE', KEYS[4], ARGV[7]) or 0, ARGV[7])
    end
  else
    redis.call('ZREM', KEYS[6], ARGV[7])
  end
  if creator and not persistent then
    local creator_ttl = redis.call('PTTL', creator)
    if creator_ttl ~= -1 and creator_ttl < tonumber(ARGV[4]) then
      redis.call('PEXPIRE', creator, ARGV[4])
    end
  end
end
return 1
