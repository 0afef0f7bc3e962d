-- Creates a room unless its id is taken: 1 created, 0 taken.
-- KEYS: room, events, listeners, chat (one slot: they share the room's tag).
-- ARGV: version, json, ttl_ms, public ('1'/'0'), persistent ('1'/'0'), the
-- creator's set of rooms (a key name, kept in field `c`; '' for none).
--
-- The budgets that span rooms (--max-rooms, --max-rooms-per-client,
-- --max-persistent-rooms) are reserved by the node before this runs, each in its
-- own key (redis.rs, `budgets`): a script may touch one slot only on a cluster.
-- A room counts for its creator while it exists and its field `c` names the
-- creator's set, so a room that expired leaves no count behind.
-- A persistent room (field `p` = '1') has no expiry.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'json', ARGV[2], 'p', ARGV[5], 'pub', ARGV[4])
if ARGV[6] ~= '' then redis.call('HSET', KEYS[1], 'c', ARGV[6]) end
if ARGV[5] ~= '1' then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 1
