-- Counts one event stream ready for a room's ready gate; answers {ready, taking part}
-- and publishes the gate's progress on the room's feed.
-- KEYS: ready set (of this gate), listeners. ARGV: stream id, set ttl_ms, gate id,
-- feed channel, publish command (PUBLISH, or SPUBLISH on a cluster).
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local ready = redis.call('SCARD', KEYS[1])
local gate = tonumber(redis.call('HGET', KEYS[2], '_gate') or '0')
-- A gate id is a room version: far below the 14 significant digits cjson writes exactly.
redis.call(ARGV[5], ARGV[4], cjson.encode({
  gate = {ready_gate = tonumber(ARGV[3]), ready = ready, listeners = gate},
}))
return {ready, gate}
