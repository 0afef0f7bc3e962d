/**
 * syncroom.js — a small browser client for syncroom rooms.
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
 *   import { SyncRoom } from '/static/syncroom.js';
 *
 *   const room = new SyncRoom({
 *     roomId: 'friday',            // the room to follow
 *     name: 'Ann',                 // optional display name (presence)
 *     hostToken: undefined,        // the host token, only to send host-only commands
 *     correction: { seekThreshold: 1.5 }, // optional, see DEFAULT_CORRECTION in sync-core.js
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
 *   await room.command({ type: 'seek', position: 42 }); // needs hostToken in "host" control
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
 * - `queue`    — `{version, queue, server_time}`
 * - `chat`     — `{version, name, text, server_time}`
 * - `control`  — `{version, control, server_time}`
 * - `presence` — `{listeners, server_time}`
 * - `closed`   — `{version?, reason}`: `deleted`, `expired` or `not_found`; the client stops
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
 * @module syncroom
 */

import { roomPosition as computeRoomPosition, estimateOffset, decideCorrection, DEFAULT_CORRECTION } from './sync-core.js';

export { DEFAULT_CORRECTION };

/** YouTube IFrame API player states (the simulated player uses the same numbers). */
export const PlayerState = Object.freeze({
  UNSTARTED: -1, ENDED: 0, PLAYING: 1, PAUSED: 2, BUFFERING: 3, CUED: 5,
});

/** A monotonic local clock in Unix milliseconds (immune to wall-clock steps). */
export function localNow() {
  return performance.timeOrigin + performance.now();
}

/** An error answered by the server: `status`, `code` and `message` from its JSON body. */
export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message || code || `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

/**
 * The Resource Timing entry of a fetched `url`, or `null`. Read from the timeline,
 * or, once its buffer is full (a long session), from a short-lived observer.
 */
async function resourceEntry(url) {
  if (typeof performance === 'undefined' || typeof performance.getEntriesByName !== 'function') return null;
  const find = () => {
    const list = performance.getEntriesByName(url, 'resource');
    return list.length ? list[list.length - 1] : null;
  };
  let entry = find();
  if (!entry && typeof PerformanceObserver === 'function') {
    entry = await new Promise((resolve) => {
      let observer = null;
      const timer = setTimeout(() => { if (observer) observer.disconnect(); resolve(find()); }, 150);
      try {
        observer = new PerformanceObserver((items) => {
          const hit = items.getEntriesByName(url);
          if (hit.length) { clearTimeout(timer); observer.disconnect(); resolve(hit[0]); }
        });
        observer.observe({ type: 'resource', buffered: true });
      } catch {
        clearTimeout(timer);
        resolve(find());
      }
    });
  }
  return entry;
}

async function request(baseUrl, method, path, { body, token } = {}) {
  const headers = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(`${baseUrl}${path}`, {
    method, headers, cache: 'no-store',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 204) return null;
  let json = null;
  try { json = await res.json(); } catch { /* a body that is not JSON: keep the status */ }
  if (!res.ok) {
    const err = json && json.error ? json.error : {};
    const retry = res.headers.get('Retry-After');
    throw new ApiError(res.status, err.code || 'http_error', err.message || `HTTP ${res.status}`,
      retry === null ? null : Number(retry));
  }
  return json;
}

/**
 * Creates a room. Resolves to `{room_id, host_token, room}`; keep `host_token`
 * private (it is shown once).
 * @param {{room_id?:string, name?:string, control?:'host'|'open', video_id?:string}} [fields]
 * @param {string} [baseUrl=''] the server's origin, empty for the page's own
 */
export function createRoom(fields = {}, baseUrl = '') {
  return request(baseUrl, 'POST', '/api/rooms', { body: fields });
}

/** Lists the rooms on the server: `{rooms: [{room_id, name, listeners, video_id}]}`. */
export function listRooms(baseUrl = '') {
  return request(baseUrl, 'GET', '/api/rooms');
}

/**
 * The server's clock, estimated NTP style from `GET /api/time`: a burst of
 * samples at start, a few more periodically; the estimate is the recent sample
 * with the lowest round trip (see `estimateOffset` in sync-core.js).
 */
export class ServerClock {
  /**
   * @param {object} [options]
   * @param {string} [options.baseUrl='']
   * @param {number} [options.initialSamples=8] samples taken by {@link ServerClock#sync}
   * @param {number} [options.resampleEvery=15000] ms between periodic re-samples
   * @param {number} [options.resampleCount=3] samples per periodic re-sample
   * @param {number} [options.keepFor=300000] ms a sample stays a candidate (clocks drift)
   */
  constructor(options = {}) {
    this.baseUrl = options.baseUrl || '';
    this.initialSamples = options.initialSamples ?? 8;
    this.resampleEvery = options.resampleEvery ?? 15000;
    this.resampleCount = options.resampleCount ?? 3;
    this.keepFor = options.keepFor ?? 300000;
    /** @type {{sentAt:number, serverTime:number, receivedAt:number}[]} */
    this.samples = [];
    this.estimate = null;
    this._timer = null;
  }

  /** Milliseconds to add to the local clock to read the server's (0 until known). */
  get offset() { return this.estimate ? this.estimate.offset : 0; }

  /** Whether at least one sample has been taken. */
  get synced() { return this.estimate !== null; }

  /** The server's clock now, in Unix milliseconds. */
  now() { return localNow() + this.offset; }

  async _sampleOnce() {
    this._seq = (this._seq || 0) + 1;
    // A unique URL: never cached, and its Resource Timing entry can be found.
    const url = new URL(`${this.baseUrl}/api/time?s=${Date.now().toString(36)}${this._seq}`, location.href).href;
    const sentAt = localNow();
    const res = await fetch(url, { cache: 'no-store' });
    const receivedAt = localNow();
    if (!res.ok) throw new ApiError(res.status, 'time_unavailable', `GET /api/time: HTTP ${res.status}`);
    const body = await res.json();
    const serverTime = Number(body.server_time);
    // The network stack's own timestamps (request sent, first response byte) leave out
    // the time a busy page takes to start the fetch and to run its callback, which
    // otherwise dominates the round trip on a fast network.
    const entry = await resourceEntry(url);
    if (entry && entry.requestStart > 0 && entry.responseStart >= entry.requestStart) {
      const base = performance.timeOrigin;
      return { sentAt: base + entry.requestStart, serverTime, receivedAt: base + entry.responseStart };
    }
    return { sentAt, serverTime, receivedAt };
  }

  /** Takes `count` samples one after another and updates the estimate. */
  async sample(count = this.initialSamples) {
    for (let i = 0; i < count; i += 1) {
      try {
        this.samples.push(await this._sampleOnce());
      } catch (err) {
        if (i === count - 1 && !this.estimate) throw err;
      }
    }
    const cutoff = localNow() - this.keepFor;
    this.samples = this.samples.filter((s) => s.receivedAt >= cutoff).slice(-32);
    this.estimate = estimateOffset(this.samples) || this.estimate;
    return this.estimate;
  }

  /** Takes the initial burst, then re-samples every `resampleEvery` ms until {@link ServerClock#stop}. */
  async sync() {
    await this.sample(this.initialSamples);
    this.stop();
    this._timer = setInterval(() => { this.sample(this.resampleCount).catch(() => {}); }, this.resampleEvery);
    return this.estimate;
  }

  stop() {
    if (this._timer) clearInterval(this._timer);
    this._timer = null;
  }
}

/**
 * Keeps one YouTube-like player in step with a room's `state`.
 *
 * The player needs the YT.Player methods `getCurrentTime`, `getDuration`,
 * `getPlayerState`, `getPlaybackRate`, `setPlaybackRate`, `seekTo`, `playVideo`,
 * `pauseVideo`, `loadVideoById`, `cueVideoById` and `addEventListener`.
 * Used through {@link SyncRoom}; exported for tests and unusual embeddings.
 */
export class PlayerSync {
  /**
   * @param {object} player a ready YT.Player or SimPlayer
   * @param {object} hooks
   * @param {() => object|null} hooks.state the room's current `state`
   * @param {() => number} hooks.serverNow the server clock in ms
   * @param {() => boolean} [hooks.clockReady] whether `serverNow` can be trusted yet
   * @param {() => boolean} hooks.canControl whether this user's player changes become commands
   * @param {(type:string, detail:object) => void} hooks.emit
   * @param {object} [options]
   * @param {object} [options.correction] thresholds, see DEFAULT_CORRECTION
   * @param {number} [options.interval=200] ms between checks
   */
  constructor(player, hooks, options = {}) {
    this.player = player;
    this.hooks = { clockReady: () => true, ...hooks };
    this.correction = { ...DEFAULT_CORRECTION, ...(options.correction || {}) };
    this.interval = options.interval ?? 200;
    this.loadedVideo = null;
    this.nudging = false;
    this.eventPending = true;
    this.held = false;
    this.seeks = 0;
    this.nudges = 0;
    this.lastDrift = null;
    this.driftAvg = null; // moving average of |drift|, seconds
    this.mode = 'waiting';
    this.appliedRate = null;
    this.seekLead = 0; // seconds a seek aims ahead, learned from how late seeks land
    this._lastSeekAt = -Infinity;
    this._seekCheck = null;
    this._lastCommandAt = -Infinity; // our own play/pause/seek/load calls
    this._expectJumpUntil = -Infinity;
    this._suspendUntil = -Infinity; // a controller's own change is on its way to the server
    this._playRequestedAt = null;
    this._lastSample = null;
    this._recent = []; // the last drift readings while playing
    this._lastPlayCallAt = -Infinity;
    /** False once the player ignored or rounded a nudge (it then only seeks). */
    this.canNudge = true;
    this._nudgeCheck = null;
    this._onState = (e) => this._playerStateChanged(typeof e === 'object' && e !== null ? e.data : e);
    this._onRate = (e) => this._playerRateChanged(typeof e === 'object' && e !== null ? e.data : e);
    player.addEventListener('onStateChange', this._onState);
    player.addEventListener('onPlaybackRateChange', this._onRate);
    this._timer = setInterval(() => this.apply(false), this.interval);
  }

  stop() {
    clearInterval(this._timer);
    if (typeof this.player.removeEventListener === 'function') {
      this.player.removeEventListener('onStateChange', this._onState);
      this.player.removeEventListener('onPlaybackRateChange', this._onRate);
    }
  }

  /** The local player's position in seconds. */
  position() {
    const t = Number(this.player.getCurrentTime());
    return Number.isFinite(t) ? t : 0;
  }

  /** Called on every `state`/`snapshot`: the next check acts at once and with the tight threshold. */
  roomChanged() {
    this.eventPending = true;
    this._recent = [];
    this._suspendUntil = -Infinity;
    this.apply(true);
  }

  /** Stops letting a listener's own pause win: follow the room again. */
  resume() {
    this.held = false;
    this.eventPending = true;
    this.hooks.emit('hold', { held: false });
    const st = this.hooks.state();
    if (st && !st.paused && st.video_id) {
      this._call(() => this.player.playVideo());
      this._playRequestedAt = performance.now();
    }
    this.apply(true);
  }

  _call(fn) {
    this._lastCommandAt = performance.now();
    fn();
  }

  _seek(target) {
    this._recent = [];
    this._call(() => this.player.seekTo(target, true));
    this._expectJumpUntil = performance.now() + 1500;
    this._lastSeekAt = performance.now();
    this.seeks += 1;
    this.mode = 'seeking';
  }

  _setRate(rate) {
    if (this.appliedRate !== null && Math.abs(this.appliedRate - rate) < 1e-4
        && Math.abs(Number(this.player.getPlaybackRate()) - rate) < 1e-3) return;
    this.appliedRate = rate;
    this.player.setPlaybackRate(rate);
  }

  _userActive() {
    // A click or key press inside the player's iframe activates this page too.
    const ua = globalThis.navigator && navigator.userActivation;
    return ua ? ua.isActive : true;
  }

  _ownRecentCall() {
    return performance.now() - this._lastCommandAt < 1000;
  }

  _playerStateChanged(ps) {
    const st = this.hooks.state();
    if (!st || !st.video_id || this.loadedVideo !== st.video_id) return;
    if (this._ownRecentCall()) return;
    if (!this._userActive()) return;
    const userPlayed = ps === PlayerState.PLAYING && st.paused;
    const userPaused = ps === PlayerState.PAUSED && !st.paused;
    if (!userPlayed && !userPaused) return;
    // Seen both by the player's event and by the periodic check: act once.
    const now = performance.now();
    if (this._handled && this._handled.ps === ps && now - this._handled.at < 1000) return;
    this._handled = { ps, at: now };
    if (this.hooks.canControl()) {
      this._suspendUntil = performance.now() + 2000;
      this.hooks.emit('localchange', { type: userPlayed ? 'play' : 'pause', position: this.position() });
    } else if (userPaused) {
      this.held = true;
      this.mode = 'hold';
      this.hooks.emit('hold', { held: true });
    }
  }

  _playerRateChanged(rate) {
    const st = this.hooks.state();
    if (!st || this.appliedRate === null || Math.abs(Number(rate) - this.appliedRate) < 1e-3) return;
    // A player that rounds a nudge reports a rate near the room's: not a person's choice.
    if (Math.abs(Number(rate) / st.rate - 1) <= this.correction.maxNudge + 1e-3) return;
    if (!this._userActive() || !this.hooks.canControl()) return;
    this._suspendUntil = performance.now() + 2000;
    this.hooks.emit('localchange', { type: 'rate', rate: Number(rate) });
  }

  /** Notices a seek made with the player's own controls: the position jumped. */
  _detectJump(ps) {
    const now = performance.now();
    const pos = this.position();
    const prev = this._lastSample;
    this._lastSample = { at: now, pos, playing: ps === PlayerState.PLAYING };
    if (!prev || now < this._expectJumpUntil || this._ownRecentCall()) return false;
    const rate = Number(this.player.getPlaybackRate()) || 1;
    const elapsed = ((now - prev.at) / 1000) * rate;
    const jumped = pos > prev.pos + elapsed + 1.0 || pos < prev.pos - 0.5;
    if (!jumped || !this.hooks.canControl()) return false;
    this._suspendUntil = now + 2000;
    this.hooks.emit('localchange', { type: 'seek', position: pos });
    return true;
  }

  _recordDrift(drift) {
    this.lastDrift = drift;
    const size = Math.abs(drift);
    this.driftAvg = this.driftAvg === null ? size : this.driftAvg * 0.8 + size * 0.2;
  }

  /**
   * One check: load, play, pause, seek or nudge the player so it follows the room.
   * @param {boolean} afterEvent called for a fresh `state` (vs the periodic check)
   */
  apply(afterEvent) {
    const st = this.hooks.state();
    const now = performance.now();
    // Without the server's clock every target would be off by the offset: wait for it.
    if (!st || !this.hooks.clockReady()) { this.mode = 'waiting'; return; }
    if (now < this._suspendUntil) { this.mode = 'waiting'; return; }
    if (!st.video_id) {
      if (this.loadedVideo) {
        this._call(() => this.player.pauseVideo());
      }
      this.mode = 'waiting';
      this.lastDrift = null;
      return;
    }
    const target = computeRoomPosition(st, this.hooks.serverNow());
    if (this.loadedVideo !== st.video_id) {
      const args = { videoId: st.video_id, startSeconds: target };
      this._call(() => (st.paused ? this.player.cueVideoById(args) : this.player.loadVideoById(args)));
      this.loadedVideo = st.video_id;
      this.appliedRate = null;
      this.canNudge = true;
      this._nudgeCheck = null;
      this.nudging = false;
      this.eventPending = true;
      this._expectJumpUntil = now + 3000;
      this._lastSample = null;
      this._playRequestedAt = st.paused ? null : now;
      this.mode = 'loading';
      return;
    }

    const ps = Number(this.player.getPlayerState());
    // The player's state may change before its event is delivered (events travel by
    // message): a person's play or pause must not be undone by this check first.
    if (this._seenState !== undefined && ps !== this._seenState) this._playerStateChanged(ps);
    this._seenState = ps;
    if (now < this._suspendUntil) { this.mode = 'waiting'; return; }
    if (this._detectJump(ps)) { this.mode = 'waiting'; return; }
    if (this.held) { this.mode = 'hold'; return; }

    if (st.paused) {
      this._playRequestedAt = null;
      this.nudging = false;
      this._setRate(st.rate);
      if (ps === PlayerState.PLAYING || ps === PlayerState.BUFFERING) {
        this._call(() => this.player.pauseVideo());
      }
      const drift = this.position() - target;
      this._recordDrift(drift);
      const d = decideCorrection({ drift, paused: true, rate: st.rate, afterEvent: afterEvent || this.eventPending },
        this.correction);
      // One precise attempt per change; later checks only catch large slips.
      this.eventPending = false;
      if (d.action === 'seek') {
        this._seek(target);
        // seekTo() from a cued or unstarted player starts playback: stop it again.
        if (ps !== PlayerState.PAUSED) this._call(() => this.player.pauseVideo());
      } else {
        this.mode = 'in-sync';
      }
      return;
    }

    // The room is playing.
    if (ps === PlayerState.BUFFERING) { this.mode = 'buffering'; return; }
    if (ps !== PlayerState.PLAYING) {
      if (ps === PlayerState.ENDED && target >= (st.duration ?? Infinity) - 0.5) {
        this.mode = 'waiting';
        return;
      }
      // A player that will not start: the browser wants a gesture first (quickly
      // known when the page never had one; a player that stays stopped says it too).
      const activated = Boolean(globalThis.navigator && navigator.userActivation && navigator.userActivation.hasBeenActive);
      if (this._playRequestedAt !== null && now - this._playRequestedAt > (activated ? 4000 : 1500)) {
        this.mode = 'blocked';
        this.hooks.emit('autoplayblocked', {});
        this._playRequestedAt = now + 3000; // ask again later, not every tick
        return;
      }
      // Give a play call a moment to take before repeating it (a real player
      // reports its new state by message, and a repeated seek restarts buffering).
      if (now - this._lastPlayCallAt < 1000) { this.mode = 'starting'; return; }
      // Starting is the cheapest moment to land exactly: seek unless already close.
      const drift = this.position() - target;
      const d = decideCorrection({ drift, paused: false, rate: st.rate, starting: true }, this.correction);
      if (d.action === 'seek') this._seek(target + this.seekLead);
      this._setRate(st.rate);
      this._call(() => this.player.playVideo());
      this._lastPlayCallAt = now;
      if (this._playRequestedAt === null) this._playRequestedAt = now;
      this.mode = 'starting';
      this.eventPending = true;
      return;
    }
    this._playRequestedAt = null;

    const measured = this.position() - target;
    this._recordDrift(measured);
    // Decide on the median of the last three readings: a real player's position
    // arrives by message and jitters; one odd reading should not start a nudge.
    this._recent.push(measured);
    if (this._recent.length > 3) this._recent.shift();
    const drift = afterEvent || this.eventPending ? measured : median(this._recent);
    if (this._seekCheck && now >= this._seekCheck.at) {
      // Learn how late a seek lands (a real player buffers after seeking).
      const late = -drift;
      if (Math.abs(late) < 2) this.seekLead = Math.min(2, Math.max(0, this.seekLead + late * 0.5));
      this._seekCheck = null;
    }
    if (this._nudgeCheck && now >= this._nudgeCheck.at) {
      // Did the player take the nudged rate? YouTube may round it to its menu's steps.
      if (this.nudging && Math.abs(Number(this.player.getPlaybackRate()) - this.appliedRate) > 0.004) {
        this.canNudge = false;
        this.nudging = false;
      }
      this._nudgeCheck = null;
    }
    const sinceSeek = now - this._lastSeekAt;
    const d = decideCorrection({
      drift, paused: false, rate: st.rate, nudging: this.nudging, canNudge: this.canNudge,
      afterEvent: afterEvent || this.eventPending,
    }, this.correction);
    this.eventPending = false;
    if (d.action === 'seek' && (afterEvent || sinceSeek > 1500)) {
      this.nudging = false;
      this._setRate(st.rate);
      this._seek(target + this.seekLead);
      this._seekCheck = { at: now + 1000 };
    } else if (d.action === 'nudge') {
      if (!this.nudging) this.nudges += 1;
      this.nudging = true;
      this.mode = 'nudging';
      this._setRate(d.rate);
      if (!this._nudgeCheck) this._nudgeCheck = { at: now + 400 };
    } else {
      this.nudging = false;
      this.mode = d.action === 'seek' ? 'seeking' : 'in-sync';
      this._setRate(st.rate);
    }
  }
}

const ID_EVENTS = ['snapshot', 'state', 'queue', 'chat', 'control', 'closed'];

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
   * @param {string} [options.baseUrl=''] the server's origin
   * @param {object} [options.correction] drift thresholds (DEFAULT_CORRECTION keys)
   * @param {object} [options.clock] ServerClock options
   * @param {number} [options.maxBackoff=30000] ms, the longest wait between manual reconnects
   */
  constructor(options) {
    super();
    if (!options || !options.roomId) throw new TypeError('SyncRoom needs a roomId');
    this.roomId = options.roomId;
    this.name = options.name || '';
    this.hostToken = options.hostToken || null;
    this.baseUrl = options.baseUrl || '';
    this.options = options;
    this.clock = new ServerClock({ baseUrl: this.baseUrl, ...(options.clock || {}) });
    /** The latest full room object (kept up to date from events). */
    this.room = null;
    /** The last event id seen (the room's version); `null` before the first. */
    this.lastEventId = null;
    /** `connecting`, `live`, `reconnecting` or `closed`. */
    this.status = 'connecting';
    this.closedReason = null;
    this.stats = { opens: 0, snapshots: 0, events: 0, duplicates: 0, gaps: 0 };
    this.sync = null;
    this._es = null;
    this._backoff = 1000;
    this._retryTimer = null;
    this._healthTimer = null;
    this._stopped = false;
    this._clockSettled = false;
  }

  /** Whether the event stream is open right now. */
  get connected() { return this.status === 'live'; }

  /** The room's playback `state` (or `null` before the first snapshot). */
  get state() { return this.room ? this.room.state : null; }

  /** Whether commands from this client are accepted: it holds the host token, or control is open. */
  get canControl() {
    return Boolean(this.hostToken) || (this.room !== null && this.room.control === 'open');
  }

  /** Milliseconds to add to the local clock to read the server's. */
  clockOffset() { return this.clock.offset; }

  /** The server clock now (Unix ms). */
  serverNow() { return this.clock.now(); }

  /** Seconds: where the room's playback is now, by the server clock. */
  roomPosition() { return computeRoomPosition(this.state, this.clock.now()); }

  /** Seconds: where the attached player is now (the room's position when none is attached). */
  playerPosition() { return this.sync ? this.sync.position() : this.roomPosition(); }

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
      mode: s ? s.mode : 'no-player',
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
      this.clock._timer = setInterval(() => { this.clock.sample(3).catch(() => {}); }, 5000);
    }
    this._clockSettled = true;
    this._healthTimer = setInterval(() => this._emit('health', this.health()), 500);
    if (this.sync) this.sync.roomChanged();
  }

  /** Closes the stream and stops all timers. */
  stop() {
    this._stopped = true;
    if (this._es) this._es.close();
    this._es = null;
    clearTimeout(this._retryTimer);
    clearInterval(this._healthTimer);
    this.clock.stop();
    if (this.sync) this.sync.stop();
  }

  /**
   * Keeps `player` (a ready YT.Player or anything with its methods) in step with the room.
   * Replaces a previously attached player.
   */
  attachPlayer(player, options = {}) {
    if (this.sync) this.sync.stop();
    this.sync = new PlayerSync(player, {
      state: () => this.state,
      serverNow: () => this.clock.now(),
      clockReady: () => this._clockSettled,
      canControl: () => this.canControl,
      emit: (type, detail) => this._emit(type, detail),
    }, { correction: this.options.correction, ...options });
    this.sync.roomChanged();
    return this.sync;
  }

  /** After a listener's own pause or a blocked autoplay: follow the room again (call it from a click). */
  resume() {
    if (this.sync) this.sync.resume();
  }

  _streamUrl(withLastId) {
    const params = new URLSearchParams();
    if (this.name) params.set('name', this.name.slice(0, 64));
    if (withLastId && this.lastEventId !== null) params.set('last_event_id', String(this.lastEventId));
    const q = params.toString();
    return `${this.baseUrl}/api/rooms/${encodeURIComponent(this.roomId)}/events${q ? `?${q}` : ''}`;
  }

  _connect(withLastId = false) {
    if (this._stopped) return;
    const es = new EventSource(this._streamUrl(withLastId));
    this._es = es;
    es.onopen = () => {
      this.stats.opens += 1;
      this._backoff = 1000;
      this._setStatus('live');
    };
    es.onerror = () => {
      if (this._es !== es || this._stopped) return;
      if (es.readyState === EventSource.CLOSED) {
        this._setStatus('reconnecting');
        this._recover();
      } else {
        // The browser reconnects by itself after the server's `retry:` delay, with Last-Event-ID.
        this._setStatus('reconnecting');
      }
    };
    for (const type of ID_EVENTS) {
      es.addEventListener(type, (e) => this._onIdEvent(type, e));
    }
    es.addEventListener('presence', (e) => {
      const data = parse(e.data);
      if (!data) return;
      if (this.room) this.room.listeners = data.listeners;
      this._emit('presence', data);
    });
  }

  /** The EventSource gave up: stop if the room is gone, else reconnect with the last id. */
  async _recover() {
    if (this._es) this._es.close();
    this._es = null;
    try {
      await request(this.baseUrl, 'GET', `/api/rooms/${encodeURIComponent(this.roomId)}`);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        this._finish('not_found', null);
        return;
      }
    }
    if (this._stopped) return;
    const wait = this._backoff * (0.5 + Math.random());
    this._backoff = Math.min(this._backoff * 2, this.options.maxBackoff ?? 30000);
    clearTimeout(this._retryTimer);
    this._retryTimer = setTimeout(() => this._connect(true), wait);
  }

  _finish(reason, version) {
    this.closedReason = reason;
    this.stop();
    this._setStatus('closed');
    this._emit('closed', { version, reason });
  }

  _onIdEvent(type, e) {
    const data = parse(e.data);
    if (!data) return;
    const id = e.lastEventId === '' ? null : Number(e.lastEventId);
    if (type !== 'snapshot' && id !== null && this.lastEventId !== null) {
      if (id <= this.lastEventId) { this.stats.duplicates += 1; return; }
      if (id !== this.lastEventId + 1) this.stats.gaps += 1;
    }
    if (id !== null) this.lastEventId = id;
    this.stats.events += 1;
    this.stats.lastEventAt = Date.now();

    switch (type) {
      case 'snapshot':
        this.stats.snapshots += 1;
        this.room = data;
        if (this.sync) this.sync.roomChanged();
        this._emit('snapshot', data);
        break;
      case 'state':
        if (!this.room) this.room = { room_id: this.roomId, control: 'host', queue: [], listeners: 0 };
        this.room.state = data.state;
        this.room.version = data.version;
        // Act on the player first: latency here is drift for everyone watching.
        if (this.sync) this.sync.roomChanged();
        this._emit('state', data);
        break;
      case 'queue':
        if (this.room) { this.room.queue = data.queue; this.room.version = data.version; }
        this._emit('queue', data);
        break;
      case 'chat':
        if (this.room) this.room.version = data.version;
        this._emit('chat', data);
        break;
      case 'control':
        if (this.room) { this.room.control = data.control; this.room.version = data.version; }
        this._emit('control', data);
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
    const res = await request(this.baseUrl, 'POST', `/api/rooms/${encodeURIComponent(this.roomId)}/commands`,
      { body: cmd, token: this.hostToken });
    return res;
  }

  /** Says something in the room's chat. Resolves to `{version}`. */
  chat(name, text) {
    return request(this.baseUrl, 'POST', `/api/rooms/${encodeURIComponent(this.roomId)}/chat`,
      { body: { name, text } });
  }

  /** Closes the room for everyone (host token needed). */
  close() {
    return request(this.baseUrl, 'DELETE', `/api/rooms/${encodeURIComponent(this.roomId)}`,
      { token: this.hostToken });
  }
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function parse(text) {
  try { return JSON.parse(text); } catch { return null; }
}
