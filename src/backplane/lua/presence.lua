-- Records one node's listener count (and how many of them take part in the ready
-- gate) and answers the room's total over live nodes; publishes a presence message
-- when either total changed. -1: no room.
-- KEYS: room, events, listeners, rooms, chat, public. ARGV: node id, count, node count ttl_ms,
-- room ttl_ms, id, feed channel, gate count.
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tonumber(ARGV[2]) > 0 then
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[2] .. ':' .. string.format('%d', now + tonumber(ARGV[3])) .. ':' .. ARGV[7])
else
  redis.call('HDEL', KEYS[3], ARGV[1])
end
local total = 0
local gate = 0
local all = redis.call('HGETALL', KEYS[3])
for i = 1, #all, 2 do
  if all[i] ~= '_gate' then
    local count, expires, gated = string.match(all[i + 1], '^(%d+):(%d+):?(%d*)$')
    if count == nil or tonumber(expires) < now then
      redis.call('HDEL', KEYS[3], all[i])
    else
      total = total + tonumber(count)
      gate = gate + (tonumber(gated) or 0)
    end
  end
end
-- A persistent room's keys have no expiry to extend (see create.lua).
if total > 0 and redis.call('HGET', KEYS[1], 'p') ~= '1' then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
  redis.call('PEXPIRE', KEYS[3], ARGV[4])
  redis.call('PEXPIRE', KEYS[5], ARGV[4])
  -- The creator's set of rooms outlives each of them (see create.lua).
  local creator = redis.call('HGET', KEYS[1], 'c')
  local creator_ttl = creator and redis.call('PTTL', creator)
  if creator and creator_ttl ~= -1 and creator_ttl < tonumber(ARGV[4]) then
    redis.call('PEXPIRE', creator, ARGV[4])
  end
end
local old = redis.call('ZSCORE', KEYS[4], ARGV[5])
local old_gate = redis.call('HGET', KEYS[3], '_gate')
redis.call('ZADD', KEYS[4], total, ARGV[5])
if redis.call('ZSCORE', KEYS[6], ARGV[5]) then
  redis.call('ZADD', KEYS[6], total, ARGV[5])
end
if total > 0 then redis.call('HSET', KEYS[3], '_gate', gate) else redis.call('HDEL', KEYS[3], '_gate') end
if (not old) or tonumber(old) ~= total or tonumber(old_gate or '0') ~= gate then
  -- `now` (ms since 1970) has 13 digits until the year 2286: cjson writes up to 14
  -- significant digits, so it stays an exact integer on the wire.
  redis.call('PUBLISH', ARGV[6], cjson.encode({
    presence = {listeners = total, gate_listeners = gate, server_time = now},
  }))
end
return total
