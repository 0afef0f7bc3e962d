/**
 * syncroom-client — the browser (and Node) client of syncroom.
 *
 * One module per concept:
 * - `api.js`: the REST calls (`createRoom`, `listRooms`, `getRoom`, `sendCommand`, ...);
 * - `clock.js`: the server's clock (`ServerClock`);
 * - `player-sync.js`: a player kept in step with a room (`PlayerSync`, `PlayerState`, `PlayerMode`);
 * - `room.js`: one room followed live over its event stream (`SyncRoom`);
 * - `permissions.js`: who may do what (`Group`, `Who`, `roomPermissions`, `admits`);
 * - `queue.js`: the room's queue, changed by `queue` events in version order (`applyQueueEvent`, `QueueMode`, ...);
 * - `sync-report.js`: this page's drift reported to the room (`SyncReporter`, sync health);
 * - `sync-core.js`: the pure arithmetic (`roomPosition`, `decideCorrection`, `DEFAULT_CORRECTION`, ...);
 * - `youtube-player.js`: the correction a YouTube player needs (`YOUTUBE_CORRECTION`);
 * - `sim-player.js`: a simulated player with the YouTube IFrame API's interface (browser only).
 *
 * This entry point re-exports all but the simulated player, which needs a DOM:
 * import it from `syncroom-client/sim-player`.
 *
 * @module syncroom-client
 */

export { VERSION } from './version.js';
export {
  ApiError, request, createRoom, listRooms, getRoom, sendCommand, sendChat, deleteRoom,
  resetHostToken, reportSync, sendReady, listMedia, mediaArtUrl, queueAdd, queueAddAll, setQueueMode,
  setPersistent, setPermissions, deleteChat, kick, addCohost, listCohosts, revokeCohost, cohostLink,
  setVoteSkip, sendVote,
} from './api.js';
export { Group, Who, roomPermissions, admits, deriveControl } from './permissions.js';
export {
  applyQueueEvent, queueDuration, parseQueueLine, parseQueueLines, chunk, QueueMode, QueueOp, MAX_ITEMS_PER_ADD,
} from './queue.js';
export { SyncReporter, REPORT_TIMINGS, PLAYER_KINDS, MAX_REPORTED_DURATION_S } from './sync-report.js';
export { ServerClock, CLOCK_DEFAULTS, localNow } from './clock.js';
export { PlayerSync, PlayerState, PlayerMode, itemKey } from './player-sync.js';
export { SyncRoom, ROOM_TIMINGS } from './room.js';
export {
  DEFAULT_CORRECTION, MIN_RATE, MAX_RATE, roomPosition, effectiveState, sampleOffset, estimateOffset, decideCorrection,
  decideCoarseCorrection, percentile, DriftWindow, DRIFT_WINDOW,
  clampRate, isVideoId, parseTimestamp, parseYouTube, formatTime,
} from './sync-core.js';
export { YOUTUBE_CORRECTION } from './youtube-player.js';
