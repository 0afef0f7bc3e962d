-- Compare-and-set commit; answers {status, listeners}: status 1 done, 0 version
-- conflict, -1 room gone, -2 past the caller's deadline (nothing written);
-- listeners is the room's listener total as presence.lua last counted it.
-- KEYS: room, events, listeners, chat (one slot). ARGV: read version, new version,
-- json, ttl_ms, history length, feed channel, closing ('1'/'0'), deadline_ms, chat
-- history length, public ('1'/'0'), clear the kept chat first ('1'/'0'), persistent
-- ('1'/'0'), publish command (PUBLISH, or SPUBLISH on a cluster), the commit's id
-- (random; its events carry it too, see `lineage` in redis.rs), history bytes, k,
-- then k chat messages to keep (ARGV[17..16+k]), then each event's feed message.
-- The events stream keeps at most `history length` entries and `history bytes` of
-- them (their feed messages' lengths), the oldest going first; the newest entry
-- always stays. The room's field `hb` counts those bytes as of version `hbv`.
-- The budgets that span rooms are kept by the node around this call (redis.rs,
-- `budgets`); a persistent room's reservation is made before it.
-- A persistent room's keys have no expiry (see create.lua).
local t = redis.call('TIME')
if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > tonumber(ARGV[8]) then return {-2, 0} end
local v = redis.call('HGET', KEYS[1], 'v')
if not v then return {-1, 0} end
if v ~= ARGV[1] then return {0, 0} end
local total = tonumber(redis.call('HGET', KEYS[3], '_total') or '0')
local version = tonumber(ARGV[1])
local keep = tonumber(ARGV[9])
local chats = tonumber(ARGV[16])
if ARGV[11] == '1' then
  redis.call('DEL', KEYS[4])
end
for i = 17, 16 + chats do
  if keep > 0 then
    redis.call('RPUSH', KEYS[4], ARGV[i])
    redis.call('LTRIM', KEYS[4], -keep, -1)
  end
end
local counted = redis.call('HMGET', KEYS[1], 'hb', 'hbv')
local bytes = 0
if counted[2] == ARGV[1] then
  bytes = tonumber(counted[1])
else
  -- Not counted at this version (a node of an older version committed since,
  -- or nothing was counted yet): count what the stream holds.
  for _, entry in ipairs(redis.call('XRANGE', KEYS[2], '-', '+')) do
    bytes = bytes + #entry[2][2]
  end
end
for i = 17 + chats, #ARGV do
  version = version + 1
  redis.call('XADD', KEYS[2], string.format('%d-0', version), 'e', ARGV[i])
  bytes = bytes + #ARGV[i]
  redis.call(ARGV[13], ARGV[6], ARGV[i])
end
-- Trim the oldest entries past either bound, a few read at a time.
local max_len, max_bytes = tonumber(ARGV[5]), tonumber(ARGV[15])
local left = redis.call('XLEN', KEYS[2])
local from, last_dropped = '-', nil
while left > 1 and (left > max_len or bytes > max_bytes) do
  local batch = redis.call('XRANGE', KEYS[2], from, '+', 'COUNT', 16)
  if #batch == 0 then break end
  for _, entry in ipairs(batch) do
    if left <= 1 or (left <= max_len and bytes <= max_bytes) then break end
    bytes = bytes - #entry[2][2]
    left = left - 1
    last_dropped = entry[1]
    from = '(' .. entry[1]
  end
end
if last_dropped then
  local v_dropped = tonumber(string.match(last_dropped, '^(%d+)'))
  redis.call('XTRIM', KEYS[2], 'MINID', string.format('%d-0', v_dropped + 1))
end
if ARGV[7] == '1' then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
else
  redis.call('HSET', KEYS[1], 'v', ARGV[2], 'json', ARGV[3], 'p', ARGV[12], 'pub', ARGV[10], 'cid', ARGV[14], 'hb', bytes, 'hbv', ARGV[2])
  if ARGV[12] == '1' then
    redis.call('PERSIST', KEYS[1])
    redis.call('PERSIST', KEYS[2])
    redis.call('PERSIST', KEYS[4])
  else
    redis.call('PEXPIRE', KEYS[1], ARGV[4])
    redis.call('PEXPIRE', KEYS[2], ARGV[4])
    redis.call('PEXPIRE', KEYS[4], ARGV[4])
  end
end
return {1, total}
