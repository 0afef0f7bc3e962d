// Type declarations of syncroom-client's public API (index.js).

export declare const VERSION: string;

/* ------------------------------------------------------------------ objects of the API */

/** A room's playback state, as the server sends it. */
export interface RoomState {
  /** A YouTube item's id; `null` for a media item. */
  video_id: string | null;
  /** A media item's URL (absolute http(s) or `/media/...`); `null` for a YouTube item. */
  media_url?: string | null;
  /** Seconds, at `updated_at`. */
  position: number;
  paused: boolean;
  rate: number;
  /** Server time of the last change, Unix milliseconds. */
  updated_at: number;
  /** Seconds, once known. */
  duration?: number | null;
  /** A pending start, server Unix ms: paused at `position` until then, playing from it after. */
  starts_at?: number | null;
  /** The open ready gate's id (named in readiness reports), while the start waits on it. */
  ready_gate?: number | null;
  /** The queue item that was loaded (`next`, auto-advance); `null` when loaded by `load`. */
  item_id?: string | null;
  /** The loaded item's title and artist (at most 200 characters each), `null` when unknown. */
  title?: string | null;
  artist?: string | null;
  /** Who added the loaded item (chat-name rules), `null` when unknown. */
  added_by?: string | null;
}

/** One queued item: exactly one of `video_id` and `media_url` is set. */
export interface QueueItem {
  /** Given by the server, never reused within a room. */
  item_id: string;
  video_id: string | null;
  media_url: string | null;
  /** At most 200 characters, `null` when none. */
  title: string | null;
  artist: string | null;
  /** Seconds, in (0, 1e6], `null` until known. */
  duration: number | null;
  /** The adder's name (chat-name rules), `null` when none was given. */
  added_by: string | null;
}

/** What happens to the queue as items finish. */
export type QueueModeValue = 'normal' | 'loop' | 'shuffle';
export declare const QueueMode: Readonly<{ NORMAL: 'normal'; LOOP: 'loop'; SHUFFLE: 'shuffle' }>;

/** The kinds of change a `queue` event carries. */
export type QueueOpValue = 'add' | 'remove' | 'move' | 'update';
export declare const QueueOp: Readonly<{ ADD: 'add'; REMOVE: 'remove'; MOVE: 'move'; UPDATE: 'update' }>;

/** The data of a `queue` event: what changed, never the whole queue. */
export type QueueEvent = { version: number; server_time: number } & (
  | { op: 'add'; items: QueueItem[]; index?: number }
  | { op: 'remove'; item_ids: string[] }
  | { op: 'move'; item_id: string; index: number }
  | { op: 'update'; items: QueueItem[] }
);

/** The most items one `queue_add` takes (`items`). */
export declare const MAX_ITEMS_PER_ADD: number;
/** The queue after one `queue` event; `null` when the event cannot be applied (an unknown op). */
export declare function applyQueueEvent(queue: QueueItem[], event: QueueEvent | { queue: QueueItem[] }): QueueItem[] | null;
/** The total of the known durations (seconds), and how many items have none yet. */
export declare function queueDuration(queue: QueueItem[]): { seconds: number; unknown: number };
/** A queue item a pasted line names (a YouTube link or id, a playlist link, a media path or link), or `null`. */
export declare function parseQueueLine(line: string): NewQueueItem | { playlist_id: string } | null;
/** Pasted text, one link per line: the items with their 1-based line, and the lines that name none. */
export declare function parseQueueLines(text: string): {
  items: { line: number; item: NewQueueItem | { playlist_id: string } }[];
  rejected: { line: number; text: string }[];
};
/** `list` in consecutive batches of at most `size` (default `MAX_ITEMS_PER_ADD`). */
export declare function chunk<T>(list: T[], size?: number): T[][];

/** An item to add: exactly one of `video_id` and `media_url`. */
export type NewQueueItem = ({ video_id: string; media_url?: null } | { media_url: string; video_id?: null }) & {
  title?: string;
  artist?: string;
  /** Seconds, in (0, 1e6]. */
  duration?: number;
  /** Who added it (chat-name rules); defaults to the command's `name`. */
  name?: string;
};

/** `custom` is derived from `permissions`, never sent in a `control` command. */
export type Control = 'host' | 'open' | 'custom';
/** Who may act in a permission group. */
export type Who = 'host' | 'cohost' | 'anyone';
/** Who may do what, per group (`moderate` is never `anyone`). */
export interface Permissions {
  playback: Who;
  queue_add: Who;
  queue_edit: Who;
  skip: Who;
  moderate: Who;
  chat: Who;
}
/** A permission group's name. */
export type GroupName = keyof Permissions;
/** The groups of actions, by name. */
export declare const Group: Readonly<{
  PLAYBACK: 'playback'; QUEUE_ADD: 'queue_add'; QUEUE_EDIT: 'queue_edit'; SKIP: 'skip'; MODERATE: 'moderate'; CHAT: 'chat';
}>;
/** Who a group is given to, and who a client is (its role). */
export declare const Who: Readonly<{ HOST: 'host'; COHOST: 'cohost'; ANYONE: 'anyone' }>;
/** A room's permissions: its `permissions`, or (a server without them) what its `control` means. */
export declare function roomPermissions(room: Pick<Room, 'control'> & { permissions?: Partial<Permissions> } | null | undefined): Permissions;
/** Whether `role` may act in a group given to `who`. */
export declare function admits(who: Who, role: Who): boolean;
/** The `control` the permissions amount to, as the server derives it. */
export declare function deriveControl(permissions: Permissions): Control;
/** A co-host as everyone sees it: never the token. */
export interface Cohost {
  cohost_id: string;
  name: string;
}
export type Visibility = 'public' | 'unlisted';
/** A listening stream that gave a name (`?name=`): shown to the room. `stream` is what `kick` takes. */
export interface Member {
  stream: string;
  name: string;
}

export interface Room {
  room_id: string;
  name?: string | null;
  control: Control;
  visibility: Visibility;
  chat_enabled: boolean;
  /** Exempt from the server's `--room-ttl`: the room stays until deleted. */
  persistent: boolean;
  listeners: number;
  version: number;
  state: RoomState;
  queue: QueueItem[];
  /** The listeners' sync health (see `POST /api/rooms/{room_id}/sync`). */
  sync?: SyncSummary;
  /** What happens as items finish; `normal` by default. */
  queue_mode?: QueueModeValue;
  permissions: Permissions;
  cohosts: Cohost[];
  /** The host's vote skip setting; `ratio: 0` is off (the default). */
  vote_skip: VoteSkip;
  /** Who's here, as of the snapshot: up to 100 named listening streams; `members` events say what changed since. */
  members: Member[];
  /** The listeners `members` does not show. */
  unnamed: number;
  [key: string]: unknown;
}

/** Vote skip: an item is skipped when `max(min_votes, ceil(ratio × listeners))` live streams voted. */
export interface VoteSkip {
  /** 0 to 1; 0 turns vote skip off. */
  ratio: number;
  /** 1 to 10000. */
  min_votes: number;
}

/** How the votes to skip the loaded item stand (the `votes` event, and a vote's answer). */
export interface Votes {
  skip: number;
  needed: number;
  /** The room's live streams over every node. */
  listeners: number;
}

/** A room's sync health: listeners reporting, how many within 50 ms, the room's drift p95, who is behind. */
export interface SyncSummary {
  reporting: number;
  /** Reporters within 50 ms and not buffering. */
  in_sync: number;
  /** The nearest-rank p95 of the reporters' drift p95s (ms); `null` while nobody reports. */
  drift_p95_ms: number | null;
  /** At most 5 reporters out of sync: buffering ones first, then the largest drift. */
  behind: SyncBehind[];
}

/** A listener out of sync, as the summary lists it. */
export interface SyncBehind {
  /** The name its page reported; `null` without one. */
  name: string | null;
  drift_p95_ms: number;
  /** Its player buffers while the room plays. */
  buffering: boolean;
}

/** The player a sync report names. */
export type PlayerKind = 'youtube' | 'media' | 'sim';

/** The body of `POST /api/rooms/{room_id}/sync`. */
export interface SyncReport {
  stream_token: string;
  drift_p50_ms: number;
  drift_p95_ms: number;
  player: PlayerKind;
  /** The player buffers (stalls) while the room plays; `false` when absent. */
  buffering?: boolean;
  /** The listener's display name (1 to 64 characters), shown to the room when behind. */
  name?: string;
  /** Seconds, in (0, 1e6]: the player's length of the current item, while the room does not know it. */
  duration?: number;
}

/** The answer to a sync report. */
export interface SyncAccepted {
  sync: SyncSummary;
  report_every_ms: number;
}

export interface RoomSummary {
  room_id: string;
  name?: string | null;
  listeners: number;
  video_id?: string | null;
}

/** A command body (see the API reference's command table). */
export type Command =
  | { type: 'play'; position?: number; expected_version?: number }
  | { type: 'pause'; position?: number; expected_version?: number }
  | { type: 'seek'; position: number; expected_version?: number }
  | { type: 'rate'; rate: number; expected_version?: number }
  | ({ type: 'load'; position?: number; duration?: number; title?: string; artist?: string; expected_version?: number }
    & ({ video_id: string } | { media_url: string }))
  | { type: 'duration'; duration: number; expected_version?: number }
  | ({ type: 'queue_add'; expected_version?: number } & QueueAddFields)
  | { type: 'queue_remove'; item_id: string; expected_version?: number }
  | { type: 'queue_move'; item_id: string; index: number; expected_version?: number }
  | { type: 'queue_mode'; queue_mode: QueueModeValue; expected_version?: number }
  | { type: 'persistent'; persistent: boolean; expected_version?: number }
  | { type: 'vote_skip'; ratio: number; min_votes: number; expected_version?: number }
  | { type: 'next'; expected_version?: number }
  | { type: 'permissions'; permissions: Partial<Permissions>; expected_version?: number }
  | { type: 'delete_chat'; chat_version: number; expected_version?: number }
  | { type: 'kick'; stream: string; expected_version?: number }
  | { type: string; [field: string]: unknown };

/**
 * What `queue_add` takes: one item, `items` (1 to `MAX_ITEMS_PER_ADD`, all or nothing; not with
 * the single-item fields) or a YouTube `playlist_id` (the server needs its YouTube API key).
 * `name`: who added them (an item's own `name` wins).
 */
export type QueueAddFields =
  | NewQueueItem
  | { items: NewQueueItem[]; name?: string }
  | { playlist_id: string; name?: string };

export interface CommandResult {
  version: number;
  room: Room;
}

/* ------------------------------------------------------------------ api.js */

/** An error answered by the server: `status`, `code` and `message` from its JSON body. */
export declare class ApiError extends Error {
  constructor(status: number, code: string, message?: string, retryAfter?: number | null);
  readonly status: number;
  readonly code: string;
  /** Seconds, from `Retry-After` (429, 503), else `null`. */
  readonly retryAfter: number | null;
  /** Set by `queueAddAll`: items added before the refused batch. */
  added?: number;
  /** Set by `queueAddAll`: the index of the refused batch's first item (its `items[i]` counts from it). */
  batchStart?: number;
}

export declare function request(
  baseUrl: string,
  method: string,
  path: string,
  options?: { body?: unknown; token?: string | null },
): Promise<any>;

export interface CreateRoomFields {
  room_id?: string;
  name?: string;
  control?: Control;
  visibility?: Visibility;
  video_id?: string;
  media_url?: string;
  /** Exempt from the server's idle expiry (counts toward the creator's room budget). */
  persistent?: boolean;
}

export declare function createRoom(
  fields?: CreateRoomFields,
  baseUrl?: string,
): Promise<{ room_id: string; host_token: string; room: Room }>;
export declare function listRooms(baseUrl?: string): Promise<{ rooms: RoomSummary[] }>;
export declare function getRoom(roomId: string, baseUrl?: string): Promise<Room>;
export declare function sendCommand(
  roomId: string,
  command: Command,
  hostToken?: string | null,
  baseUrl?: string,
): Promise<CommandResult>;
/** `token`: the host's or a co-host's, needed where the room's `chat` permission is not `anyone`. */
export declare function sendChat(roomId: string, name: string, text: string, baseUrl?: string, token?: string | null): Promise<{ version: number }>;
/** Host only: who may do what, any subset of the groups. */
export declare function setPermissions(roomId: string, permissions: Partial<Permissions>, hostToken: string, baseUrl?: string): Promise<CommandResult>;
/** Group `moderate`: removes the kept chat message sent as `chatVersion` (`404` when not kept). */
export declare function deleteChat(roomId: string, chatVersion: number, token: string | null, baseUrl?: string): Promise<CommandResult>;
/** Group `moderate`: ends the listener's stream `stream` (its `hello` id, as in `members`); its token is refused from then on. */
export declare function kick(roomId: string, stream: string, token: string | null, baseUrl?: string): Promise<CommandResult>;
/** Host only: makes a co-host; the token is shown only here. */
export declare function addCohost(roomId: string, name: string, hostToken: string, baseUrl?: string): Promise<{ cohost_id: string; cohost_token: string; name: string }>;
/** Host only: the room's co-hosts, oldest first, never their tokens. */
export declare function listCohosts(roomId: string, hostToken: string, baseUrl?: string): Promise<{ cohosts: Cohost[] }>;
/** Host only: revokes a co-host at once (`404` for an unknown id). */
export declare function revokeCohost(roomId: string, cohostId: string, hostToken: string, baseUrl?: string): Promise<null>;
/** A co-host link, `{origin}/r/{room_id}#cohost={token}` (and `&cohost_id=` when given). */
export declare function cohostLink(origin: string, roomId: string, cohostToken: string, cohostId?: string | null): string;
/** `queue_add`: one item, `{items}` or `{playlist_id}`. */
export declare function queueAdd(roomId: string, what: QueueAddFields, hostToken?: string | null, baseUrl?: string): Promise<CommandResult>;
/**
 * Any number of items in `queue_add` batches of at most `MAX_ITEMS_PER_ADD`. Rejects with an
 * `ApiError` that also carries `added` and `batchStart` (the refused batch's first index).
 */
export declare function queueAddAll(
  roomId: string,
  items: NewQueueItem[],
  options?: { name?: string; hostToken?: string | null; baseUrl?: string },
): Promise<{ added: number; version: number | null }>;
export declare function setQueueMode(roomId: string, queueMode: QueueModeValue, hostToken?: string | null, baseUrl?: string): Promise<CommandResult>;
/** Host only: keep the room (exempt from idle expiry) or let it expire again. */
export declare function setPersistent(roomId: string, persistent: boolean, hostToken: string, baseUrl?: string): Promise<CommandResult>;
/** Host only: the room's vote skip (`ratio` 0 to 1, 0: off; `minVotes` 1 to 10000). */
export declare function setVoteSkip(roomId: string, ratio: number, minVotes: number, hostToken: string, baseUrl?: string): Promise<CommandResult>;
/** A vote to skip the loaded item, bound to this page's stream by its token (from `hello`); once per item. */
export declare function sendVote(roomId: string, streamToken: string, baseUrl?: string): Promise<Votes & { counted: boolean }>;
/** Reports this page's drift (sync health), bound to its stream by `stream_token`. */
export declare function reportSync(roomId: string, report: SyncReport, baseUrl?: string): Promise<SyncAccepted>;
/** A ready-gate report bound to this page's stream by its token (from `hello`). */
export declare function sendReady(roomId: string, streamToken: string, readyGate: number, baseUrl?: string): Promise<{ ready_gate: number | null; ready: number; listeners: number; counted: boolean }>;
export declare function deleteRoom(roomId: string, hostToken: string, baseUrl?: string): Promise<null>;
/** One file of `GET /api/media`; `duration` (seconds), `title` and `artist` are read from the file, `null` when unknown. */
export interface MediaFile {
  /** The URL path to use as a `media_url` (`/media/…`, percent-encoded). */
  path: string;
  name: string;
  size: number;
  content_type: string;
  duration: number | null;
  title: string | null;
  artist: string | null;
}
/** The server's media files (`--media-dir`); `{files: []}` without one. */
export declare function listMedia(baseUrl?: string): Promise<{ files: MediaFile[] }>;
/** Where a `/media/…` item's cover art is (`GET /api/media/art/{path}`, 404 when it has none); `null` for any other URL. */
export declare function mediaArtUrl(mediaUrl: string | null | undefined, baseUrl?: string): string | null;
export declare function resetHostToken(
  roomId: string,
  hostToken: string,
  baseUrl?: string,
): Promise<{ host_token: string; version: number }>;

/* ------------------------------------------------------------------ sync-core.js */

export declare const MIN_RATE: number;
export declare const MAX_RATE: number;

/** Drift thresholds (seconds) and the corrector's timings (milliseconds unless named otherwise). */
export interface Correction {
  nudgeStart: number;
  nudgeStop: number;
  seekThreshold: number;
  eventSeekThreshold: number;
  pausedTolerance: number;
  pausedResync: number;
  startTolerance: number;
  maxNudge: number;
  minNudge: number;
  nudgeGain: number;
  seekThresholdWithoutNudge: number;
  checkIntervalMs: number;
  seekSettleMs: number;
  loadSettleMs: number;
  ownCallMs: number;
  localChangeHoldMs: number;
  autoplayBlockedMs: number;
  autoplayBlockedActivatedMs: number;
  autoplayRetryMs: number;
  playRetryMs: number;
  seekCheckMs: number;
  nudgeCheckMs: number;
  maxSeekLead: number;
  maxStartLead: number;
  startMeasureMs: number;
  /** A scheduled start's timer fires this much early; the rest is waited out on the clock. */
  startSpinMs: number;
  coarseTolerance: number;
  maxBurstSeconds: number;
  burstCostPerSecond: number;
  seekCost: number;
  burstSettleMs: number;
  /** Size coarse bursts for what their rate pair costs the player, learned per room and listed rate. */
  coarseBurstCosts: boolean;
  /** Seconds: the shortest coarse burst (with coarseBurstCosts), and this many learned rate latencies. */
  minBurstSeconds: number;
  minBurstLatencies: number;
  /** Outcomes of one rate pair its learned cost is the median of. */
  burstCostSamples: number;
  /** Seconds a rate pair is taken to cost before any was learned. */
  burstCostGuess: number;
  seekLandMs: number;
  /** With coarseBurstCosts: the longest wait after a seek or start for the position to move (ms). */
  maxLandMs: number;
  /** Close a small drift by one timed rate pair sized for its learned cost (a media element), not a steady nudge. */
  fineBursts: boolean;
  fineBurstFraction: number;
  fineBurstSeconds: number;
  fineBurstSettleMs: number;
  rateChangeCostGain: number;
  maxRateChangeCost: number;
  maxRateChangeCostStep: number;
  /** After the room's rate changed: when to judge the player afresh (ms). */
  rateLandMs: number;
  seekLatencyGain: number;
  maxSeekLatency: number;
}

export declare const DEFAULT_CORRECTION: Readonly<Correction>;
/** Correction thresholds for a YouTube player (youtube-player.js): bursts sized for their learned cost, a tight tolerance. */
export declare const YOUTUBE_CORRECTION: Readonly<Partial<Correction>>;

export interface ClockSample {
  sentAt: number;
  serverTime: number;
  receivedAt: number;
}

export interface ClockEstimate {
  offset: number;
  rtt: number;
  error: number;
  samples: number;
}

/** The state as it is at `serverNowMs`: a pending start whose moment came reads as playing. */
export declare function effectiveState(state: RoomState, serverNowMs: number): RoomState;
export declare function roomPosition(state: RoomState | null | undefined, serverNowMs: number): number;
export declare function sampleOffset(sample: ClockSample): { offset: number; rtt: number };
export declare function estimateOffset(samples: ClockSample[]): ClockEstimate | null;
export declare function decideCorrection(
  input: {
    drift: number;
    paused: boolean;
    rate?: number;
    nudging?: boolean;
    afterEvent?: boolean;
    starting?: boolean;
    canNudge?: boolean;
  },
  options?: Partial<Correction>,
): { action: 'none' | 'nudge' | 'seek'; rate: number };
export declare function decideCoarseCorrection(
  input: { drift: number; rate?: number; rates: number[]; seekLatency?: number; cost?: (rate: number) => number; minBurst?: number },
  options?: Partial<Correction>,
): { action: 'none' | 'burst' | 'seek'; rate: number; seconds: number };
export declare function clampRate(rate: number): number;
export declare function isVideoId(id: unknown): id is string;
export declare function parseTimestamp(text: string | null | undefined): number | null;
export declare function parseYouTube(input: string): { videoId: string; start: number | null } | null;
export declare function formatTime(seconds: number): string;

/* ------------------------------------------------------------------ clock.js */

/** A monotonic local clock in Unix milliseconds. */
export declare function localNow(): number;

export interface ServerClockOptions {
  baseUrl?: string;
  initialSamples?: number;
  resampleEvery?: number;
  resampleCount?: number;
  keepFor?: number;
}

export declare const CLOCK_DEFAULTS: Readonly<{
  initialSamples: number;
  resampleEvery: number;
  resampleCount: number;
  keepFor: number;
  timingEntryWaitMs: number;
}>;

export declare class ServerClock {
  constructor(options?: ServerClockOptions);
  samples: ClockSample[];
  estimate: ClockEstimate | null;
  /** Milliseconds to add to the local clock to read the server's (0 until known). */
  readonly offset: number;
  readonly synced: boolean;
  now(): number;
  sample(count?: number): Promise<ClockEstimate | null>;
  sync(): Promise<ClockEstimate | null>;
  stop(): void;
}

/* ------------------------------------------------------------------ player-sync.js */

/** What a room plays: its `video_id` or its `media_url`; `null` when nothing is loaded. */
export declare function itemKey(state: Pick<RoomState, 'video_id' | 'media_url'> | null | undefined): string | null;

export declare const PlayerState: Readonly<{
  UNSTARTED: -1;
  ENDED: 0;
  PLAYING: 1;
  PAUSED: 2;
  BUFFERING: 3;
  CUED: 5;
}>;
export type PlayerStateValue = (typeof PlayerState)[keyof typeof PlayerState];

export declare const PlayerMode: Readonly<{
  WAITING: 'waiting';
  LOADING: 'loading';
  STARTING: 'starting';
  BUFFERING: 'buffering';
  SEEKING: 'seeking';
  NUDGING: 'nudging';
  IN_SYNC: 'in-sync';
  HOLD: 'hold';
  BLOCKED: 'blocked';
  NO_PLAYER: 'no-player';
}>;
export type PlayerModeValue = (typeof PlayerMode)[keyof typeof PlayerMode];

/** What a player must offer: the YouTube IFrame API's YT.Player methods. */
export interface SyncablePlayer {
  getCurrentTime(): number;
  getDuration(): number;
  getPlayerState(): number;
  getPlaybackRate(): number;
  setPlaybackRate(rate: number): void;
  seekTo(seconds: number, allowSeekAhead: boolean): void;
  playVideo(): void;
  pauseVideo(): void;
  loadVideoById(args: { videoId: string; startSeconds?: number }): void;
  cueVideoById(args: { videoId: string; startSeconds?: number }): void;
  addEventListener(name: string, listener: (event: { data: unknown }) => void): void;
  removeEventListener?(name: string, listener: (event: { data: unknown }) => void): void;
  /** Optional: the rates the player really plays (YouTube's menu); used once it rounds a nudge. */
  getAvailablePlaybackRates?(): number[];
  /** Optional: the player's own measure of its seek latency, seconds (given the seek's target: of seeks like it). */
  getSeekLatency?(target?: number): number | null;
  /** Optional (the simulated player): takes the room's duration. */
  setDuration?(seconds: number): void;
}

export interface PlayerSyncHooks {
  state(): RoomState | null;
  serverNow(): number;
  clockReady?(): boolean;
  canControl(): boolean;
  emit(type: string, detail: object): void;
}

export declare class PlayerSync {
  constructor(
    player: SyncablePlayer,
    hooks: PlayerSyncHooks,
    options?: { correction?: Partial<Correction>; interval?: number; listedRatesOnly?: boolean; accepts?: (state: RoomState) => boolean },
  );
  readonly player: SyncablePlayer;
  mode: PlayerModeValue;
  seeks: number;
  nudges: number;
  lastDrift: number | null;
  driftAvg: number | null;
  canNudge: boolean;
  /** Seconds from a seek call to the player playing again, learned (a seek aims ahead by it). */
  seekLatency: number;
  bursts: number;
  /** Seconds of position a rate change and back costs this player at the room's rate, learned by fine bursts. */
  rateChangeCost: number;
  /** With coarseBurstCosts: seconds a burst's rate pair costs, learned, by `"<room rate>><burst rate>"`. */
  readonly burstCosts: Map<string, number>;
  /** Seconds from asking a rate until the player reports it taken, learned. */
  rateLatency: number;
  held: boolean;
  position(): number;
  roomChanged(): void;
  resume(): void;
  apply(afterEvent: boolean): void;
  stop(): void;
}

/* ------------------------------------------------------------------ room.js */

export type ConnectionStatus = 'connecting' | 'live' | 'reconnecting' | 'closed';

export interface Health {
  status: ConnectionStatus;
  offsetMs: number | null;
  rttMs: number | null;
  driftMs: number | null;
  driftAvgMs: number | null;
  mode: PlayerModeValue;
  rate: number | null;
  seeks: number;
  nudges: number;
  canNudge: boolean | null;
  held: boolean;
}

/** Any class with the WHATWG EventSource interface (the browser's, or the `eventsource` package's). */
export interface EventSourceLike {
  readonly readyState: number;
  onopen: ((event: any) => void) | null;
  onerror: ((event: any) => void) | null;
  addEventListener(type: string, listener: (event: { data: string; lastEventId: string }) => void): void;
  close(): void;
}
export type EventSourceClass = new (url: string) => EventSourceLike;

export interface SyncRoomOptions {
  roomId: string;
  name?: string;
  hostToken?: string | null;
  /** A co-host's token, sent when there is no host token. */
  cohostToken?: string | null;
  /** The server's origin, e.g. `http://127.0.0.1:8080`; empty for the page's own. */
  baseUrl?: string;
  correction?: Partial<Correction>;
  clock?: ServerClockOptions;
  /** ms, the longest wait between manual reconnects (default 30000). */
  maxBackoff?: number;
  /** Take part in the ready gate: connect with `?ready_gate=1` and report the player ready. */
  readyGate?: boolean;
  /** The EventSource class; defaults to the global one (required in Node). */
  EventSource?: EventSourceClass;
  /** DRIFT_WINDOW keys: how long drift is kept, and left out after a change. */
  driftWindow?: Partial<typeof DRIFT_WINDOW>;
  /** Report this page's drift to the room once a player is attached (default true). */
  reportSync?: boolean;
}

export interface SyncRoomEventMap {
  snapshot: CustomEvent<Room>;
  state: CustomEvent<{ version: number; cause: string; state: RoomState; server_time: number }>;
  /** What changed (`op`), and `queue`: the whole queue after it, as this client applied it. */
  queue: CustomEvent<QueueEvent & { queue: QueueItem[] }>;
  queue_mode: CustomEvent<{ version: number; queue_mode: QueueModeValue; server_time: number }>;
  persistent: CustomEvent<{ version: number; persistent: boolean; server_time: number }>;
  /** `history`: from a snapshot's kept messages, not a live event. */
  chat: CustomEvent<{ version: number; name: string; text: string; server_time: number; history?: true }>;
  control: CustomEvent<{ version: number; control: Control; permissions: Permissions; server_time: number }>;
  permissions: CustomEvent<{ version: number; permissions: Permissions; control: Control; server_time: number }>;
  cohosts: CustomEvent<{ version: number; cohosts: Cohost[]; server_time: number }>;
  chat_deleted: CustomEvent<{ version: number; chat_version: number; server_time: number }>;
  vote_skip: CustomEvent<{ version: number; vote_skip: VoteSkip; server_time: number }>;
  votes: CustomEvent<Votes & { server_time: number }>;
  /** This stream was kicked by a moderator: it ends next, and the room stops (it does not reconnect); a reload opens a new one. */
  kicked: CustomEvent<{ server_time: number }>;
  /** Who's here changed: apply to the room's `members` (`left` are stream ids), at most one a second. */
  members: CustomEvent<{ joined: Member[]; left: string[]; unnamed: number }>;
  /** First on every connection: this stream's id and the token for its reports. */
  hello: CustomEvent<{ stream: string; stream_token: string; expires_at: number }>;
  visibility: CustomEvent<{ version: number; visibility: Visibility; server_time: number }>;
  chat_enabled: CustomEvent<{ version: number; chat_enabled: boolean; server_time: number }>;
  chat_cleared: CustomEvent<{ version: number; server_time: number }>;
  host_token: CustomEvent<{ version: number; server_time: number }>;
  presence: CustomEvent<{ listeners: number; server_time: number }>;
  sync: CustomEvent<SyncSummary>;
  closed: CustomEvent<{ version?: number | null; reason: 'deleted' | 'expired' | 'not_found' | string }>;
  connection: CustomEvent<{ status: ConnectionStatus }>;
  health: CustomEvent<Health>;
  localchange: CustomEvent<{ type: 'play' | 'pause' | 'seek' | 'rate'; position?: number; rate?: number }>;
  hold: CustomEvent<{ held: boolean }>;
  autoplayblocked: CustomEvent<Record<string, never>>;
}

/** The room client's own timings, in milliseconds. */
export declare const ROOM_TIMINGS: Readonly<{
  firstBackoffMs: number;
  maxBackoffMs: number;
  healthEveryMs: number;
  clockRetryMs: number;
  readyCheckMs: number;
}>;

export declare class SyncRoom extends EventTarget {
  constructor(options: SyncRoomOptions);
  readonly roomId: string;
  name: string;
  hostToken: string | null;
  /** A co-host's token (set it to `null` once the page learns it was revoked). */
  cohostToken: string | null;
  /** The token sent: the host's, else the co-host's, else `null`. */
  readonly token: string | null;
  /** `host`, `cohost` or `anyone`. */
  readonly role: Who;
  /** The room's permissions (derived from `control` on a server without them). */
  readonly permissions: Permissions;
  readonly baseUrl: string;
  readonly clock: ServerClock;
  /** The latest full room object (kept up to date from events). */
  room: Room | null;
  /** The last event id seen (the room's version); `null` before the first. */
  lastEventId: number | null;
  /** This page's stream id and token, from the newest `hello` (`null` before it). */
  streamId: string | null;
  streamToken: string | null;
  /** This page's drift readings (the last minute, and what the next report summarizes). */
  readonly drift: DriftWindow;
  /** The attached player's kind (`attachPlayer(player, { kind })`), named in sync reports. */
  playerKind: PlayerKind | null;
  status: ConnectionStatus;
  closedReason: string | null;
  /** `resyncs`: reconnections made at once on a gap or a queue change it could not apply. */
  stats: { opens: number; snapshots: number; events: number; duplicates: number; gaps: number; resyncs: number; lastEventAt?: number };
  sync: PlayerSync | null;
  readonly connected: boolean;
  readonly state: RoomState | null;
  /** `can('playback')`. */
  readonly canControl: boolean;
  /** Whether this client may act in `group`, as the room's permissions stand now. */
  can(group: GroupName): boolean;
  /** The queue as the room holds it now (`[]` before the first snapshot). */
  readonly queue: QueueItem[];
  readonly queueMode: QueueModeValue;
  readonly persistent: boolean;
  clockOffset(): number;
  serverNow(): number;
  roomPosition(): number;
  playerPosition(): number;
  health(): Health;
  start(): Promise<void>;
  stop(): void;
  attachPlayer(player: SyncablePlayer, options?: { kind?: PlayerKind; correction?: Partial<Correction>; interval?: number; listedRatesOnly?: boolean; accepts?: (state: RoomState) => boolean }): PlayerSync;
  resume(): void;
  command(command: Command): Promise<CommandResult>;
  chat(name: string, text: string): Promise<{ version: number }>;
  queueAdd(what: QueueAddFields): Promise<CommandResult>;
  /** Batches of at most `MAX_ITEMS_PER_ADD`, attributed to `options.name` (default: this client's name). */
  queueAddAll(items: NewQueueItem[], options?: { name?: string }): Promise<{ added: number; version: number | null }>;
  setQueueMode(queueMode: QueueModeValue): Promise<CommandResult>;
  setPersistent(persistent: boolean): Promise<CommandResult>;
  /** Host only. */
  setPermissions(permissions: Partial<Permissions>): Promise<CommandResult>;
  /** Group `moderate`. */
  deleteChat(chatVersion: number): Promise<CommandResult>;
  /** Group `moderate`: ends that listener's stream (a stream id of `members`). */
  kick(stream: string): Promise<CommandResult>;
  /** Host only. */
  addCohost(name: string): Promise<{ cohost_id: string; cohost_token: string; name: string }>;
  /** Host only. */
  listCohosts(): Promise<{ cohosts: Cohost[] }>;
  /** Host only. */
  revokeCohost(cohostId: string): Promise<null>;
  /** Host only: the room's vote skip (`ratio` 0 to 1, 0: off). */
  setVoteSkip(ratio: number, minVotes?: number): Promise<CommandResult>;
  /** Votes to skip the loaded item as this page's live stream (once per item). */
  voteSkip(): Promise<Votes & { counted: boolean }>;
  /** Exchanges the host token for a new one, which this client then uses. */
  resetHostToken(): Promise<{ host_token: string; version: number }>;
  close(): Promise<null>;

  addEventListener<K extends keyof SyncRoomEventMap>(
    type: K,
    listener: (event: SyncRoomEventMap[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof SyncRoomEventMap>(
    type: K,
    listener: (event: SyncRoomEventMap[K]) => void,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | EventListenerOptions): void;
}

/** Defaults of {@link DriftWindow} (ms): history kept, readings left out after a change, most readings. */
export declare const DRIFT_WINDOW: Readonly<{ keepMs: number; quietMs: number; maxSamples: number }>;

/** The nearest-rank percentile `p` (0..100) of `values`; `null` for none. */
export declare function percentile(values: number[], p: number): number | null;

/** A page's own drift readings: the last minute for a chart, and the next report's p50/p95. */
export declare class DriftWindow {
  constructor(options?: Partial<typeof DRIFT_WINDOW>);
  readonly options: { keepMs: number; quietMs: number; maxSamples: number };
  /** A deliberate change at `now` (ms): readings are left out for `quietMs`. */
  quiet(now: number): void;
  isQuiet(now: number): boolean;
  /** One reading (seconds, player − room) at `now`; answers whether it counts. */
  add(now: number, driftSeconds: number): boolean;
  /** The readings of the last `keepMs`, oldest first (`ms` signed). */
  series(now: number): { at: number; ms: number }[];
  /** p50/p95 of `|drift|` (ms) since the last call; `null` without readings. */
  takeReport(): { p50: number; p95: number; samples: number } | null;
}

/** Timings of {@link SyncReporter} (ms). */
export declare const REPORT_TIMINGS: Readonly<{ firstReportMs: number; minReportMs: number; maxReportMs: number }>;

/** The longest item length a sync report may carry (seconds). */
export declare const MAX_REPORTED_DURATION_S: number;

/** The player kinds a sync report may name. */
export declare const PLAYER_KINDS: readonly PlayerKind[];

/** Reports a page's drift to its room every interval, over its stream token. */
export declare class SyncReporter {
  constructor(options: {
    roomId: string;
    baseUrl?: string;
    window: DriftWindow;
    token: () => string | null;
    kind: () => string | null;
    /** Whether the player buffers while the room plays, and its `|drift|` now (ms). */
    status?: () => { buffering: boolean; driftMs: number | null } | null;
    /** The listener's display name, sent with each report. */
    name?: () => string | null;
    /** The player's length of the current item (seconds) while the room does not know it, else `null`. */
    duration?: () => number | null;
    onAccepted?: (answer: SyncAccepted) => void;
  });
  everyMs: number;
  sent: number;
  refused: number;
  start(): void;
  stop(): void;
  reportNow(): Promise<void>;
}
