-- Counts one event stream ready for a room's ready gate, or takes back the readiness of
-- streams that ended; answers {counted, ready, taking part} and publishes the gate's
-- progress on the room's feed when it changed.
-- KEYS: ready set (of this gate), listeners, the room's gone set (streams that ended).
-- ARGV: set ttl_ms, gate id, feed channel, publish command (PUBLISH, or SPUBLISH on a
-- cluster), op ("report" or "forget"), the most streams the gone set keeps, the gone
-- set's ttl_ms, then the stream ids.
-- A stream that ended is forgotten and remembered as gone: its token, still valid until
-- it expires, reports nothing after that.
local counted = 0
local changed = 0
if ARGV[5] == 'report' then
  if not redis.call('ZSCORE', KEYS[3], ARGV[8]) then
    counted = 1
    changed = redis.call('SADD', KEYS[1], ARGV[8])
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
  end
else
  local now = redis.call('TIME')
  local score = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  for i = 8, #ARGV do
    changed = changed + redis.call('SREM', KEYS[1], ARGV[i])
    redis.call('ZADD', KEYS[3], score, ARGV[i])
  end
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -tonumber(ARGV[6]) - 1)
  -- Never shortens the set's life: the votes keep it as long.
  if redis.call('PTTL', KEYS[3]) < tonumber(ARGV[7]) then
    redis.call('PEXPIRE', KEYS[3], ARGV[7])
  end
end
local ready = redis.call('SCARD', KEYS[1])
local gate = tonumber(redis.call('HGET', KEYS[2], '_gate') or '0')
if counted > 0 or changed > 0 then
  -- A gate id is a room version: far below the 14 significant digits cjson writes exactly.
  redis.call(ARGV[4], ARGV[3], cjson.encode({
    gate = {ready_gate = tonumber(ARGV[2]), ready = ready, listeners = gate},
  }))
end
return {counted, ready, gate}
