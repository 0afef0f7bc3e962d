-- Changes a room's sync reports and answers {status, summary JSON, retry ms}:
-- status 1 done, 0 the stream reported too soon (retry ms set), -2 the room holds
-- as many reports as it may, -1 no room. Expired reports are forgotten first;
-- the summary is published on the feed when it changed.
--
-- The summary is the one room/sync.rs `summarize` computes: reporters, those in
-- sync (p95 <= in-sync ms and not buffering), the nearest-rank p95 of the p95s of
-- those not buffering, and the worst few behind (buffering first, then the largest
-- drift, then the stream id), drifts rounded to 0.1 ms half away from zero. Both
-- are tested against one table of cases (tests/cases/sync_summary.json).
--
-- KEYS: room, sync (hash stream -> "p95_ms:received_at_ms:buffering 0|1:name"),
-- sync summary, sync durations (hash stream -> "seconds:item", for the reports
-- that carried a duration; apart from the reports so that nodes that predate
-- durations read the reports as before).
-- ARGV: mode (report | forget | sweep), lifetime ms, min gap ms, max reports,
-- in-sync ms, room ttl ms, feed channel, how many behind to list, publish command
-- (PUBLISH, or SPUBLISH on a cluster), then for report:
-- stream, p95 ms, buffering (0 | 1), name ('' for none), duration seconds ('' for
-- none), the item it is of; for forget: the streams.
-- Answers as a fourth element, for a report with a duration, the durations the
-- live reports give for its item (one per stream).
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, '', 0, {}} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lifetime = tonumber(ARGV[2])
local live = {}
local count = 0
local all = redis.call('HGETALL', KEYS[2])
for i = 1, #all, 2 do
  local p95, at, buffering, name = string.match(all[i + 1], '^([%d%.]+):(%d+):([01]):(.*)$')
  if p95 == nil then
    -- An entry written before reports carried a name: "p95_ms:received_at_ms".
    p95, at = string.match(all[i + 1], '^([%d%.]+):(%d+)$')
    buffering, name = '0', ''
  end
  if p95 == nil or tonumber(at) + lifetime <= now then
    redis.call('HDEL', KEYS[2], all[i])
    if KEYS[4] then redis.call('HDEL', KEYS[4], all[i]) end
  else
    live[all[i]] = {tonumber(p95), tonumber(at), buffering == '1', name}
    count = count + 1
  end
end
if ARGV[1] == 'report' then
  local stream = ARGV[10]
  local previous = live[stream]
  if previous then
    local wait = previous[2] + tonumber(ARGV[3]) - now
    if wait > 0 then return {0, '', wait, {}} end
  elseif count >= tonumber(ARGV[4]) then
    return {-2, '', 0, {}}
  end
  redis.call('HSET', KEYS[2], stream, ARGV[11] .. ':' .. string.format('%d', now) .. ':' .. ARGV[12] .. ':' .. ARGV[13])
  redis.call('PEXPIRE', KEYS[2], ARGV[6])
  live[stream] = {tonumber(ARGV[11]), now, ARGV[12] == '1', ARGV[13]}
  if KEYS[4] then
    if ARGV[14] ~= nil and ARGV[14] ~= '' then
      redis.call('HSET', KEYS[4], stream, ARGV[14] .. ':' .. ARGV[15])
      redis.call('PEXPIRE', KEYS[4], ARGV[6])
    else
      redis.call('HDEL', KEYS[4], stream)
    end
  end
elseif ARGV[1] == 'forget' then
  for i = 10, #ARGV do
    if live[ARGV[i]] then
      redis.call('HDEL', KEYS[2], ARGV[i])
      if KEYS[4] then redis.call('HDEL', KEYS[4], ARGV[i]) end
      live[ARGV[i]] = nil
    end
  end
end

-- A drift in the summary's 0.1 ms steps, rounded half away from zero like Rust's
-- `f64::round` (drifts are never negative). `%.1f` would round halves to even.
local function tenths(ms)
  local scaled = ms * 10
  local whole = math.floor(scaled)
  if scaled - whole >= 0.5 then whole = whole + 1 end
  return whole / 10
end

local in_sync_ms = tonumber(ARGV[5])
local listed_most = tonumber(ARGV[8])
local values = {}
local behind = {}
local in_sync = 0
local n = 0
for stream, entry in pairs(live) do
  n = n + 1
  -- A stalled or loading player's distance is not drift: left out of the p95.
  if not entry[3] then values[#values + 1] = entry[1] end
  if entry[3] or entry[1] > in_sync_ms then
    behind[#behind + 1] = {stream, entry[1], entry[3], entry[4]}
  else
    in_sync = in_sync + 1
  end
end
table.sort(values)
-- Stream ids are lowercase hex, so Lua's `<` (strcoll) orders them as Rust's byte order does.
table.sort(behind, function(a, b)
  if a[3] ~= b[3] then return a[3] end
  if a[2] ~= b[2] then return a[2] > b[2] end
  return a[1] < b[1]
end)
local listed = {}
for i = 1, math.min(#behind, listed_most) do
  local b = behind[i]
  listed[i] = {
    name = b[4] == '' and cjson.null or b[4],
    drift_p95_ms = tenths(b[2]),
    buffering = b[3],
  }
end
local summary = {reporting = n, in_sync = in_sync, drift_p95_ms = cjson.null}
if #values > 0 then
  -- Nearest rank: the smallest value with at least 95 % of values at or below it.
  summary.drift_p95_ms = tenths(values[math.max(1, math.ceil(#values * 95 / 100))])
end
-- cjson writes an empty table as `{}`, never `[]`: an empty list is left out, and
-- readers take a missing `behind` as empty.
if #listed > 0 then summary.behind = listed end
-- Every number here fits cjson's 14 significant digits: counts, and drifts of at
-- most 600000.0 ms in 0.1 ms steps.
local encoded = cjson.encode(summary)
if redis.call('GET', KEYS[3]) ~= encoded then
  redis.call('SET', KEYS[3], encoded, 'PX', ARGV[6])
  redis.call(ARGV[9], ARGV[7], cjson.encode({sync = summary}))
end
local durations = {}
if ARGV[1] == 'report' and KEYS[4] and ARGV[14] ~= nil and ARGV[14] ~= '' then
  local reported = redis.call('HGETALL', KEYS[4])
  for i = 1, #reported, 2 do
    local seconds, item = string.match(reported[i + 1], '^([^:]+):(.*)$')
    if live[reported[i]] and item == ARGV[15] then durations[#durations + 1] = seconds end
  end
end
return {1, encoded, 0, durations}
