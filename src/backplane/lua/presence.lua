-- Records one node's listener count (and how many of them take part in the ready
-- gate) and answers {total over live nodes, public '1'/'0', the creator's set
-- ('' for none), persistent '1'/'0'}; publishes a presence message when either
-- total changed. {-1}: no room.
-- KEYS: room, events, listeners, chat (one slot). ARGV: node id, count, node count
-- ttl_ms, room ttl_ms, feed channel, gate count, publish command.
-- The totals are kept in the listeners hash (fields `_total`, `_gate`) beside the
-- per-node counts, so that nothing outside the room's slot is touched: the node
-- puts the total into the public listing itself.
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tonumber(ARGV[2]) > 0 then
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[2] .. ':' .. string.format('%d', now + tonumber(ARGV[3])) .. ':' .. ARGV[6])
else
  redis.call('HDEL', KEYS[3], ARGV[1])
end
local total = 0
local gate = 0
local all = redis.call('HGETALL', KEYS[3])
for i = 1, #all, 2 do
  if all[i] ~= '_gate' and all[i] ~= '_total' then
    local count, expires, gated = string.match(all[i + 1], '^(%d+):(%d+):?(%d*)$')
    if count == nil or tonumber(expires) < now then
      redis.call('HDEL', KEYS[3], all[i])
    else
      total = total + tonumber(count)
      gate = gate + (tonumber(gated) or 0)
    end
  end
end
local room = redis.call('HMGET', KEYS[1], 'p', 'pub', 'c')
-- A persistent room's keys have no expiry to extend (see create.lua).
if total > 0 and room[1] ~= '1' then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
  redis.call('PEXPIRE', KEYS[3], ARGV[4])
  redis.call('PEXPIRE', KEYS[4], ARGV[4])
end
local old = redis.call('HGET', KEYS[3], '_total')
local old_gate = redis.call('HGET', KEYS[3], '_gate')
if total > 0 then
  redis.call('HSET', KEYS[3], '_total', total, '_gate', gate)
else
  redis.call('HDEL', KEYS[3], '_total', '_gate')
end
if tonumber(old or '0') ~= total or tonumber(old_gate or '0') ~= gate then
  -- `now` (ms since 1970) has 13 digits until the year 2286: cjson writes up to 14
  -- significant digits, so it stays an exact integer on the wire.
  redis.call(ARGV[7], ARGV[5], cjson.encode({
    presence = {listeners = total, gate_listeners = gate, server_time = now},
  }))
end
return {total, room[2] or '0', room[3] or '', room[1] or '0'}
