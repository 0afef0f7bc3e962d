/**
 * player-sync.js — keeps one YouTube-like player in step with a room.
 *
 * {@link PlayerSync} watches the room's `state` and the server clock, and every
 * check loads, plays, pauses, seeks or nudges the player's rate so its position
 * follows the room's: a small drift is nudged away by playing a few per cent
 * faster or slower, a large one is sought. Every threshold and delay it uses is
 * a key of `DEFAULT_CORRECTION` (sync-core.js), overridable per instance.
 *
 * @module player-sync
 */

import {
  roomPosition as computeRoomPosition, decideCorrection, decideCoarseCorrection, DEFAULT_CORRECTION,
} from './sync-core.js';

/**
 * What a room plays, as one string: a YouTube item's `video_id` or a media item's
 * `media_url` (exactly one of them is set); `null` when nothing is loaded.
 * @param {{video_id?:string|null, media_url?:string|null}|null} state
 */
export function itemKey(state) {
  if (!state) return null;
  return state.video_id || state.media_url || null;
}

/** YouTube IFrame API player states (the simulated player uses the same numbers). */
export const PlayerState = Object.freeze({
  UNSTARTED: -1, ENDED: 0, PLAYING: 1, PAUSED: 2, BUFFERING: 3, CUED: 5,
});

/**
 * What the corrector is doing right now (`PlayerSync#mode`, `health().mode`).
 * The values are the strings the page shows and tests read.
 */
export const PlayerMode = Object.freeze({
  /** No state yet, the clock is not known, nothing is loaded, or a person's own change is on its way. */
  WAITING: 'waiting',
  /** A new video is being loaded or cued. */
  LOADING: 'loading',
  /** A play call was made; waiting for the player to report that it plays. */
  STARTING: 'starting',
  /** The player buffers. */
  BUFFERING: 'buffering',
  /** A seek was just made to catch up. */
  SEEKING: 'seeking',
  /** The playback rate is nudged a little to close a small drift. */
  NUDGING: 'nudging',
  /** A coarse-rate player plays a neighbouring listed rate for a moment to close a drift. */
  BURST: 'burst',
  /** Within the thresholds: nothing to do. */
  IN_SYNC: 'in-sync',
  /** A listener paused their own player; the room is not forced on it until `resume()`. */
  HOLD: 'hold',
  /** The browser refused to start playback without a click. */
  BLOCKED: 'blocked',
  /** No player is attached (only in `SyncRoom#health()`). */
  NO_PLAYER: 'no-player',
});

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
   * @param {(driftSeconds:number) => void} [hooks.drift] each drift reading that counts as drift
   * @param {() => void} [hooks.quiet] a deliberate change happened: leave out the next readings
   *        (see `DriftWindow#quiet` in sync-core.js)
   * @param {object} [options]
   * @param {object} [options.correction] thresholds, see DEFAULT_CORRECTION
   * @param {number} [options.interval] ms between checks (default `correction.checkIntervalMs`)
   * @param {(state:object) => boolean} [options.accepts] whether this player plays the room's
   *        item (a YouTube player takes no `media_url`): for another, it waits to be replaced
   * @param {boolean} [options.listedRatesOnly] the player plays only `getAvailablePlaybackRates()`
   *        (YouTube): correct by bursts at those rates from the start
   */
  constructor(player, hooks, options = {}) {
    this.player = player;
    this.hooks = { clockReady: () => true, drift: () => {}, quiet: () => {}, ...hooks };
    this.correction = { ...DEFAULT_CORRECTION, ...(options.correction || {}) };
    this.interval = options.interval ?? this.correction.checkIntervalMs;
    this.loadedVideo = null;
    this.nudging = false;
    this.eventPending = true;
    this.held = false;
    this.seeks = 0;
    this.nudges = 0;
    this.lastDrift = null;
    this.driftAvg = null; // moving average of |drift|, seconds
    this.mode = PlayerMode.WAITING;
    this.appliedRate = null;
    this.seekLead = 0; // seconds a seek aims ahead beyond seekLatency, learned from how late seeks land
    /** Seconds from a seek call until the player plays again (learned; a seek aims ahead by it). */
    this.seekLatency = 0;
    this._seekStartedAt = null;
    this._seekLandedAt = -Infinity;
    this.bursts = 0;
    /** Seconds of position a rate change and back costs this player at the room's last rate, learned by fine bursts. */
    this.rateChangeCost = 0;
    this._rateCosts = new Map(); // room rate -> that cost (Chromium's grows with the rate)
    /** Seconds of position a coarse burst at a listed rate and back costs, learned per `room>burst` rates. */
    this.burstCosts = new Map();
    this._burstOutcomes = new Map(); // the same key -> the last few outcomes (seconds)
    /** Seconds from asking a rate until the player reports it taken (`onPlaybackRateChange`), learned. */
    this.rateLatency = 0;
    this._rateAsked = null; // {rate, at}: the last rate asked, until the player reports it
    this._roomRate = null; // the room's rate at the last check in play
    this._rateLandAt = null; // a room rate change is judged afresh once it has reached the position
    this._burst = null; // {until, settleUntil, timer} while a coarse-rate burst runs or settles
    this._wasBuffering = false;
    this._loadedUntil = -Infinity; // until then, the end of a buffering is the start of a new item
    this._lastSeekAt = -Infinity;
    this._seekCheck = null;
    this._lastCommandAt = -Infinity; // our own play/pause/seek/load calls
    this._expectJumpUntil = -Infinity;
    this._suspendUntil = -Infinity; // a controller's own change is on its way to the server
    this._playRequestedAt = null;
    this._lastSample = null;
    this._recent = []; // the last drift readings while playing
    this._lastPlayCallAt = -Infinity;
    this._earlyStartUntil = -Infinity; // started ahead of a pending start by the player's start latency
    /** Seconds from a play call until the player moves (learned at scheduled starts, for players that do not tell). */
    this.startLatency = 0;
    this._startMeasure = null;
    this._startTimer = null;
    this._startCheck = null;
    this._followUpUsed = false; // the one follow-up seek of a change was made (or is due)
    this._followUpPending = false; // after that change's seek lands, judge by the event threshold
    this._lastSeekAhead = null; // seconds the last steady-play seek aimed ahead of the room
    this._reloadsAtSeek = 0; // the player's source reloads when the last seek was asked
    this._startingUp = false; // an item loaded to play has not played yet
    /**
     * A player known to play only the rates it lists (YouTube: `options.listedRatesOnly`)
     * starts on the coarse-rate path instead of finding out by a rounded nudge.
     */
    this.listedRatesOnly = Boolean(options.listedRatesOnly);
    /** Which items this player plays (`options.accepts(state)`); any, without it. */
    this.accepts = typeof options.accepts === 'function' ? options.accepts : () => true;
    /** False once the player ignored or rounded a nudge (it then bursts at listed rates, or only seeks). */
    this.canNudge = !this.listedRatesOnly;
    this._nudgeCheck = null;
    this._onState = (e) => this._playerStateChanged(typeof e === 'object' && e !== null ? e.data : e);
    this._onRate = (e) => this._playerRateChanged(typeof e === 'object' && e !== null ? e.data : e);
    player.addEventListener('onStateChange', this._onState);
    player.addEventListener('onPlaybackRateChange', this._onRate);
    this._timer = setInterval(() => this.apply(false), this.interval);
  }

  stop() {
    clearInterval(this._timer);
    clearTimeout(this._startMeasure);
    clearTimeout(this._startTimer);
    clearTimeout(this._startCheck);
    this._endBurst(false);
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
    this.hooks.quiet();
    this.eventPending = true;
    this._newChange();
    this._recent = [];
    this._suspendUntil = -Infinity;
    this.apply(true);
  }

  /** A new change (of the room, or a load): its first seek may have its one follow-up. */
  _newChange() {
    this._followUpUsed = false;
    this._followUpPending = false;
  }

  /**
   * Whether the player holds the room's item, paused where the room will start and
   * buffered (a player that says so through `isBuffered()`): what a ready-gate report says.
   */
  isReady() {
    const st = this.hooks.state();
    const key = st ? itemKey(st) : null;
    if (!key || this.loadedVideo !== key) return false;
    const ps = Number(this.player.getPlayerState());
    if (ps !== PlayerState.CUED && ps !== PlayerState.PAUSED) return false;
    if (typeof this.player.isBuffered === 'function' && !this.player.isBuffered()) return false;
    return Math.abs(this.position() - computeRoomPosition(st, this.hooks.serverNow())) < this.correction.pausedResync;
  }

  /**
   * A pending start at `startsAt` (server ms): the player is started early by its start
   * latency (`getStartLatency()`, seconds, when it has one), so it is moving from the
   * start position at the moment itself; then the room, playing by then, is checked.
   */
  scheduleStart(startsAt) {
    clearTimeout(this._startTimer);
    clearTimeout(this._startCheck);
    clearTimeout(this._startMeasure);
    const own = typeof this.player.getStartLatency === 'function' ? Number(this.player.getStartLatency()) : this.startLatency;
    const leadMs = Number.isFinite(own) && own > 0 ? Math.min(own, this.correction.maxStartLead) * 1000 : 0;
    const untilStart = startsAt - this.hooks.serverNow();
    if (untilStart <= 0) return;
    const early = () => {
      const st = this.hooks.state();
      // Only for the start it was armed for, on a player holding the item, paused where it starts.
      if (!st || st.starts_at !== startsAt || this.held || !this.isReady()) return;
      // The timer was set a little early: wait out the rest on the clock (a timer's own
      // lateness would be this player's start skew).
      const wait = Math.min(startsAt - leadMs - this.hooks.serverNow(), this.correction.startSpinMs * 2);
      const until = performance.now() + wait;
      for (let i = 0; i < 1e6 && performance.now() < until; i += 1) { /* the last few ms */ }
      this._setRate(st.rate);
      const from = this.position();
      const seeks = this.seeks;
      this._call(() => this.player.playVideo());
      const at = performance.now();
      this._earlyStartUntil = at + leadMs + this.correction.ownCallMs;
      this._playRequestedAt = at;
      this._lastPlayCallAt = at;
      // Learn this player's start latency (a player that measures its own is asked instead):
      // the position's shortfall against the wall clock since the play call.
      if (typeof this.player.getStartLatency !== 'function') {
        this._startMeasure = setTimeout(() => {
          if (this.seeks !== seeks || Number(this.player.getPlayerState()) !== PlayerState.PLAYING) return;
          const latency = (performance.now() - at) / 1000 - (this.position() - from) / st.rate;
          if (!(latency >= 0) || latency > this.correction.maxStartLead) return;
          const g = this.correction.seekLatencyGain;
          this.startLatency = this.startLatency === 0 ? latency : this.startLatency * (1 - g) + latency * g;
        }, this.correction.startMeasureMs + leadMs);
      }
    };
    // Started at the moment itself when the player's start latency is not known yet.
    this._startTimer = setTimeout(early, Math.max(0, untilStart - leadMs - this.correction.startSpinMs));
    // At the moment itself: an ordinary check (a player started early is judged by the
    // steady thresholds, not sought like after a change); one not started yet starts now.
    this._startCheck = setTimeout(() => this.apply(false), untilStart);
  }

  /** Stops letting a listener's own pause win: follow the room again. */
  resume() {
    this.held = false;
    this.eventPending = true;
    this.hooks.emit('hold', { held: false });
    const st = this.hooks.state();
    if (st && !st.paused && itemKey(st) && this.accepts(st)) {
      this._call(() => this.player.playVideo());
      this._playRequestedAt = performance.now();
    }
    this.apply(true);
  }

  _call(fn) {
    this._lastCommandAt = performance.now();
    fn();
  }

  /** How often the player reloaded its source to land a seek (a media player says; else 0). */
  _reloads() {
    const stats = this.player.stats;
    return stats && Number.isFinite(stats.seekRetries) ? stats.seekRetries : 0;
  }

  _seek(target) {
    this._reloadsAtSeek = this._reloads();
    this._recent = [];
    this._endBurst(false);
    this._seekStartedAt = performance.now();
    this._call(() => this.player.seekTo(target, true));
    this._expectJumpUntil = performance.now() + this.correction.seekSettleMs;
    this._lastSeekAt = performance.now();
    this.seeks += 1;
    this.mode = PlayerMode.SEEKING;
  }

  _setRate(rate) {
    if (this.appliedRate !== null && Math.abs(this.appliedRate - rate) < 1e-4
        && Math.abs(Number(this.player.getPlaybackRate()) - rate) < 1e-3) return;
    this.appliedRate = rate;
    this.player.setPlaybackRate(rate);
    this._rateAsked = { rate, at: performance.now() };
  }

  _userActive() {
    // A click or key press inside the player's iframe activates this page too.
    const ua = globalThis.navigator && navigator.userActivation;
    return ua ? ua.isActive : true;
  }

  _ownRecentCall() {
    return performance.now() - this._lastCommandAt < this.correction.ownCallMs;
  }

  /**
   * The seconds a seek aims ahead of the room: the player's own measure of its seek
   * latency when it has one (a media element), else the one learned here, plus the
   * residual `seekLead`; scaled by the room's rate (the room moves on while we seek).
   * Before any seek was measured, a player that knows its start latency aims ahead by
   * that: a seek in play restarts its decoder and output like a start does (a media
   * element's first seek otherwise lands a start latency, ~0.1 s, behind, and the
   * nudge takes seconds to close what an aimed seek never opens).
   */
  _seekAhead(rate, target) {
    // The player's own measure (of seeks like this one, given its target), once it has one
    // (null before): 0 is a measure too (Firefox's element seeks at once), not a missing one.
    const raw = typeof this.player.getSeekLatency === 'function' ? this.player.getSeekLatency(target) : null;
    const own = raw === null || raw === undefined ? NaN : Number(raw);
    let latency = Number.isFinite(own) && own >= 0 ? own : this.seekLatency;
    if (!Number.isFinite(own) && !(latency > 0) && typeof this.player.getStartLatency === 'function') {
      const start = Number(this.player.getStartLatency());
      if (Number.isFinite(start) && start > 0) latency = Math.min(start, this.correction.maxStartLead);
    }
    return Math.min(this.correction.maxSeekLead, latency * rate + this.seekLead);
  }

  /**
   * Where a change's follow-up seek to `target` aims (seconds ahead of the room), given where
   * its first seek should have aimed (`missAhead`: its aim less how far it landed off). A
   * player that measures its own seek latency (a media element) aims by that measure, of
   * seeks like this one: the first seek's miss is not this one's. The first went far and
   * waited for data (on a busy machine 100-200 ms, while the page handled the change); the
   * follow-up lands in what it fetched (10-40 ms), and aimed by that miss it landed
   * 60-240 ms ahead and was glided for seconds. A player without a measure of its own has
   * only that landing to go by.
   */
  _followUpAim(missAhead, rate, target) {
    const max = this.correction.maxSeekLead;
    const raw = typeof this.player.getSeekLatency === 'function' ? this.player.getSeekLatency(target) : null;
    const own = raw === null || raw === undefined ? NaN : Number(raw);
    const aim = Number.isFinite(own) && own >= 0 ? this._seekAhead(rate, target) : missAhead;
    return Math.min(max, Math.max(0, aim));
  }

  /** When and against what a steady-play seek's landing is judged (to learn `seekLead`). */
  _newSeekCheck(now) {
    return { at: now + this.correction.seekCheckMs, reloads: this._reloads(), bursts: this.nudges + this.bursts };
  }

  /** A seek landed (the player plays again): learn how long it took. */
  _learnSeekLatency() {
    if (this._seekStartedAt === null) return;
    const took = (performance.now() - this._seekStartedAt) / 1000;
    this._seekStartedAt = null;
    this._seekLandedAt = performance.now();
    if (!(took > 0) || took > this.correction.maxSeekLatency) return;
    const g = this.correction.seekLatencyGain;
    this.seekLatency = this.seekLatency === 0 ? took : this.seekLatency * (1 - g) + took * g;
  }

  /**
   * With `coarseBurstCosts`: whether a player that says it plays again after a seek or a start
   * is not moving yet (its decoder and output restarting take longer than `seekLandMs` on a
   * busy machine): its position has not advanced at half the rate since the last check. A
   * reading then would plan a burst on a drift still growing. At most `maxLandMs` after.
   */
  _stillLanding(now, rate) {
    // Only then: an extra read of another player is not free (a media element's position
    // clock learns from how close together its reads come).
    if (!this.correction.coarseBurstCosts) return false;
    const prev = this._landRead;
    const pos = this.position();
    this._landRead = { at: now, pos };
    if (now - this._seekLandedAt > this.correction.maxLandMs) return false;
    if (!prev || now - prev.at > this.correction.checkIntervalMs * 2) return true;
    return pos - prev.pos < ((now - prev.at) / 1000) * rate * 0.5;
  }

  /** The listed rates of a player that only plays those (YouTube), or `null`. */
  _listedRates() {
    if (typeof this.player.getAvailablePlaybackRates !== 'function') return null;
    const rates = this.player.getAvailablePlaybackRates();
    return Array.isArray(rates) && rates.length > 1 ? rates : null;
  }

  /**
   * Plays `rate` for `seconds`, then the room's rate again; no measuring until it settled
   * (`settleMs` after it ended). `plan` ({drift, cost}) marks a fine burst: what it was to
   * close, to learn the rate-change cost from what it did.
   */
  _startBurst(rate, seconds, roomRate, { settleMs = this.correction.burstSettleMs, plan = null } = {}) {
    this._endBurst(false);
    const now = performance.now();
    const ms = seconds * 1000;
    const fine = plan !== null && !plan.coarse;
    if (fine) this.nudges += 1;
    else this.bursts += 1;
    this.mode = fine ? PlayerMode.NUDGING : PlayerMode.BURST;
    this._recent = [];
    this._setRate(rate);
    // A timer, not the next check: the burst's length is the correction, to the millisecond.
    const timer = setTimeout(() => this._endBurst(true, roomRate), ms);
    this._burst = {
      startedAt: now, until: now + ms, settleUntil: now + ms + settleMs, settleMs, timer, ended: false, plan, rate, roomRate,
    };
  }

  /**
   * A fine burst (a player that takes any rate, `correction.fineBursts`): closes `drift` by
   * one timed rate change and back, sized for what such a pair costs this player's position
   * (`rateChangeCost`, learned: Chromium's element falls ~20 ms behind at every change of
   * rate, Firefox's none). A steady nudge would pay that cost at every start and stop and
   * flap around the room; a planned pair pays it once and is then judged.
   */
  _startFineBurst(drift, roomRate) {
    const c = this.correction;
    // Seconds of position the burst's rate must gain (negative: lose).
    this.rateChangeCost = this._rateCosts.get(roomRate) ?? 0;
    let want = this.rateChangeCost - drift;
    // The pair's cost alone closes about this drift: the shortest pair, its cost is the correction.
    if (Math.abs(want) < c.nudgeStop) want = Math.sign(want || -drift) * c.nudgeStop;
    // Faster for a larger gap (up to maxNudge), so a burst stays short.
    const fraction = Math.min(c.maxNudge, Math.max(c.fineBurstFraction, Math.abs(want) / c.fineBurstSeconds));
    const rate = roomRate * (want > 0 ? 1 + fraction : 1 - fraction);
    const seconds = Math.min(c.maxBurstSeconds, Math.abs(want) / Math.abs(rate - roomRate));
    this._startBurst(rate, seconds, roomRate, { settleMs: c.fineBurstSettleMs, plan: { drift, cost: this.rateChangeCost } });
  }

  /**
   * Whether a change of the room's rate is still on its way to the position (a player with
   * fine bursts or learned burst costs): an element takes a new rate late and may lose
   * position doing so (Chromium: ~180 ms, then 20-70 ms lost, more at higher rates; a YouTube
   * player adds its own rate latency, learned). A fine-rate player is judged once it has
   * landed by the event threshold like any change (a large loss is sought, not glided); a
   * coarse-rate one by the steady path (a burst planned on the whole loss).
   */
  _rateChanged(rate, now) {
    if (this._roomRate !== rate) {
      if (this._roomRate !== null) this._rateLandAt = now + this.correction.rateLandMs + this.rateLatency * 1000;
      this._roomRate = rate;
    }
    if (this._rateLandAt === null) return false;
    if (now < this._rateLandAt) return true;
    this._rateLandAt = null;
    // A fine-rate player's loss is sought like a change's; a coarse-rate one's is closed by a
    // burst planned on the whole loss (a seek costs a YouTube player more than the burst).
    this.eventPending = Boolean(this.correction.fineBursts);
    if (this.correction.fineBursts) this._newChange();
    return false;
  }

  /**
   * A burst with a plan settled: `measured` against what it planned teaches the cost of its
   * rate pair (a fine burst's per room rate; a coarse one's per room and listed rate).
   */
  _learnRateChangeCost(burst, measured) {
    const { plan } = burst;
    if (!plan || !burst.ended) return;
    const gained = (burst.rate - burst.roomRate) * ((burst.until - burst.startedAt) / 1000);
    const expected = plan.drift + gained - plan.cost;
    const step = this.correction.maxRateChangeCostStep;
    const cost = plan.cost - Math.min(step, Math.max(-step, (measured - expected) * this.correction.rateChangeCostGain));
    const max = this.correction.maxRateChangeCost;
    const learned = Math.min(max, Math.max(-max, cost));
    if (plan.coarse) {
      // What this burst's pair cost, kept with the pair's last few: their median is its cost (one
      // outcome on a busy machine can be off by tens of ms; one beyond `max` is not believed).
      const outcome = plan.drift + gained - measured;
      if (!plan.learn || !(Math.abs(outcome) < max)) return;
      const key = burstKey(burst.roomRate, burst.rate);
      const outcomes = this._burstOutcomes.get(key) || [];
      outcomes.push(outcome);
      if (outcomes.length > this.correction.burstCostSamples) outcomes.shift();
      this._burstOutcomes.set(key, outcomes);
      this.burstCosts.set(key, median(outcomes));
      return;
    }
    this.rateChangeCost = learned;
    this._rateCosts.set(burst.roomRate, this.rateChangeCost);
  }

  /**
   * What a coarse burst at `rate` and back is taken to cost at the room's `roomRate`: the
   * median of that pair's outcomes once it has one, else of every pair's so far (a change of
   * rate costs about the same), else `burstCostGuess`.
   */
  _burstCost(roomRate, rate) {
    const own = this._burstOutcomes.get(burstKey(roomRate, rate)) || [];
    if (own.length > 0) return median(own);
    const all = [...this._burstOutcomes.values()].flat();
    return all.length > 0 ? median(all) : this.correction.burstCostGuess;
  }

  /** Ends a burst early or on time; `restore` sets the room's rate back. */
  _endBurst(restore, roomRate) {
    if (!this._burst) return;
    clearTimeout(this._burst.timer);
    if (restore) {
      const st = this.hooks.state();
      this._setRate(st ? st.rate : roomRate);
      this._burst.ended = true;
      this._burst.until = performance.now();
      this._burst.settleUntil = this._burst.until + this._burst.settleMs;
      this._recent = [];
    } else {
      this._burst = null;
    }
  }

  _playerStateChanged(ps) {
    if (ps === PlayerState.PLAYING) this._learnSeekLatency();
    const st = this.hooks.state();
    if (!st || !itemKey(st) || this.loadedVideo !== itemKey(st)) return;
    if (this._ownRecentCall()) return;
    if (!this._userActive()) return;
    const userPlayed = ps === PlayerState.PLAYING && st.paused;
    const userPaused = ps === PlayerState.PAUSED && !st.paused;
    if (!userPlayed && !userPaused) return;
    // Seen both by the player's event and by the periodic check: act once.
    const now = performance.now();
    if (this._handled && this._handled.ps === ps && now - this._handled.at < this.correction.ownCallMs) return;
    this._handled = { ps, at: now };
    if (this.hooks.canControl()) {
      this._suspendUntil = performance.now() + this.correction.localChangeHoldMs;
      this.hooks.emit('localchange', { type: userPlayed ? 'play' : 'pause', position: this.position() });
    } else if (userPaused) {
      this.held = true;
      this.mode = PlayerMode.HOLD;
      this.hooks.emit('hold', { held: true });
    }
  }

  _playerRateChanged(rate) {
    const asked = this._rateAsked;
    if (asked && Math.abs(Number(rate) - asked.rate) < 1e-3) {
      // Our own rate, taken: how long a rate takes to reach this player (a shorter burst never would).
      this._rateAsked = null;
      const took = (performance.now() - asked.at) / 1000;
      const g = this.correction.seekLatencyGain;
      if (took >= 0 && took < this.correction.maxBurstSeconds) {
        this.rateLatency = this.rateLatency === 0 ? took : this.rateLatency * (1 - g) + took * g;
      }
    }
    const st = this.hooks.state();
    if (!st || this.appliedRate === null || Math.abs(Number(rate) - this.appliedRate) < 1e-3) return;
    // A player that rounds a nudge reports a rate near the room's: not a person's choice.
    if (Math.abs(Number(rate) / st.rate - 1) <= this.correction.maxNudge + 1e-3) return;
    if (!this._userActive() || !this.hooks.canControl()) return;
    this._suspendUntil = performance.now() + this.correction.localChangeHoldMs;
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
    this._suspendUntil = now + this.correction.localChangeHoldMs;
    this.hooks.emit('localchange', { type: 'seek', position: pos });
    return true;
  }

  _recordDrift(drift) {
    this.hooks.drift(drift);
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
    if (!st || !this.hooks.clockReady()) { this.mode = PlayerMode.WAITING; return; }
    if (now < this._suspendUntil) { this.mode = PlayerMode.WAITING; return; }
    const key = itemKey(st);
    // An item of another kind: the page is about to attach the player for it.
    if (key && !this.accepts(st)) { this.mode = PlayerMode.WAITING; return; }
    if (!key) {
      if (this.loadedVideo) {
        this._call(() => this.player.pauseVideo());
      }
      this.mode = PlayerMode.WAITING;
      this.lastDrift = null;
      return;
    }
    const target = computeRoomPosition(st, this.hooks.serverNow());
    const duration = typeof st.duration === 'number' && st.duration > 0 ? st.duration : null;
    if (this.loadedVideo !== key) {
      // A media item's URL travels as the id: the media player takes it as its source.
      const args = { videoId: key, startSeconds: target };
      // The simulated player has no media of its own: it plays for the room's duration.
      if (duration !== null && typeof this.player.setDuration === 'function') args.duration = duration;
      this._call(() => (st.paused ? this.player.cueVideoById(args) : this.player.loadVideoById(args)));
      this.hooks.quiet();
      this.loadedVideo = key;
      this._endBurst(false);
      this._seekStartedAt = null;
      this.appliedRate = null;
      this.canNudge = !this.listedRatesOnly;
      this._nudgeCheck = null;
      this.nudging = false;
      this.eventPending = true;
      this._expectJumpUntil = now + this.correction.loadSettleMs;
      this._loadedUntil = now + this.correction.loadSettleMs;
      this._lastSample = null;
      this._playRequestedAt = st.paused ? null : now;
      this._newChange();
      // Loaded to play: its first "playing" is the start-up judged below. (A cued item
      // starts at a scheduled start, primed: judged by the steady thresholds.)
      this._startingUp = !st.paused;
      this.mode = PlayerMode.LOADING;
      return;
    }

    if (duration !== null && typeof this.player.setDuration === 'function'
        && Math.abs(Number(this.player.getDuration()) - duration) > 1e-3) {
      this.player.setDuration(duration);
    }

    const ps = Number(this.player.getPlayerState());
    // The player's state may change before its event is delivered (events travel by
    // message): a person's play or pause must not be undone by this check first.
    if (this._seenState !== undefined && ps !== this._seenState) this._playerStateChanged(ps);
    this._seenState = ps;
    if (now < this._suspendUntil) { this.mode = PlayerMode.WAITING; return; }
    if (this._detectJump(ps)) { this.mode = PlayerMode.WAITING; return; }
    if (this.held) { this.mode = PlayerMode.HOLD; return; }

    // Started early for a pending start (its moment has not quite come): let it run.
    if (st.paused && typeof st.starts_at === 'number' && now < this._earlyStartUntil) {
      this.mode = PlayerMode.STARTING;
      return;
    }
    if (st.paused) {
      this._playRequestedAt = null;
      this._startingUp = false; // paused before it played: a later start is a start, not a load
      this.nudging = false;
      this._endBurst(false);
      this._setRate(st.rate);
      if (ps === PlayerState.PLAYING || ps === PlayerState.BUFFERING) {
        this._call(() => this.player.pauseVideo());
      }
      const drift = this.position() - target;
      const fresh = afterEvent || this.eventPending;
      const d = decideCorrection({ drift, paused: true, rate: st.rate, afterEvent: fresh }, this.correction);
      // A seek that follows a deliberate change is not drift (see below).
      if (fresh && d.action === 'seek') this.hooks.quiet();
      else this._recordDrift(drift);
      // One precise attempt per change; later checks only catch large slips.
      this.eventPending = false;
      if (d.action === 'seek') {
        this._seek(target);
        this._seekStartedAt = null; // a paused seek's time to play again is the room's, not the player's
        // seekTo() from a cued or unstarted player starts playback: stop it again.
        if (ps !== PlayerState.PAUSED) this._call(() => this.player.pauseVideo());
      } else {
        this.mode = PlayerMode.IN_SYNC;
      }
      return;
    }

    // The room is playing.
    // Never fight the buffer: no correction while the player buffers (a seek or a rate
    // change would only restart it); once it plays again, judge afresh from new readings.
    if (ps === PlayerState.BUFFERING) {
      this.mode = PlayerMode.BUFFERING;
      this._wasBuffering = true;
      this._recent = [];
      return;
    }
    if (ps !== PlayerState.PLAYING) {
      if (ps === PlayerState.ENDED && target >= (st.duration ?? Infinity) - 0.5) {
        this.mode = PlayerMode.WAITING;
        return;
      }
      // A player that will not start: the browser wants a gesture first (quickly
      // known when the page never had one; a player that stays stopped says it too).
      const activated = Boolean(globalThis.navigator && navigator.userActivation && navigator.userActivation.hasBeenActive);
      if (this._playRequestedAt !== null && now - this._playRequestedAt > (activated ? this.correction.autoplayBlockedActivatedMs : this.correction.autoplayBlockedMs)) {
        this.mode = PlayerMode.BLOCKED;
        this.hooks.emit('autoplayblocked', {});
        this._playRequestedAt = now + this.correction.autoplayRetryMs; // ask again later, not every tick
        return;
      }
      // Give a play call a moment to take before repeating it (a real player
      // reports its new state by message, and a repeated seek restarts buffering).
      if (now - this._lastPlayCallAt < this.correction.playRetryMs) { this.mode = PlayerMode.STARTING; return; }
      // Starting is the cheapest moment to land exactly: seek unless already close.
      const drift = this.position() - target;
      const d = decideCorrection({ drift, paused: false, rate: st.rate, starting: true }, this.correction);
      if (d.action === 'seek') this._seek(target + this._seekAhead(st.rate, target));
      this._setRate(st.rate);
      this._call(() => this.player.playVideo());
      this._lastPlayCallAt = now;
      if (this._playRequestedAt === null) this._playRequestedAt = now;
      this.mode = PlayerMode.STARTING;
      this.eventPending = true;
      return;
    }
    this._playRequestedAt = null;
    if (this._wasBuffering) {
      this._wasBuffering = false;
      this._learnSeekLatency();
      // The first play after a load: land precisely now (the event threshold), as on a
      // change. A stall later in steady play is only drift: glided away unless large.
      if (now < this._loadedUntil) this.eventPending = true;
    }
    if (this._startingUp) {
      // The first "playing" of an item loaded to play, however long the load took: judged
      // by the event threshold once the player really moves (a player says "playing" a
      // moment before its decoder and output run; judged now, that start-up would pass
      // for drift).
      this._startingUp = false;
      this.eventPending = true;
      this._seekLandedAt = now;
    }
    // A burst closes the drift by itself: measuring mid-burst (or before the rate
    // change back has landed) would see a drift still being closed and oscillate.
    let settledBurst = null;
    // A burst planned for another room rate is over (the room's new rate at once, and nothing
    // learned from it): the new rate is what counts now.
    if (this._burst && this._burst.roomRate !== st.rate) {
      this._endBurst(true, st.rate);
      this._burst = null;
    }
    if (this._burst) {
      // The timer ends it on time; a check that finds it overdue (a throttled timer) ends it too.
      if (!this._burst.ended && now >= this._burst.until) this._endBurst(true, st.rate);
      if (now < this._burst.settleUntil) { this.mode = this._burst.plan && !this._burst.plan.coarse ? PlayerMode.NUDGING : PlayerMode.BURST; return; }
      settledBurst = this._burst;
      this._burst = null;
    }

    const stillLanding = this._stillLanding(now, st.rate); // with coarseBurstCosts, reads at every check in play
    if (now - this._seekLandedAt < this.correction.seekLandMs || stillLanding) {
      this.mode = PlayerMode.SEEKING;
      return;
    }
    let followUpAhead = null; // where this check's seek aims, if it is the follow-up
    let followingUp = false;
    if (this._followUpPending
        && (this._seekStartedAt === null || now - this._lastSeekAt >= this.correction.seekCheckMs)) {
      // The change's seek has landed (the player played again, or it never stopped and a
      // while has passed): its leftover is judged like the change itself, and tells how
      // far that seek should have aimed: a follow-up aims there (one landing is all a late
      // joiner has; the learned latencies refine later seeks).
      this._followUpPending = false;
      this.eventPending = true;
      followingUp = true;
      const landed = this.position() - target;
      // A player that reloaded its source to land the seek (a media element whose seek
      // stalled) landed by its load, not by the seek's aim: nothing to learn from where.
      if (this._lastSeekAhead !== null && Math.abs(landed) < this.correction.maxSeekLead
          && this._reloads() === this._reloadsAtSeek) {
        followUpAhead = this._followUpAim(this._lastSeekAhead - landed, st.rate, target);
      }
    }

    if ((this.correction.fineBursts || this.correction.coarseBurstCosts) && this._rateChanged(st.rate, now)) {
      // The room's new rate goes to the element at once (a burst in flight has ended above);
      // only the judging waits until it has landed.
      if (!this._burst) this._setRate(st.rate);
      this.mode = PlayerMode.NUDGING;
      return;
    }
    const measured = this.position() - target;
    if (settledBurst && !afterEvent) this._learnRateChangeCost(settledBurst, measured);
    const fresh = afterEvent || this.eventPending;
    // Decide on the median of the last three readings: a real player's position
    // arrives by message and jitters; one odd reading should not start a nudge.
    this._recent.push(measured);
    if (this._recent.length > 3) this._recent.shift();
    const drift = afterEvent || this.eventPending ? measured : median(this._recent);
    if (this._seekCheck && now >= this._seekCheck.at) {
      // Learn how late a seek lands (a real player buffers after seeking), from a seek that
      // landed by itself: a player that reloaded its source landed where its load did, and
      // after a burst the drift is that burst's outcome, not the seek's.
      const late = -drift;
      const max = this.correction.maxSeekLead;
      const own = this._reloads() === this._seekCheck.reloads && this.nudges + this.bursts === this._seekCheck.bursts;
      if (own && Math.abs(late) < max) this.seekLead = Math.min(max, Math.max(0, this.seekLead + late * 0.5));
      this._seekCheck = null;
    }
    if (this._nudgeCheck && now >= this._nudgeCheck.at) {
      // Did the player take the nudged rate? YouTube may round it to its menu's steps.
      if (this.nudging && Math.abs(Number(this.player.getPlaybackRate()) - this.appliedRate) > 0.004) {
        // It rounded the nudge: from now on a coarse-rate player (bursts) or a seek-only one.
        this.canNudge = false;
        this.nudging = false;
      }
      this._nudgeCheck = null;
    }
    const sinceSeek = now - this._lastSeekAt;
    const rates = this.canNudge ? null : this._listedRates();
    if (rates && !(fresh && Math.abs(drift) > this.correction.eventSeekThreshold)) {
      // A coarse-rate player in steady play: a burst at a listed rate, or a seek.
      this.eventPending = false;
      this._recordDrift(measured);
      // A player whose bursts are sized for what their rate pair costs it (learned).
      const learn = Boolean(this.correction.coarseBurstCosts);
      const cost = (r) => this._burstCost(st.rate, r);
      const c = decideCoarseCorrection({
        drift, rate: st.rate, rates, seekLatency: this.seekLatency, cost: learn ? cost : undefined,
        minBurst: learn ? Math.max(this.correction.minBurstSeconds, this.rateLatency * this.correction.minBurstLatencies) : 0,
      }, this.correction);
      if (c.action === 'burst') {
        // An item's first seconds teach nothing (its output is still starting: outcomes off by 50 ms and more).
        const plan = { drift, cost: cost(c.rate), coarse: true, learn: now >= this._loadedUntil };
        this._startBurst(c.rate, c.seconds, st.rate, learn ? { plan } : {});
      } else if (c.action === 'seek' && sinceSeek > this.correction.seekSettleMs) {
        this._setRate(st.rate);
        this._seek(target + this._seekAhead(st.rate, target));
        this._seekCheck = this._newSeekCheck(now);
      } else {
        this.mode = c.action === 'seek' ? PlayerMode.SEEKING : PlayerMode.IN_SYNC;
        this._setRate(st.rate);
      }
      return;
    }
    const d = decideCorrection({
      drift, paused: false, rate: st.rate, nudging: this.nudging, canNudge: this.canNudge,
      afterEvent: afterEvent || this.eventPending,
    }, this.correction);
    this.eventPending = false;
    // A seek right after the room changed (someone sought, loaded, played) follows a
    // deliberate jump: the distance is not drift, and the health figures leave it out.
    if (fresh && d.action === 'seek') this.hooks.quiet();
    else this._recordDrift(measured);
    // A seek soon after another waits for it to settle, except a change's own first seek
    // (judged fresh) and its one follow-up: at most two per change.
    const mayReseek = afterEvent || followingUp || (fresh && !this._followUpUsed);
    if (d.action === 'seek' && (mayReseek || sinceSeek > this.correction.seekSettleMs)) {
      this.nudging = false;
      this._setRate(st.rate);
      this._lastSeekAhead = followUpAhead ?? this._seekAhead(st.rate, target);
      this._seek(target + this._lastSeekAhead);
      this._seekCheck = this._newSeekCheck(now);
      // The first seek after a change aims by a latency guessed before any was measured:
      // once it has landed (and the player measured it), the next reading is judged by
      // the event threshold once more, so a wide landing is sought again, not glided
      // for seconds. Once per change: a second miss is only drift.
      if (fresh && !this._followUpUsed) {
        this._followUpUsed = true;
        this._followUpPending = true;
      }
    } else if (d.action === 'nudge' && this.correction.fineBursts) {
      this.nudging = false;
      this._startFineBurst(drift, st.rate);
    } else if (d.action === 'nudge') {
      if (!this.nudging) this.nudges += 1;
      this.nudging = true;
      this.mode = PlayerMode.NUDGING;
      this._setRate(d.rate);
      if (!this._nudgeCheck) this._nudgeCheck = { at: now + this.correction.nudgeCheckMs };
    } else {
      this.nudging = false;
      this.mode = d.action === 'seek' ? PlayerMode.SEEKING : PlayerMode.IN_SYNC;
      this._setRate(st.rate);
    }
  }
}


/** The key of a coarse burst's learned cost: the room's rate and the burst's. */
function burstKey(roomRate, rate) {
  return `${roomRate}>${rate}`;
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}
