/**
 * room.js — one syncroom room, followed live (the package's main class).
 *
 * It follows one room's event stream, keeps an NTP-style estimate of the
 * server's clock, and keeps a YouTube-like player in step with the room by
 * nudging its playback rate for small drift and seeking only for large drift.
 * No dependencies, no build step: it is a plain ES module.
 *
 * ## Embedding
 *
 * ```html
 * <div id="player"></div>
 * <script type="module">
 *   import { SyncRoom } from '/client/index.js'; // or 'syncroom-client'
 *
 *   const room = new SyncRoom({
 *     roomId: 'friday',            // the room to follow
 *     name: 'Ann',                 // optional display name (presence)
 *     hostToken: undefined,        // the host token, only to send host-only commands
 *     cohostToken: undefined,      // or a co-host's token: what the room gives co-hosts
 *     correction: { seekThreshold: 1.5 }, // optional, see DEFAULT_CORRECTION in sync-core.js
 *     // baseUrl: 'https://sync.example', EventSource, // outside the page (Node: the `eventsource` package)
 *   });
 *   room.addEventListener('state', (e) => console.log(e.detail.cause, e.detail.state));
 *   room.addEventListener('chat', (e) => console.log(e.detail.name, e.detail.text));
 *   room.addEventListener('connection', (e) => console.log(e.detail.status)); // live / reconnecting / closed
 *   await room.start();
 *
 *   // Any object with the YouTube IFrame API player methods will do: a YT.Player
 *   // once its onReady has fired, or the SimPlayer of sim-player.js.
 *   room.attachPlayer(ytPlayer);
 *
 *   room.can('playback');  // whether this client may play, pause, seek (the room's permissions)
 *   await room.command({ type: 'seek', position: 42 }); // refused (401/403) unless room.can('playback')
 *   await room.chat('Ann', 'this drop!');
 *   room.roomPosition();   // seconds, where the room is now by the server clock
 *   room.playerPosition(); // seconds, where the local player is now
 *   room.clockOffset();    // ms, server clock minus local clock
 *   room.health();         // { offsetMs, rttMs, driftMs, mode, rate, seeks, ... }
 * </script>
 * ```
 *
 * ## Events (a `CustomEvent`; the payload is `event.detail`)
 * - `snapshot` — the full `room` object (on join, or after falling far behind)
 * - `state`    — `{version, cause, state, server_time}`
 * - `queue`    — `{version, op, server_time, ...}`: what changed (`op` `add` with `items`,
 *   `remove` with `item_ids`, `move` with `item_id` and `index`, `update` with `items`),
 *   applied here in version order on top of the snapshot's queue; the detail also carries
 *   `queue`, the whole queue after the change (also kept as `room.queue`)
 * - `queue_mode` — `{version, queue_mode, server_time}`: `normal`, `loop` or `shuffle`
 * - `persistent` — `{version, persistent, server_time}`: the host kept the room (or not)
 * - `chat`     — `{version, name, text, server_time}`; also once for each message of a
 *   snapshot's `chat` history not seen yet, with `history: true` (a late joiner sees what
 *   was said; a resync or reconnect never repeats a message)
 * - `control`  — `{version, control, permissions, server_time}`: `control` is `host`, `open`
 *   or `custom` (derived from `permissions`; see {@link SyncRoom#can})
 * - `permissions` — `{version, permissions, control, server_time}`: the host changed who may do what
 * - `cohosts`  — `{version, cohosts: [{cohost_id, name}], server_time}`: a co-host was added or revoked
 * - `chat_deleted` — `{version, chat_version, server_time}`: a moderator removed that chat message
 * - `hello`    — `{stream, stream_token, expires_at}`: first on every connection, resumed
 *   ones too; also kept as `room.streamId` / `room.streamToken`, which bind this page's
 *   reports to its live stream
 * - `visibility` — `{version, visibility, server_time}`: `public` (listed) or `unlisted`
 * - `chat_enabled` — `{version, chat_enabled, server_time}`: the host turned chat on or off
 * - `persistent` — `{version, persistent, server_time}`: the host made the room stay (or not)
 * - `chat_cleared` — `{version, server_time}`: the host cleared the chat; empty what is shown
 * - `host_token` — `{version, server_time}`: the host token was reset (host links made
 *   before stop working; {@link SyncRoom#resetHostToken} keeps the new one)
 * - `presence` — `{listeners, server_time}`
 * - `sync`     — `{reporting, in_sync, drift_p95_ms, behind}`: the room's sync health (how many
 *   listeners report, how many are within 50 ms, the room's drift p95, who is behind by
 *   name: this client reports its `name` and whether its player buffers), from the snapshot,
 *   the server's id-less `sync` events and this page's own report answers; also kept as
 *   `room.room.sync`
 * - `ready_gate` — `{version, ready_gate: {quorum, deadline_ms}, server_time}`: the host set the gate
 * - `vote_skip` — `{version, vote_skip: {ratio, min_votes}, server_time}`: the host set vote skip
 *   (`ratio` 0: off); also kept as `room.room.vote_skip`
 * - `votes`    — `{skip, needed, listeners, server_time}`: how the votes to skip the loaded
 *   item stand (id-less, coalesced by the server)
 * - `gate`     — `{ready_gate, ready, listeners, starts_at, server_time}`: how far the open
 *   ready gate is ("waiting for 3 of 40, starting in 2 s")
 * - `start`    — `{starts_at}`: a pending start's moment came (the player was started)
 * - `ready`    — the gate's progress after this page reported its item ready
 * - `closed`   — `{version?, reason}`: `deleted`, `expired` or `not_found`; the client stops
 * - `kicked`   — `{server_time}`: a moderator ended this stream (`kick`); the client stops and
 *   does not reconnect (a reload joins again, as a new stream)
 * - `members`  — `{joined, left, unnamed}`: who's here changed (apply to `room.room.members`)
 * - `connection` — `{status}`: `connecting`, `live`, `reconnecting`, `closed`
 * - `health`   — the same object as {@link SyncRoom#health}, a few times a second
 * - `localchange` — `{type, position?, rate?}`: the person used the player's own controls
 *   (play, pause, seek, rate). A page whose user may control the room turns it into a command.
 * - `hold` — `{held}`: a listener paused their own player; the client stops forcing it
 *   until {@link SyncRoom#resume} is called.
 * - `autoplayblocked` — the browser refused to start playback without a user gesture:
 *   show a "click to join" button that calls {@link SyncRoom#resume}.
 *
 * ## Resume
 * The browser's EventSource reconnects by itself, sending `Last-Event-ID`; the
 * server then replays what was missed. Events already seen are dropped by id,
 * so every event is delivered once. When the stream cannot be reopened (the
 * EventSource gives up, e.g. on `503`), the client checks whether the room still
 * exists (a `404` stops it for good) and reconnects with `?last_event_id=` after
 * a jittered back-off. A `closed` event stops it.
 *
 * The server's ids have no gaps. Should one show anyway (or a `queue` change this
 * client cannot apply), the queue would silently differ from the room's: the client
 * reconnects at once with the last id it applied, and the server replays what is
 * missing or sends a fresh `snapshot` (`room.stats.resyncs` counts these).
 *
 * @module room
 */

import { roomPosition as computeRoomPosition, DriftWindow, effectiveState } from './sync-core.js';
import { SyncReporter, displayName } from './sync-report.js';
import {
  ApiError, getRoom, sendCommand, sendChat, deleteRoom, resetHostToken, sendReady, queueAdd, queueAddAll,
  setQueueMode, setPersistent, setPermissions, deleteChat, kick, addCohost, listCohosts, revokeCohost,
  setVoteSkip, sendVote,
} from './api.js';
import { roomPermissions, admits, Group, Who } from './permissions.js';
import { ServerClock } from './clock.js';
import { PlayerSync, PlayerMode, itemKey } from './player-sync.js';
import { applyQueueEvent, QueueMode } from './queue.js';

const ID_EVENTS = ['snapshot', 'state', 'queue', 'chat', 'control', 'visibility', 'chat_enabled',
  'chat_cleared', 'host_token', 'ready_gate', 'queue_mode', 'persistent', 'closed',
  'permissions', 'cohosts', 'chat_deleted', 'vote_skip'];
/** Events without an id, passed on as they come (what they mean is the page's business). */
const NOTICE_EVENTS = ['kicked', 'members'];

/** The room client's own timings, in milliseconds (the player's are in DEFAULT_CORRECTION). */
export const ROOM_TIMINGS = Object.freeze({
  /** First wait before reopening a stream the EventSource gave up on; doubles on each failure. */
  firstBackoffMs: 1000,
  /** Longest wait between such reconnects (`options.maxBackoff` overrides it). */
  maxBackoffMs: 30000,
  /** Between two `health` events. */
  healthEveryMs: 500,
  /** Between clock re-samples while the first burst failed (the server was unreachable). */
  clockRetryMs: 5000,
  /** While a ready gate is open: between two looks at whether the player is ready to report it. */
  readyCheckMs: 100,
});

/**
 * One room, followed live: its stream, the server clock, and (once attached) a
 * player kept in step. See the module documentation for a walk-through.
 */
export class SyncRoom extends EventTarget {
  /**
   * @param {object} options
   * @param {string} options.roomId
   * @param {string} [options.name] display name sent with the stream
   * @param {string} [options.hostToken] sent as `Authorization: Bearer` with commands
   * @param {string} [options.cohostToken] a co-host's token, sent the same way when there is no host token
   * @param {string} [options.baseUrl=''] the server's origin
   * @param {object} [options.correction] drift thresholds (DEFAULT_CORRECTION keys)
   * @param {object} [options.driftWindow] DRIFT_WINDOW keys (sync-core.js): how long drift is kept, and left out after a change
   * @param {boolean} [options.reportSync=true] report this page's drift to the room (sync health) once a player is attached
   * @param {object} [options.clock] ServerClock options
   * @param {boolean} [options.readyGate] take part in the ready gate: connect with
   *        `?ready_gate=1` and report the attached player ready for each gated item
   * @param {number} [options.maxBackoff] ms, the longest wait (default `ROOM_TIMINGS.maxBackoffMs`) between manual reconnects
   * @param {typeof EventSource} [options.EventSource] the EventSource class (default: the global one;
   *        in Node, e.g. `import { EventSource } from 'eventsource'`)
   */
  constructor(options) {
    super();
    if (!options || !options.roomId) throw new TypeError('SyncRoom needs a roomId');
    this.roomId = options.roomId;
    this.name = options.name || '';
    this.hostToken = options.hostToken || null;
    /** A co-host's token (`null` when none, or once the page learns it was revoked). */
    this.cohostToken = options.cohostToken || null;
    this.baseUrl = options.baseUrl || '';
    this.options = options;
    this.EventSource = options.EventSource || globalThis.EventSource;
    if (typeof this.EventSource !== 'function') {
      throw new TypeError('SyncRoom needs an EventSource: pass options.EventSource outside a browser');
    }
    this.clock = new ServerClock({ baseUrl: this.baseUrl, ...(options.clock || {}) });
    /** The latest full room object (kept up to date from events). */
    this.room = null;
    /** The last event id seen (the room's version); `null` before the first. */
    this.lastEventId = null;
    /** `connecting`, `live`, `reconnecting` or `closed`. */
    this.status = 'connecting';
    this.closedReason = null;
    this.stats = { opens: 0, snapshots: 0, events: 0, duplicates: 0, gaps: 0, resyncs: 0 };
    this.sync = null;
    /** This page's stream id and token, from the newest `hello` (`null` before it). */
    this.streamId = null;
    this.streamToken = null;
    /**
     * This page's drift readings: the last minute (`drift.series(performance.now())`, for a
     * chart) and what the next sync report summarizes. Readings around deliberate changes
     * are left out (see `DriftWindow` in sync-core.js).
     */
    this.drift = new DriftWindow(options.driftWindow);
    /** The kind of the attached player (`youtube`, `media`, `sim`), named in sync reports. */
    this.playerKind = null;
    this._reporter = new SyncReporter({
      roomId: this.roomId,
      baseUrl: this.baseUrl,
      window: this.drift,
      token: () => this.streamToken,
      kind: () => (this.sync ? this.playerKind : null),
      status: () => this._playerStatus(),
      name: () => this.name,
      duration: () => this._itemDuration(),
      onAccepted: (answer) => this._setSync(answer && answer.sync),
    });
    this._es = null;
    this._backoff = ROOM_TIMINGS.firstBackoffMs;
    this._retryTimer = null;
    this._healthTimer = null;
    this._stopped = false;
    this._clockSettled = false;
    /** The last id a resync started from: the same gap twice is believed, not chased. */
    this._resyncedAt = undefined;
  }

  /** Whether the event stream is open right now. */
  get connected() { return this.status === 'live'; }

  /**
   * The room's playback `state` (or `null` before the first snapshot), as it is now:
   * a pending start whose `starts_at` has come already reads as playing.
   */
  get state() { return this.room ? effectiveState(this.room.state, this.clock.now()) : null; }

  /** The queue as the room holds it now (`[]` before the first snapshot). */
  get queue() { return this.room && Array.isArray(this.room.queue) ? this.room.queue : []; }

  /** What happens as items finish: `normal` (also before the first snapshot), `loop` or `shuffle`. */
  get queueMode() { return (this.room && this.room.queue_mode) || QueueMode.NORMAL; }

  /** Whether the host keeps the room: it is exempt from the server's idle expiry. */
  get persistent() { return Boolean(this.room && this.room.persistent); }

  /** The token this client sends: the host's, else a co-host's, else `null`. */
  get token() { return this.hostToken || this.cohostToken || null; }

  /** Who this client is to the room: `host`, `cohost` or `anyone` (no token). */
  get role() {
    if (this.hostToken) return Who.HOST;
    return this.cohostToken ? Who.COHOST : Who.ANYONE;
  }

  /**
   * Who may do what here: the room's `permissions`, or what its `control` means on a server
   * without them (before the first snapshot: a host room's).
   */
  get permissions() { return roomPermissions(this.room); }

  /**
   * Whether this client may act in `group` (`playback`, `queue_add`, `queue_edit`, `skip`,
   * `moderate`, `chat`; see `Group`), as the room's permissions stand now. The server
   * decides: a co-host revoked meanwhile is refused all the same.
   */
  can(group) { return admits(this.permissions[group], this.role); }

  /** Whether this client may control playback (`can('playback')`). */
  get canControl() { return this.can(Group.PLAYBACK); }

  /** Milliseconds to add to the local clock to read the server's. */
  clockOffset() { return this.clock.offset; }

  /** The server clock now (Unix ms). */
  serverNow() { return this.clock.now(); }

  /** Seconds: where the room's playback is now, by the server clock. */
  roomPosition() { return computeRoomPosition(this.state, this.clock.now()); }

  /** Seconds: where the attached player is now (the room's position when none is attached). */
  playerPosition() { return this.sync ? this.sync.position() : this.roomPosition(); }

  /**
   * For sync reports: whether the player waits for media (buffering, or still loading
   * the item) while the room plays, and its `|drift|` now (ms).
   */
  _playerStatus() {
    const st = this.state;
    if (!this.sync || !st || st.paused || !this._clockSettled) return null;
    return {
      buffering: this.sync.mode === PlayerMode.BUFFERING || this.sync.mode === PlayerMode.LOADING,
      driftMs: Math.abs(this.playerPosition() - this.roomPosition()) * 1000,
    };
  }

  /**
   * For sync reports, while the room does not know the loaded item's length: the attached
   * player's, once it has loaded that item (a real player's only: the simulated one takes
   * the room's). Only a server whose room view has `queue_mode` takes it; an older one
   * refuses unknown fields, and would refuse the whole report.
   */
  _itemDuration() {
    const st = this.room ? this.room.state : null;
    if (!st || st.duration != null || !this.sync || typeof this.room.queue_mode !== 'string') return null;
    if (this.playerKind !== 'youtube' && this.playerKind !== 'media') return null;
    if (this.sync.loadedVideo !== itemKey(st) || this.sync.mode === PlayerMode.LOADING) return null;
    return Number(this.sync.player.getDuration()) || null;
  }

  /** Sync health for people: clock offset and round trip, measured drift, what the corrector does. */
  health() {
    const s = this.sync;
    const est = this.clock.estimate;
    return {
      status: this.status,
      offsetMs: est ? est.offset : null,
      rttMs: est ? est.rtt : null,
      driftMs: s && s.lastDrift !== null ? s.lastDrift * 1000 : null,
      driftAvgMs: s && s.driftAvg !== null ? s.driftAvg * 1000 : null,
      mode: s ? s.mode : PlayerMode.NO_PLAYER,
      rate: s ? Number(s.player.getPlaybackRate()) : null,
      seeks: s ? s.seeks : 0,
      nudges: s ? s.nudges : 0,
      canNudge: s ? s.canNudge : null,
      held: s ? s.held : false,
    };
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _setStatus(status) {
    if (this.status === status) return;
    this.status = status;
    this._emit('connection', { status });
  }

  /** Synchronizes the clock and opens the event stream. Resolves once the clock is known. */
  async start() {
    this._stopped = false;
    this._connect();
    try {
      await this.clock.sync();
    } catch (err) {
      // Keep going with offset 0; the periodic re-sample may succeed later.
      this.clock.stop();
      this.clock._timer = setInterval(() => { this.clock.sample(3).catch(() => {}); }, ROOM_TIMINGS.clockRetryMs);
    }
    this._clockSettled = true;
    this._healthTimer = setInterval(() => this._emit('health', this.health()), ROOM_TIMINGS.healthEveryMs);
    if (this.options.reportSync !== false) this._reporter.start();
    if (this.sync) this.sync.roomChanged();
  }

  /** Closes the stream and stops all timers. */
  stop() {
    this._stopped = true;
    if (this._es) this._es.close();
    this._es = null;
    clearTimeout(this._retryTimer);
    clearTimeout(this._startTimer);
    clearInterval(this._readyTimer);
    clearInterval(this._healthTimer);
    this._reporter.stop();
    this.clock.stop();
    if (this.sync) this.sync.stop();
  }

  /**
   * Keeps `player` (a ready YT.Player or anything with its methods) in step with the room.
   * Replaces a previously attached player. `options.kind` (`youtube`, `media` or `sim`) names
   * the player in this page's sync reports; without it, no report is sent. Other options go
   * to {@link PlayerSync}.
   */
  attachPlayer(player, options = {}) {
    if (this.sync) this.sync.stop();
    const { kind = null, ...syncOptions } = options;
    this.playerKind = kind;
    this.sync = new PlayerSync(player, {
      state: () => this.state,
      serverNow: () => this.clock.now(),
      clockReady: () => this._clockSettled,
      canControl: () => this.canControl,
      emit: (type, detail) => this._emit(type, detail),
      drift: (seconds) => this.drift.add(performance.now(), seconds),
      quiet: () => this.drift.quiet(performance.now()),
    }, { correction: this.options.correction, ...syncOptions });
    this.sync.roomChanged();
    const raw = this.room ? this.room.state : null;
    if (raw && typeof raw.starts_at === 'number') this.sync.scheduleStart(raw.starts_at);
    return this.sync;
  }

  /** After a listener's own pause or a blocked autoplay: follow the room again (call it from a click). */
  resume() {
    if (this.sync) this.sync.resume();
  }

  _streamUrl(withLastId) {
    const params = new URLSearchParams();
    // Shown to the room: the server refuses a name outside the chat-name rules.
    const name = displayName(this.name);
    if (name) params.set('name', name);
    if (withLastId && this.lastEventId !== null) params.set('last_event_id', String(this.lastEventId));
    if (this.options.readyGate) params.set('ready_gate', '1');
    const q = params.toString();
    return `${this.baseUrl}/api/rooms/${encodeURIComponent(this.roomId)}/events${q ? `?${q}` : ''}`;
  }

  _connect(withLastId = false) {
    if (this._stopped) return;
    const es = new this.EventSource(this._streamUrl(withLastId));
    this._es = es;
    es.onopen = () => {
      this.stats.opens += 1;
      this._backoff = ROOM_TIMINGS.firstBackoffMs;
      this._setStatus('live');
    };
    es.onerror = () => {
      if (this._es !== es || this._stopped) return;
      if (es.readyState === 2 /* CLOSED */) {
        this._setStatus('reconnecting');
        this._recover();
      } else {
        // The browser reconnects by itself after the server's `retry:` delay, with Last-Event-ID.
        this._setStatus('reconnecting');
      }
    };
    for (const type of ID_EVENTS) {
      // A stream replaced by a resync says nothing more.
      es.addEventListener(type, (e) => { if (this._es === es) this._onIdEvent(type, e); });
    }
    // Written first on every connection: this stream's id and the token that
    // binds this page's reports (drift, readiness) to it.
    es.addEventListener('hello', (e) => {
      const data = parse(e.data);
      if (!data || typeof data.stream_token !== 'string') return;
      this.streamId = data.stream;
      this.streamToken = data.stream_token;
      this._emit('hello', data);
    });
    // How far the open ready gate is: `{ready_gate, ready, listeners, starts_at}`.
    es.addEventListener('gate', (e) => {
      const data = parse(e.data);
      if (data) this._emit('gate', data);
    });
    // How the votes to skip the loaded item stand: `{skip, needed, listeners}`.
    es.addEventListener('votes', (e) => {
      const data = parse(e.data);
      if (data) this._emit('votes', data);
    });
    es.addEventListener('presence', (e) => {
      const data = parse(e.data);
      if (!data) return;
      if (this.room) this.room.listeners = data.listeners;
      this._emit('presence', data);
    });
    es.addEventListener('sync', (e) => this._setSync(parse(e.data)));
    for (const type of NOTICE_EVENTS) {
      es.addEventListener(type, (e) => {
        const data = parse(e.data);
        if (!data || this._es !== es) return;
        this._emit(type, data);
        // A kicked stream ends next: the room must not reconnect by itself (a reload may).
        if (type === 'kicked') this.stop();
      });
    }
  }

  /** The room's sync summary is now `sync` (from a `sync` event or a report's answer). */
  _setSync(sync) {
    if (!sync || typeof sync.reporting !== 'number') return;
    if (this.room) this.room.sync = sync;
    this._emit('sync', sync);
  }

  /**
   * Reopens the stream at once: from the last id applied (`fromLastId`; the server
   * replays what is missing, or sends a snapshot when it no longer can) or afresh (a
   * snapshot). Once per id: a server that answers with the same gap again is believed
   * rather than asked forever. Answers whether it reconnected.
   */
  _resync(fromLastId) {
    if (this._stopped || this._resyncedAt === this.lastEventId) return false;
    this._resyncedAt = this.lastEventId;
    this.stats.resyncs += 1;
    if (this._es) this._es.close();
    this._es = null;
    this._connect(fromLastId);
    return true;
  }

  /** The EventSource gave up: stop if the room is gone, else reconnect with the last id. */
  async _recover() {
    if (this._es) this._es.close();
    this._es = null;
    try {
      await getRoom(this.roomId, this.baseUrl);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        this._finish('not_found', null);
        return;
      }
    }
    if (this._stopped) return;
    const wait = this._backoff * (0.5 + Math.random());
    this._backoff = Math.min(this._backoff * 2, this.options.maxBackoff ?? ROOM_TIMINGS.maxBackoffMs);
    clearTimeout(this._retryTimer);
    this._retryTimer = setTimeout(() => this._connect(true), wait);
  }

  _finish(reason, version) {
    this.closedReason = reason;
    this.stop();
    this._setStatus('closed');
    this._emit('closed', { version, reason });
  }

  /**
   * A new state: arms the start timer of a pending start (the player starts at
   * `starts_at` by the server clock, without waiting for the `start` event), and
   * the readiness reports of an open ready gate.
   */
  _stateChanged() {
    const st = this.room ? this.room.state : null;
    clearTimeout(this._startTimer);
    if (st && typeof st.starts_at === 'number') {
      const wait = st.starts_at - this.clock.now();
      if (wait > 0) {
        // The player starts itself (early by its start latency); the event is for the page.
        if (this.sync) this.sync.scheduleStart(st.starts_at);
        this._startTimer = setTimeout(() => this._emit('start', { starts_at: st.starts_at }), wait);
      }
    }
    clearInterval(this._readyTimer);
    this._readyTimer = null;
    const gate = st ? st.ready_gate : null;
    if (this.options.readyGate && typeof gate === 'number' && this._readyReported !== gate) {
      this._readyTimer = setInterval(() => this._reportReady(gate), ROOM_TIMINGS.readyCheckMs);
    }
  }

  /** Reports the open gate's item ready once the player is (one report per gate and stream). */
  async _reportReady(gate) {
    if (this._readySending || !this.sync || !this.streamToken || !this.sync.isReady()) return;
    const token = this.streamToken;
    this._readySending = true;
    try {
      const progress = await sendReady(this.roomId, token, gate, this.baseUrl);
      this._readyReported = gate;
      clearInterval(this._readyTimer);
      this._emit('ready', progress);
    } catch (err) {
      // 403: the token is stale; the next `hello` brings a new one and the timer tries again.
      // Anything else (the gate closed meanwhile, the network): the deadline starts the room anyway.
      if (!(err instanceof ApiError && err.status === 403)) clearInterval(this._readyTimer);
    } finally {
      this._readySending = false;
    }
  }

  /** Emits a chat message unless one as new was emitted already (by version). */
  _emitChat(message, fromHistory) {
    if (!message || typeof message.version !== 'number') return;
    if (this._chatVersion !== undefined && message.version <= this._chatVersion) return;
    this._chatVersion = message.version;
    this._emit('chat', fromHistory ? { ...message, history: true } : message);
  }

  _onIdEvent(type, e) {
    const data = parse(e.data);
    if (!data) return;
    const id = e.lastEventId === '' ? null : Number(e.lastEventId);
    if (type !== 'snapshot' && id !== null && this.lastEventId !== null) {
      if (id <= this.lastEventId) { this.stats.duplicates += 1; return; }
      if (id !== this.lastEventId + 1) {
        this.stats.gaps += 1;
        // Dropped unapplied: the replay brings it again, after what is missing.
        if (this._resync(true)) return;
      }
    }
    if (id !== null) this.lastEventId = id;
    this.stats.events += 1;
    this.stats.lastEventAt = Date.now();

    switch (type) {
      case 'snapshot':
        this.stats.snapshots += 1;
        this.room = data;
        this._stateChanged();
        if (this.sync) this.sync.roomChanged();
        this._emit('snapshot', data);
        if (data.sync) this._emit('sync', data.sync);
        for (const message of Array.isArray(data.chat) ? data.chat : []) this._emitChat(message, true);
        break;
      case 'state':
        if (!this.room) this.room = { room_id: this.roomId, control: 'host', queue: [], listeners: 0 };
        this.room.state = data.state;
        this.room.version = data.version;
        this._stateChanged();
        // Act on the player first: latency here is drift for everyone watching. A `start`
        // only says what the player did by itself at `starts_at`: no change to land on.
        if (this.sync) {
          if (data.cause === 'start') this.sync.apply(false);
          else this.sync.roomChanged();
        }
        this._emit('state', data);
        break;
      case 'queue': {
        if (!this.room) this.room = { room_id: this.roomId, control: 'host', queue: [], listeners: 0 };
        const queue = applyQueueEvent(this.room.queue, data);
        // A change this client cannot apply: a fresh snapshot rather than a queue that differs.
        if (queue === null && this._resync(false)) return;
        if (queue !== null) this.room.queue = queue;
        this.room.version = data.version;
        this._emit('queue', { ...data, queue: this.queue });
        break;
      }
      case 'queue_mode':
        if (this.room) { this.room.queue_mode = data.queue_mode; this.room.version = data.version; }
        this._emit('queue_mode', data);
        break;
      case 'persistent':
        if (this.room) { this.room.persistent = data.persistent; this.room.version = data.version; }
        this._emit('persistent', data);
        break;
      case 'chat':
        if (this.room) this.room.version = data.version;
        this._emitChat(data, false);
        break;
      case 'control':
      case 'permissions':
        if (this.room) {
          this.room.control = data.control;
          // A server without permissions sends `control` alone: they are derived from it.
          if (data.permissions) this.room.permissions = data.permissions;
          else delete this.room.permissions;
          this.room.version = data.version;
        }
        this._emit(type, data);
        break;
      case 'cohosts':
        if (this.room) { this.room.cohosts = data.cohosts; this.room.version = data.version; }
        this._emit('cohosts', data);
        break;
      case 'chat_deleted':
        if (this.room) {
          this.room.chat = (this.room.chat || []).filter((m) => m.version !== data.chat_version);
          this.room.version = data.version;
        }
        this._emit('chat_deleted', data);
        break;
      case 'ready_gate':
        if (this.room) { this.room.ready_gate = data.ready_gate; this.room.version = data.version; }
        this._emit('ready_gate', data);
        break;
      case 'vote_skip':
        if (this.room) { this.room.vote_skip = data.vote_skip; this.room.version = data.version; }
        this._emit('vote_skip', data);
        break;
      case 'visibility':
        if (this.room) { this.room.visibility = data.visibility; this.room.version = data.version; }
        this._emit('visibility', data);
        break;
      case 'chat_enabled':
        if (this.room) { this.room.chat_enabled = data.chat_enabled; this.room.version = data.version; }
        this._emit('chat_enabled', data);
        break;
      case 'chat_cleared':
        if (this.room) { this.room.chat = []; this.room.version = data.version; }
        this._emit('chat_cleared', data);
        break;
      case 'host_token':
        if (this.room) this.room.version = data.version;
        this._emit('host_token', data);
        break;
      case 'closed':
        this._finish(data.reason || 'deleted', data.version ?? id);
        break;
      default:
        break;
    }
  }

  /**
   * Sends one command (see the API's command table). Resolves to `{version, room}`.
   * Rejects with an {@link ApiError} (e.g. `401 unauthorized`, `409 version_conflict`).
   */
  async command(cmd) {
    return sendCommand(this.roomId, cmd, this.token, this.baseUrl);
  }

  /**
   * Adds to the queue (`queue_add`): one item, `{items}` or `{playlist_id}` (see
   * `queueAdd` in api.js). Resolves to `{version, room}`.
   */
  queueAdd(what) {
    return queueAdd(this.roomId, what, this.token, this.baseUrl);
  }

  /**
   * Adds any number of items in batches of at most `MAX_ITEMS_PER_ADD` (see `queueAddAll`
   * in api.js), attributed to `options.name` (default: this client's name).
   */
  queueAddAll(items, { name = this.name } = {}) {
    return queueAddAll(this.roomId, items, { name: name || undefined, hostToken: this.token, baseUrl: this.baseUrl });
  }

  /** Sets the queue mode: `normal`, `loop` or `shuffle` (see `QueueMode`). */
  setQueueMode(queueMode) {
    return setQueueMode(this.roomId, queueMode, this.token, this.baseUrl);
  }

  /** Keeps the room (exempt from idle expiry) or lets it expire again; host only. */
  setPersistent(persistent) {
    return setPersistent(this.roomId, persistent, this.hostToken, this.baseUrl);
  }

  /** Sets the room's vote skip (`ratio` 0 to 1, 0: off; `minVotes` 1 to 10000); host only. */
  setVoteSkip(ratio, minVotes = 1) {
    return setVoteSkip(this.roomId, ratio, minVotes, this.hostToken, this.baseUrl);
  }

  /**
   * Votes to skip the loaded item, as this page's live stream (once per item). Resolves to
   * `{skip, needed, listeners, counted}`; rejects before the stream's `hello` came.
   */
  voteSkip() {
    if (!this.streamToken) return Promise.reject(new Error('no live stream to vote with yet'));
    return sendVote(this.roomId, this.streamToken, this.baseUrl);
  }

  /** Says something in the room's chat (with this client's token, if any). Resolves to `{version}`. */
  chat(name, text) {
    return sendChat(this.roomId, name, text, this.baseUrl, this.token);
  }

  /** Sets who may do what: `{group: 'host' | 'cohost' | 'anyone', ...}`, any subset; host only. */
  setPermissions(permissions) {
    return setPermissions(this.roomId, permissions, this.hostToken, this.baseUrl);
  }

  /** Removes the chat message sent as `chatVersion` (group `moderate`). */
  deleteChat(chatVersion) {
    return deleteChat(this.roomId, chatVersion, this.token, this.baseUrl);
  }

  /** Ends the listener's stream `stream` (a stream id of the room's `members`; group `moderate`). */
  kick(stream) {
    return kick(this.roomId, stream, this.token, this.baseUrl);
  }

  /** Makes a co-host named `name`; resolves to `{cohost_id, cohost_token, name}` (host only). */
  addCohost(name) {
    return addCohost(this.roomId, name, this.hostToken, this.baseUrl);
  }

  /** The room's co-hosts: `{cohosts: [{cohost_id, name}]}` (host only). */
  listCohosts() {
    return listCohosts(this.roomId, this.hostToken, this.baseUrl);
  }

  /** Revokes a co-host at once (host only). */
  revokeCohost(cohostId) {
    return revokeCohost(this.roomId, cohostId, this.hostToken, this.baseUrl);
  }

  /**
   * Exchanges the host token for a new one, which this client keeps using. Resolves
   * to `{host_token, version}`; store the new token wherever the old one was kept.
   */
  async resetHostToken() {
    const answer = await resetHostToken(this.roomId, this.hostToken, this.baseUrl);
    this.hostToken = answer.host_token;
    return answer;
  }

  /** Closes the room for everyone (host token needed). */
  close() {
    return deleteRoom(this.roomId, this.hostToken, this.baseUrl);
  }
}


function parse(text) {
  try { return JSON.parse(text); } catch { return null; }
}
