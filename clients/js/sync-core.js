/**
 * sync-core.js — the pure arithmetic of staying in sync, with no DOM and no I/O.
 *
 * Everything here is a plain function of its arguments so it can be unit-tested
 * in node (`node --test tests/js/`) and reused by any client:
 *
 * - {@link roomPosition}: where a room's playback is at a given server time
 *   (the formula of the API contract, clamped to `[0, duration]`).
 * - {@link effectiveState}: a state with a pending start (`starts_at`) as it is
 *   at a given server time: paused until the moment, playing from it after.
 * - {@link estimateOffset}: an NTP-style clock offset from `/api/time` samples,
 *   trusting the sample with the lowest round trip.
 * - {@link decideCorrection}: what a player should do about a measured drift:
 *   nothing, nudge its playback rate a little, or seek.
 * - {@link parseYouTube}: a YouTube video id (and start time) from the link
 *   forms people paste.
 *
 * Units: positions and drifts are seconds (the YouTube IFrame API's unit);
 * clock times and offsets are milliseconds.
 *
 * @module sync-core
 */

import { MIN_RATE, MAX_RATE } from './limits.js';

/** The playback rates the API accepts (`rate` command), from the server's limits. */
export { MIN_RATE, MAX_RATE };

/**
 * Default drift-correction thresholds. Every one can be overridden by
 * passing an object with the same keys to {@link decideCorrection}
 * (and to `SyncRoom` in room.js, as `options.correction`). The first
 * group are drift thresholds in seconds, the second the corrector's timings.
 */
export const DEFAULT_CORRECTION = Object.freeze({
  /** Seconds of drift (either way) above which a playing player starts nudging its rate. */
  nudgeStart: 0.02,
  /** Seconds of drift below which a nudge in progress stops (hysteresis, so it does not flap). */
  nudgeStop: 0.005,
  /** Seconds of drift above which nudging would take too long: seek instead. */
  seekThreshold: 1.0,
  /**
   * Seconds of drift above which a player seeks right after a discrete change
   * (play, pause, seek, load: a `state` event). A person who pressed "seek"
   * expects everyone to land at once, not to glide there over several seconds.
   */
  eventSeekThreshold: 0.1,
  /** Seconds of drift tolerated right after the room paused or moved while paused (seeking a paused player is free). */
  pausedTolerance: 0.01,
  /**
   * Seconds of drift tolerated on the periodic checks of a paused player: looser, so a
   * player that reports frame-aligned positions is not sought again and again.
   */
  pausedResync: 0.25,
  /** Seconds of drift tolerated when a stopped player starts playing: seek first beyond it. */
  startTolerance: 0.01,
  /** Largest rate change, as a fraction of the room's rate (0.08 = ±8 %). */
  maxNudge: 0.08,
  /** Smallest rate change used while nudging, so a player that rounds rates still moves. */
  minNudge: 0.02,
  /** Fraction of rate change per second of drift (1: 0.05 s of drift → 5 %). */
  nudgeGain: 1.0,
  /**
   * Seconds of drift above which a player that cannot change its rate finely
   * (it ignored or rounded a nudge) seeks; below it, such a player is left alone.
   */
  seekThresholdWithoutNudge: 0.25,

  // Timings of PlayerSync (player-sync.js), in milliseconds unless named otherwise.

  /** Between two checks of the player against the room. */
  checkIntervalMs: 200,
  /** After our own seek: a jump of the position is expected, not a person's seek; also the least time between two steady-state seeks. */
  seekSettleMs: 1500,
  /** After loading a video: its position may jump while it starts. */
  loadSettleMs: 3000,
  /** After our own play/pause/seek call: a player's state change is ours, not a person's. */
  ownCallMs: 1000,
  /** After a person's own play/pause/seek/rate (a controller): leave the player alone while the command travels. */
  localChangeHoldMs: 2000,
  /** A play call that has not taken after this long, on a page never clicked, means autoplay is blocked. */
  autoplayBlockedMs: 1500,
  /** The same, on a page that had a click (a real player may just be slow to start). */
  autoplayBlockedActivatedMs: 4000,
  /** After reporting a blocked autoplay: wait this long before asking again. */
  autoplayRetryMs: 3000,
  /** Between two play calls on a player that has not started yet (a repeated seek restarts buffering). */
  playRetryMs: 1000,
  /** After a catch-up seek: when to measure how late it landed (to learn `seekLead`). */
  seekCheckMs: 1000,
  /** After starting a nudge: when to check the player took the rate (YouTube may round it). */
  nudgeCheckMs: 400,
  /** Seconds: the most a seek may aim ahead of the room, to make up for a player's buffering. */
  maxSeekLead: 2,
  /** Seconds: the most a scheduled start calls play() early, to make up for a player's start latency. */
  maxStartLead: 0.5,
  /** After a scheduled start's play call (plus the lead): when to measure how late the player got going (ms). */
  startMeasureMs: 600,
  /**
   * A scheduled start's timer is set this much before the play call is due, and the last
   * stretch is waited out on the clock: a browser timer fires up to ~10 ms late, and that
   * lateness would be start skew (ms; one short wait per start).
   */
  startSpinMs: 15,

  // Coarse-rate players (YouTube: only the rates getAvailablePlaybackRates() lists, 0.25 apart).
  // A nudge of a few per cent does nothing there; a drift is closed by a short burst at the
  // neighbouring listed rate, or by a seek, whichever disturbs less (decideCoarseCorrection).

  /** Seconds of drift a coarse-rate player leaves alone (a burst shorter than this is mostly rate-switch latency). */
  coarseTolerance: 0.02,
  /** Seconds: the longest burst at a neighbouring rate; a longer one would be heard (or seen) as a speed change: seek. */
  maxBurstSeconds: 4,
  /**
   * How much one second of burst disturbs, in seconds of a seek's gap: playing 25 % fast
   * for a second (pitch kept) is far less noticeable than a quarter-second skip.
   */
  burstCostPerSecond: 0.15,
  /** Seconds of disturbance a seek adds to its own latency: the audible skip and the restart. */
  seekCost: 0.3,
  /** After a burst ended (back at the room's rate): let the rate change land before measuring again (ms). */
  burstSettleMs: 800,
  /**
   * Size each burst for what its rate pair costs the player's position, learned per room and
   * listed rate from each burst's outcome (a real YouTube player over Chromium's media stack
   * loses position at a change of rate, as the element does); off: a burst is |drift| / step.
   */
  coarseBurstCosts: false,
  /**
   * Seconds: with `coarseBurstCosts`, the shortest burst made, and at least this many times the
   * player's learned rate latency (a rate taken back sooner may never reach the position).
   */
  minBurstSeconds: 0,
  minBurstLatencies: 1.5,
  /** With `coarseBurstCosts`: the outcomes of one rate pair its learned cost is the median of. */
  burstCostSamples: 5,
  /** With `coarseBurstCosts`: seconds a burst's rate pair is taken to cost before any was learned. */
  burstCostGuess: 0,
  /**
   * After a seek reports playing again: no measuring for this long (ms). A player says
   * "playing" a moment before its position really moves (decoder and audio output
   * restarting); a burst decided on that stale reading would be wasted.
   */
  seekLandMs: 300,
  /** With `coarseBurstCosts`: the longest wait, after a seek or start, for the position to move before judging it (ms). */
  maxLandMs: 1500,

  // Fine bursts (a player that takes any rate, with `fineBursts` set: a media element).

  /** Correct a small drift by one timed rate change and back, sized for its learned cost, instead of a steady nudge. */
  fineBursts: false,
  /** A fine burst plays at least this fraction faster or slower than the room ... */
  fineBurstFraction: 0.05,
  /** ... and more (up to `maxNudge`) for a gap that would take it longer than this many seconds. */
  fineBurstSeconds: 0.4,
  /**
   * After a fine burst's rate change back: no measuring for this long (ms). Chromium's element
   * takes a new rate ~180 ms after it is set; judged sooner, the burst is not over yet.
   */
  fineBurstSettleMs: 450,
  /** Weight of one fine burst's miss in the learned rate-change cost (0..1). */
  rateChangeCostGain: 0.6,
  /** Seconds: the most a rate change and back is taken to cost (either way). */
  maxRateChangeCost: 0.1,
  /**
   * Seconds: the most one fine burst's miss moves that cost. A miss is mostly the cost, but
   * an element that stalls for a moment mid-burst (a loaded machine: 100-200 ms) misses by
   * the stall, and taken whole it misaimed the next bursts by as much.
   */
  maxRateChangeCostStep: 0.015,
  /** After the room's rate changed: when to judge the player afresh, the new rate having reached its position (ms). */
  rateLandMs: 400,
  /** Weight of a new seek-latency sample in the learned average (0..1). */
  seekLatencyGain: 0.5,
  /** Seconds: the largest seek latency believed (a longer one was a stall, not a seek). */
  maxSeekLatency: 3,
});

/**
 * The state as it is at server time `serverNowMs`. A pending start (`starts_at`,
 * server Unix ms) is `paused` at `position` until then; once the moment has come
 * the room plays from `position` since `starts_at`, exactly what the server's
 * `state` event (cause `start`) will say, so a client need not wait for it.
 *
 * @param {{paused:boolean, starts_at?:number|null}} state a room `state` object
 * @param {number} serverNowMs
 * @returns the same object when no start is pending or it is still to come
 */
export function effectiveState(state, serverNowMs) {
  if (!state || typeof state.starts_at !== 'number' || serverNowMs < state.starts_at) return state;
  return { ...state, paused: false, updated_at: state.starts_at, starts_at: null, ready_gate: null };
}

/**
 * The room's playback position at server time `serverNowMs`, exactly as the API
 * contract defines it:
 * `paused ? position : position + (server_now - updated_at) / 1000 * rate`,
 * clamped to `[0, duration]` when `duration` is known.
 *
 * @param {{position:number, paused:boolean, rate:number, updated_at:number, duration?:number|null}} state
 *        a room `state` object as sent by the server
 * @param {number} serverNowMs the current server time in milliseconds
 * @returns {number} seconds (0 when `state` is missing)
 */
export function roomPosition(state, serverNowMs) {
  if (!state) return 0;
  state = effectiveState(state, serverNowMs);
  const base = Number(state.position) || 0;
  let pos = base;
  if (!state.paused) {
    const rate = Number.isFinite(state.rate) ? state.rate : 1;
    pos = base + ((serverNowMs - state.updated_at) / 1000) * rate;
  }
  if (pos < 0) pos = 0;
  const duration = state.duration;
  if (typeof duration === 'number' && Number.isFinite(duration) && duration >= 0 && pos > duration) {
    pos = duration;
  }
  return pos;
}

/**
 * One clock sample: the local time a `/api/time` request was sent (`sentAt`),
 * the `server_time` it answered, and the local time the answer arrived
 * (`receivedAt`). All milliseconds; `sentAt`/`receivedAt` from one local clock.
 *
 * @typedef {{sentAt:number, serverTime:number, receivedAt:number}} ClockSample
 */

/**
 * The offset and round trip of one sample, NTP style: the server read its clock
 * half-way through the round trip (the symmetric-path assumption), so
 * `offset = serverTime - (sentAt + receivedAt) / 2`; `server ≈ local + offset`.
 *
 * @param {ClockSample} sample
 * @returns {{offset:number, rtt:number}} milliseconds
 */
export function sampleOffset(sample) {
  const rtt = sample.receivedAt - sample.sentAt;
  return { offset: sample.serverTime - (sample.sentAt + sample.receivedAt) / 2, rtt };
}

/**
 * The clock offset estimate from several samples: the one with the lowest round
 * trip wins, because queueing delays only ever add time, so the fastest answer is
 * the one whose midpoint assumption is most nearly true. Its error is at most
 * `rtt / 2` (reported as `error`). Samples with a negative or non-finite round
 * trip are ignored.
 *
 * @param {ClockSample[]} samples
 * @returns {{offset:number, rtt:number, error:number, samples:number}|null}
 *          milliseconds; `null` with no usable sample
 */
export function estimateOffset(samples) {
  let best = null;
  let used = 0;
  for (const s of samples || []) {
    if (!s) continue;
    const { offset, rtt } = sampleOffset(s);
    if (!Number.isFinite(offset) || !Number.isFinite(rtt) || rtt < 0) continue;
    used += 1;
    if (best === null || rtt < best.rtt) best = { offset, rtt };
  }
  if (best === null) return null;
  return { offset: best.offset, rtt: best.rtt, error: best.rtt / 2, samples: used };
}

/**
 * What a player should do about its drift from the room.
 *
 * @param {object} input
 * @param {number} input.drift seconds, the player's position minus the room's
 *        (positive: the player is ahead)
 * @param {boolean} input.paused whether the room is paused
 * @param {number} [input.rate=1] the room's playback rate
 * @param {boolean} [input.nudging=false] whether a rate nudge is in progress
 *        (for the hysteresis between `nudgeStart` and `nudgeStop`)
 * @param {boolean} [input.afterEvent=false] true right after a discrete change
 *        of the room (a `state` event): uses `eventSeekThreshold` (playing) or
 *        `pausedTolerance` (paused) instead of `seekThreshold` / `pausedResync`
 * @param {boolean} [input.starting=false] true when the player is stopped and about
 *        to start playing: seek beyond `startTolerance`, never nudge
 * @param {boolean} [input.canNudge=true] false for a player that does not take
 *        fine playback rates: it seeks beyond `seekThresholdWithoutNudge` instead
 * @param {Partial<typeof DEFAULT_CORRECTION>} [options] thresholds
 * @returns {{action:'none'|'nudge'|'seek', rate:number}} `rate` is the playback
 *          rate to set: the room's rate, or the nudged one
 */
export function decideCorrection(input, options = {}) {
  const o = { ...DEFAULT_CORRECTION, ...options };
  const rate = clampRate(Number.isFinite(input.rate) ? input.rate : 1);
  const drift = Number(input.drift);
  if (!Number.isFinite(drift)) return { action: 'none', rate };
  const size = Math.abs(drift);

  if (input.paused) {
    const tolerance = input.afterEvent ? o.pausedTolerance : Math.max(o.pausedTolerance, o.pausedResync);
    return { action: size > tolerance ? 'seek' : 'none', rate };
  }
  if (input.starting) {
    return { action: size > o.startTolerance ? 'seek' : 'none', rate };
  }
  const canNudge = input.canNudge !== false;
  const steadySeekAt = canNudge ? o.seekThreshold : Math.min(o.seekThreshold, o.seekThresholdWithoutNudge);
  const seekAt = input.afterEvent ? Math.min(o.eventSeekThreshold, steadySeekAt) : steadySeekAt;
  if (size > seekAt) return { action: 'seek', rate };
  if (!canNudge) return { action: 'none', rate };

  const threshold = input.nudging ? o.nudgeStop : o.nudgeStart;
  if (size <= threshold) return { action: 'none', rate };

  const fraction = Math.min(o.maxNudge, Math.max(o.minNudge, size * o.nudgeGain));
  // Ahead (drift > 0): slow down; behind: speed up.
  const nudged = clampRate(rate * (drift > 0 ? 1 - fraction : 1 + fraction));
  if (nudged === rate) {
    // At the edge of the allowed rates a nudge cannot move the player: seek.
    return { action: 'seek', rate };
  }
  return { action: 'nudge', rate: nudged };
}

/**
 * What a player that only plays a few listed rates (YouTube: 0.25 steps) should do about a
 * measured drift while the room plays: nothing, a burst at the neighbouring listed rate for
 * `|drift| / |burstRate - roomRate|` seconds (then back to the room's rate), or a seek aimed
 * ahead by the player's seek latency. The burst is chosen when it is no longer than
 * `maxBurstSeconds` and disturbs less than a seek: a burst costs `burstCostPerSecond` per
 * second, a seek `seekCost` plus its latency.
 *
 * The caller must not measure again before the burst has ended and `burstSettleMs` passed:
 * a drift read mid-burst is still being closed, and acting on it would oscillate.
 *
 * @param {object} input
 * @param {number} input.drift seconds, player minus room (positive: ahead)
 * @param {number} [input.rate=1] the room's rate
 * @param {number[]} input.rates the player's listed rates
 * @param {number} [input.seekLatency=0] seconds a seek takes to land and play again
 * @param {(rate:number) => number} [input.cost] seconds of position a burst at `rate` and the
 *        change back cost the player beyond what the rates explain (learned; positive: it ends
 *        further behind). The burst is sized so the drift ends at 0 with that cost, so on a
 *        player whose rate changes cost position a short burst the other way may be what closes
 *        a small drift (the pair's cost does the rest).
 * @param {number} [input.minBurst=0] seconds: a burst that would be shorter does not reach the
 *        player's position (its rate takes longer to apply): nothing instead
 * @param {Partial<typeof DEFAULT_CORRECTION>} [options]
 * @returns {{action:'none'|'burst'|'seek', rate:number, seconds:number}} `rate`: the rate to
 *          play at (the burst's, or the room's); `seconds`: how long the burst lasts (0 otherwise)
 */
export function decideCoarseCorrection(input, options = {}) {
  const o = { ...DEFAULT_CORRECTION, ...options };
  const rate = clampRate(Number.isFinite(input.rate) ? input.rate : 1);
  const drift = Number(input.drift);
  const none = { action: 'none', rate, seconds: 0 };
  if (!Number.isFinite(drift)) return none;
  const size = Math.abs(drift);
  if (size <= o.coarseTolerance) return none;
  const latency = Math.max(0, Number(input.seekLatency) || 0);
  const seek = { action: 'seek', rate, seconds: 0 };
  if (size > o.seekThreshold) return seek;
  const listed = (Array.isArray(input.rates) ? input.rates : [])
    .map(Number).filter((r) => Number.isFinite(r) && r >= MIN_RATE && r <= MAX_RATE);
  const cost = (r) => {
    const c = typeof input.cost === 'function' ? Number(input.cost(r)) : 0;
    return Number.isFinite(c) ? c : 0;
  };
  // Ahead: the next listed rate below the room's; behind: the next one above.
  const up = Math.min(...listed.filter((r) => r > rate + 1e-6), Infinity);
  const down = Math.max(...listed.filter((r) => r < rate - 1e-6), -Infinity);
  if (!Number.isFinite(drift > 0 ? down : up)) return seek;
  // Each neighbour rate played long enough to end the drift (with its pair's cost) at 0, or,
  // when that would be shorter than `minBurst`, for `minBurst`: the one that ends nearest 0, if
  // it leaves clearly less than it found (a lead inside a pair's cost may be one no burst
  // closes: two bursts to either side of the room would chase their own noise).
  const minBurst = Math.max(0, Number(input.minBurst) || 0);
  let plan = null;
  for (const r of [up, down].filter(Number.isFinite)) {
    const exact = (cost(r) - drift) / (r - rate);
    const seconds = exact >= minBurst ? exact : minBurst;
    const left = drift + (r - rate) * seconds - cost(r);
    const fits = Math.abs(left) < size - o.coarseTolerance / 2;
    if (seconds > 0 && fits && (plan === null || Math.abs(left) < Math.abs(plan.left))) plan = { rate: r, seconds, left };
  }
  if (plan === null) return none;
  const burstCost = plan.seconds * o.burstCostPerSecond;
  const seekCost = o.seekCost + latency;
  if (plan.seconds <= o.maxBurstSeconds && burstCost <= seekCost) return { action: 'burst', rate: plan.rate, seconds: plan.seconds };
  return seek;
}

/** Clamps a playback rate into the API's `[0.25, 2.0]`. */
export function clampRate(rate) {
  return Math.min(MAX_RATE, Math.max(MIN_RATE, rate));
}

const VIDEO_ID = /^[A-Za-z0-9_-]{11}$/;

/** Whether `id` is a syntactically valid YouTube video id (11 characters of `[A-Za-z0-9_-]`). */
export function isVideoId(id) {
  return typeof id === 'string' && VIDEO_ID.test(id);
}

/**
 * Parses a YouTube time like `90`, `90s`, `1m30s`, `1h2m3s` or `1:30` into seconds.
 * @param {string|null} text
 * @returns {number|null}
 */
export function parseTimestamp(text) {
  if (text == null) return null;
  const t = String(text).trim();
  if (t === '') return null;
  if (/^\d+(\.\d+)?s?$/.test(t)) return parseFloat(t);
  const hms = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?$/.exec(t);
  if (hms && (hms[1] || hms[2] || hms[3])) {
    return (Number(hms[1] || 0) * 3600) + (Number(hms[2] || 0) * 60) + Number(hms[3] || 0);
  }
  const colon = /^(?:(\d+):)?(\d{1,2}):(\d{1,2})$/.exec(t);
  if (colon) return Number(colon[1] || 0) * 3600 + Number(colon[2]) * 60 + Number(colon[3]);
  return null;
}

const YOUTUBE_HOSTS = new Set([
  'youtube.com', 'www.youtube.com', 'm.youtube.com', 'music.youtube.com',
  'gaming.youtube.com', 'youtube-nocookie.com', 'www.youtube-nocookie.com',
]);

/**
 * Extracts a video id (and an optional start time in seconds) from what a person
 * pastes: a raw 11-character id, or a link of the forms
 * `youtube.com/watch?v=ID`, `youtu.be/ID`, `youtube.com/embed/ID`,
 * `youtube.com/shorts/ID`, `youtube.com/live/ID`, `youtube.com/v/ID`,
 * `music.youtube.com/watch?v=ID`, `m.youtube.com/...`, `youtube-nocookie.com/embed/ID`,
 * with or without the scheme, with `t=`/`start=` honoured.
 *
 * @param {string} input
 * @returns {{videoId:string, start:number|null}|null} `null` when no id is found
 */
export function parseYouTube(input) {
  if (typeof input !== 'string') return null;
  const text = input.trim();
  if (isVideoId(text)) return { videoId: text, start: null };
  let url;
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `https://${text}`);
  } catch {
    return null;
  }
  const host = url.hostname.toLowerCase();
  const parts = url.pathname.split('/').filter(Boolean);
  let id = null;
  if (host === 'youtu.be' || host === 'www.youtu.be') {
    id = parts[0] || null;
  } else if (YOUTUBE_HOSTS.has(host)) {
    if (parts[0] === 'watch' || parts.length === 0) {
      id = url.searchParams.get('v');
    } else if (['embed', 'shorts', 'live', 'v', 'e'].includes(parts[0])) {
      id = parts[1] || null;
    } else if (parts[0] === 'attribution_link') {
      const inner = url.searchParams.get('u');
      if (inner) return parseYouTube(`https://www.youtube.com${inner}`);
    }
  } else {
    return null;
  }
  if (!isVideoId(id)) return null;
  // `t` can also hide in the fragment (`#t=1m30s`).
  const hash = new URLSearchParams(url.hash.replace(/^#/, ''));
  const start = parseTimestamp(url.searchParams.get('t') ?? url.searchParams.get('start') ?? hash.get('t'));
  return { videoId: id, start };
}

/**
 * Formats seconds as `m:ss` or `h:mm:ss` for people.
 * @param {number} seconds
 */
export function formatTime(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) seconds = 0;
  const s = Math.floor(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/**
 * The nearest-rank percentile `p` (0..100) of `values`: the smallest value with at
 * least `p` % of the values at or below it (the server summarizes the same way).
 * @param {number[]} values
 * @param {number} p
 * @returns {number|null} `null` for no values
 */
export function percentile(values, p) {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (sorted.length === 0) return null;
  const rank = Math.max(1, Math.ceil((sorted.length * p) / 100));
  return sorted[Math.min(rank, sorted.length) - 1];
}

/** Defaults of {@link DriftWindow}, in milliseconds. */
export const DRIFT_WINDOW = Object.freeze({
  /** How much drift history the page keeps (its chart shows this much). */
  keepMs: 60_000,
  /**
   * After a deliberate change — the room's own play/pause/seek/rate/load/next, the
   * snapshot a page joins (or resyncs) with, an item loading, the seek that follows
   * any of those — drift readings are left out for this long: the distance then is
   * the change landing, not the player drifting.
   */
  quietMs: 2_000,
  /** Most readings kept (a check every 200 ms makes 300 a minute). */
  maxSamples: 600,
});

/**
 * A page's own drift readings: the last minute for its chart, and the readings
 * since the last report for the next one (p50/p95 of `|drift|`). Pure: the caller
 * passes the time (`performance.now()` in a page).
 */
export class DriftWindow {
  /** @param {Partial<typeof DRIFT_WINDOW>} [options] */
  constructor(options = {}) {
    this.options = { ...DRIFT_WINDOW, ...options };
    /** @type {{at:number, ms:number}[]} signed drift in ms (player − room) at local time `at` */
    this.samples = [];
    this.pending = [];
    this.quietUntil = -Infinity;
  }

  /** A deliberate change at `now`: readings until `now + quietMs` are left out. */
  quiet(now) {
    this.quietUntil = Math.max(this.quietUntil, now + this.options.quietMs);
  }

  /** Whether readings are being left out at `now`. */
  isQuiet(now) { return now < this.quietUntil; }

  /**
   * One reading: `driftSeconds` (player − room) at `now`. Answers whether it counts.
   * @param {number} now ms
   * @param {number} driftSeconds
   */
  add(now, driftSeconds) {
    const ms = Number(driftSeconds) * 1000;
    if (!Number.isFinite(ms) || this.isQuiet(now)) return false;
    this.samples.push({ at: now, ms });
    const { keepMs, maxSamples } = this.options;
    while (this.samples.length > maxSamples || (this.samples.length && this.samples[0].at < now - keepMs)) {
      this.samples.shift();
    }
    this.pending.push(Math.abs(ms));
    if (this.pending.length > maxSamples) this.pending.shift();
    return true;
  }

  /** The readings of the last `keepMs` before `now`, oldest first. */
  series(now) {
    const from = now - this.options.keepMs;
    return this.samples.filter((s) => s.at >= from);
  }

  /**
   * The p50 and p95 of `|drift|` since the last call (ms), and how many readings
   * they summarize; `null` when there were none. Starts the next interval.
   */
  takeReport() {
    const values = this.pending;
    this.pending = [];
    if (values.length === 0) return null;
    return { p50: percentile(values, 50), p95: percentile(values, 95), samples: values.length };
  }
}
