-- Records the versions a room's history lost (field `lost` of the room hash, the
-- ranges as JSON) if the field is still what the caller read, and publishes the
-- new value on the room's feed; answers {1, value} when written, {0, value now}
-- when another node wrote it meanwhile (the caller merges and tries again), {-1, ''}
-- when the room is gone (nothing is written: a hash without its room would live
-- for ever). What the ranges are is decided by the node (redis.rs, `record_lost`).
-- KEYS: room. ARGV: the value read ('' for none), the new value, feed channel,
-- publish command (PUBLISH, or SPUBLISH on a cluster), the feed message.
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, ''} end
local now = redis.call('HGET', KEYS[1], 'lost') or ''
if now ~= ARGV[1] then return {0, now} end
redis.call('HSET', KEYS[1], 'lost', ARGV[2])
redis.call(ARGV[4], ARGV[3], ARGV[5])
return {1, ARGV[2]}
