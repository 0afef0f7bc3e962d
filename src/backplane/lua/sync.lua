-- Changes a room's sync reports and answers {status, summary JSON, retry ms}:
-- status 1 done, 0 the stream reported too soon (retry ms set), -2 the room holds
-- as many reports as it may, -1 no room. Expired reports are forgotten first;
-- the summary (see room/sync.rs: reporters, those with p95 <= in-sync ms, the
-- nearest-rank p95 of their p95s) is published on the feed when it changed.
-- KEYS: room, sync (hash stream -> "p95_ms:received_at_ms"), sync summary.
-- ARGV: mode (report | forget | sweep), lifetime ms, min gap ms, max reports,
-- in-sync ms, room ttl ms, feed channel, then for report: stream, p95 ms;
-- for forget: the streams.
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, '', 0} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lifetime = tonumber(ARGV[2])
local live = {}
local count = 0
local all = redis.call('HGETALL', KEYS[2])
for i = 1, #all, 2 do
  local p95, at = string.match(all[i + 1], '^([%d%.]+):(%d+)$')
  if p95 == nil or tonumber(at) + lifetime <= now then
    redis.call('HDEL', KEYS[2], all[i])
  else
    live[all[i]] = {tonumber(p95), tonumber(at)}
    count = count + 1
  end
end
if ARGV[1] == 'report' then
  local stream = ARGV[8]
  local previous = live[stream]
  if previous then
    local wait = previous[2] + tonumber(ARGV[3]) - now
    if wait > 0 then return {0, '', wait} end
  elseif count >= tonumber(ARGV[4]) then
    return {-2, '', 0}
  end
  redis.call('HSET', KEYS[2], stream, ARGV[9] .. ':' .. string.format('%d', now))
  redis.call('PEXPIRE', KEYS[2], ARGV[6])
  live[stream] = {tonumber(ARGV[9]), now}
elseif ARGV[1] == 'forget' then
  for i = 8, #ARGV do
    if live[ARGV[i]] then
      redis.call('HDEL', KEYS[2], ARGV[i])
      live[ARGV[i]] = nil
    end
  end
end
local values = {}
for _, entry in pairs(live) do values[#values + 1] = entry[1] end
table.sort(values)
local n = #values
local summary
if n == 0 then
  summary = '{"reporting":0,"in_sync":0,"drift_p95_ms":null}'
else
  local in_sync = 0
  for _, value in ipairs(values) do
    if value <= tonumber(ARGV[5]) then in_sync = in_sync + 1 end
  end
  local rank = math.max(1, math.ceil(n * 95 / 100))
  summary = string.format('{"reporting":%d,"in_sync":%d,"drift_p95_ms":%.1f}', n, in_sync, values[rank])
end
if redis.call('GET', KEYS[3]) ~= summary then
  redis.call('SET', KEYS[3], summary, 'PX', ARGV[6])
  redis.call('PUBLISH', ARGV[7], '{"sync":' .. summary .. '}')
end
return {1, summary, 0}
