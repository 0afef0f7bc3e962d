/**
 * media-player.js — a `<video>` element (which plays audio too) behind the YouTube
 * IFrame API's interface, so {@link PlayerSync} drives it like the other players.
 *
 * Unlike YouTube, the element takes any playback rate, so drift is nudged away
 * finely; it lists no rate menu (`getAvailablePlaybackRates` returns `[]`), which
 * keeps PlayerSync off the coarse-rate (burst) path. It measures its own seek
 * latency (from setting `currentTime` to playing again), which PlayerSync aims
 * seeks ahead by. `waiting` and `stalled` (with too little data to go on) are
 * BUFFERING, so PlayerSync does not correct while the element fills its buffer;
 * `canplay`/`playing` end it.
 *
 * The "video id" it loads is the item's `media_url` (a `/media/...` path or an
 * absolute http(s) URL).
 *
 * @module media-player
 */

import { PlayerState as STATE } from './player-sync.js';

/** Timings of the media player, in milliseconds unless named otherwise. */
export const MEDIA_PLAYER_TIMINGS = Object.freeze({
  /** Weight of a new seek-latency sample in the running average (0..1). */
  seekLatencyGain: 0.5,
  /** Seconds: a seek that took longer than this was a stall, not a seek; it is not learned. */
  maxSeekLatency: 3,
  /**
   * After a seek has landed (`seeked`, playing), when to read how far the element got: the
   * shortfall against the wall clock is the seek's real latency (decoder and audio output
   * restart included, which `seeked` alone does not show).
   */
  seekMeasureMs: 400,
  /**
   * A seek's latency is read sooner when the rate is about to change, but not before this
   * long after it landed (ms): Chromium's element says `playing` a moment before its output
   * moves (a corrector judges a landing 300 ms after it).
   */
  seekMeasureMinMs: 250,
  /**
   * Seconds of data buffered at a seek's target from which it is a seek within the buffer:
   * its latency is learned apart from a seek that must fetch first (Firefox ESR, loaded
   * machine: 10-40 ms against 100-200 ms), so a short seek is not aimed by a long one's.
   */
  nearSeekBuffer: 0.5,
  /**
   * Seconds from play() on a paused element until its position moves, before one was
   * measured here: a scheduled start calls play() this much early. (Measured in headless
   * Chromium on a 2-core machine: about 0.1 s, the decoder and audio output starting.)
   */
  firstStartLatency: 0.1,
  /** Seconds: a start slower than this was a stall, not the element's start latency. */
  maxStartLatency: 1,
  /**
   * Seconds a start or seek latency may measure below 0 and still count (as 0): an element
   * that starts or seeks at once reads a hair ahead of the wall clock as often as behind.
   */
  readSlack: 0.02,
  /**
   * A seek still waiting for data this long after it was asked (ms) reloads the source where
   * the element would be by then: Firefox ESR was seen to wait on a seek past its buffer
   * for good (still `seeking`, its download stuck short of the target, asking again did not
   * help); a fresh load drops the stuck request and starts one there.
   */
  seekRetryMs: 2000,
  /**
   * ... and sooner, once it has waited this long (ms) with nothing more buffered at its target
   * since the last look: Firefox ESR's stuck seeks never asked the server for the target's
   * range, or asked and dropped the request a few ms later, and then waited for good (a
   * healthy seek lands in 10-120 ms, and on a slow link the data at the target grows).
   */
  seekStuckMs: 750,
  /** Between two looks at a seek still waiting (ms). */
  seekLookMs: 250,
});

/** Timings of the element's position clock ({@link PositionClock}), in milliseconds. */
export const POSITION_CLOCK_TIMINGS = Object.freeze({
  /** Between two reads of a playing element while learning whether it holds its position, and after. */
  sampleMs: 7,
  /** Reads (while playing, at one rate) before the element is judged stepped or continuous. */
  learnReads: 24,
  /** Fraction of those reads that found the value unchanged, above which the element is stepped. */
  heldFraction: 0.3,
  /** Update instants the position is extrapolated from (the most recent; the latest-seen wins). */
  anchors: 8,
  /** Extrapolate at most this many update periods past the newest update (a stall is not played on). */
  maxPeriods: 1.5,
});

/**
 * The element's position between its own updates. An engine may update `currentTime` only
 * every few tens of milliseconds and hold it in between (Firefox ESR: every 40 ms); a read
 * then lags the element by up to one update period, and a corrector checking on a
 * multiple of that period sees a steady offset it never corrects. This learns, from what
 * the element does, whether it holds its position (reads a few ms apart that find the same
 * value while it plays) and, if so, the instants new values appear: between updates the
 * position is the newest update extrapolated at the element's rate from when it appeared.
 * Each update is seen a read late at most; of the recent updates, the one seen soonest
 * after it appeared gives the highest extrapolation, and that one is taken. An element that
 * moves on every read is passed through untouched.
 *
 * Pure (no DOM): it is fed reads `(value, at, rate, playing)`; {@link MediaPlayer} feeds it.
 */
export class PositionClock {
  constructor() {
    /** `null` until learned; then true for an element that holds its position between updates. */
    this.stepped = null;
    /** Learned wall ms between two updates of a stepped element (median of recent ones). */
    this.periodMs = null;
    this._last = null; // {value, at}: the last read
    this._rate = null; // the rate of the current run of reads
    this._reads = 0;
    this._held = 0;
    this._anchors = []; // value - rate * at / 1000, at the updates seen in this run
    this._lastUpdateAt = null;
    this._intervals = [];
  }

  /** Forget the run (a seek, a pause, a new source): the next reads start a new one. */
  reset() {
    this._last = null;
    this._anchors = [];
    this._lastUpdateAt = null;
  }

  /** Whether the element is still being watched closely (a sampler should read it often). */
  learning() { return this.stepped === null || this.stepped; }

  /**
   * One read of the element: `value` (s) at `at` (ms), playing at `rate`.
   * A value that moves against the run (a seek) or a new rate starts a new run.
   */
  observe(value, at, rate, playing) {
    if (!playing || !(rate > 0)) { this.reset(); return; }
    const last = this._last;
    if (last && (rate !== this._rate || value < last.value
        || value - last.value > ((at - last.at) / 1000) * rate + 0.25)) this.reset();
    const prev = this._last;
    this._rate = rate;
    this._last = { value, at };
    if (!prev) return;
    const T = POSITION_CLOCK_TIMINGS;
    if (this.stepped === null && this._anchors.length > 0 && at - prev.at <= T.sampleMs * 3) {
      // Only reads close together, once the element has moved (a start-up stands still for
      // a while), say whether it holds its value between updates.
      this._reads += 1;
      if (value === prev.value) this._held += 1;
      if (this._reads >= T.learnReads) this.stepped = this._held / this._reads > T.heldFraction;
    }
    if (value === prev.value) return;
    // A new value appeared between the two reads: at `at` at the latest.
    this._anchors.push(value - (rate * at) / 1000);
    if (this._anchors.length > T.anchors) this._anchors.shift();
    if (this._lastUpdateAt !== null && at - prev.at <= T.sampleMs * 3) {
      this._intervals.push(at - this._lastUpdateAt);
      if (this._intervals.length > 9) this._intervals.shift();
      const sorted = [...this._intervals].sort((a, b) => a - b);
      this.periodMs = sorted[sorted.length >> 1];
    }
    this._lastUpdateAt = at;
  }

  /** The element's position at `at` (ms), given its read `value` then: see the class. */
  position(value, at, rate, playing) {
    this.observe(value, at, rate, playing);
    if (!this.stepped || !playing || this._anchors.length === 0 || this.periodMs === null) return value;
    const estimate = Math.max(...this._anchors) + (rate * at) / 1000;
    const most = value + (rate * this.periodMs * POSITION_CLOCK_TIMINGS.maxPeriods) / 1000;
    return Math.min(most, Math.max(value, estimate));
  }
}

/**
 * Correction thresholds for a media element (pass as `attachPlayer(player, {correction})`):
 * the element takes any rate and reports its position precisely, so it can start nudging
 * at a smaller drift than a YouTube iframe (whose position arrives by message).
 */
export const MEDIA_CORRECTION = Object.freeze({
  /** Seconds of drift at which a nudge starts (the default is 0.02). */
  nudgeStart: 0.008,
  /** Seconds of drift at which it stops. */
  nudgeStop: 0.002,
  /**
   * Seconds of drift above which the first check after a change (load, play, seek) seeks:
   * an element's seek lands within a few ms, so a start-up offset is sought, not glided.
   * Once settled, only `seekThreshold` (1 s) seeks.
   */
  eventSeekThreshold: 0.03,
  /**
   * A drift is closed by one timed rate change and back, sized for what that pair costs the
   * element's position (learned: ~20 ms in Chromium, none in Firefox), not by a steady nudge
   * that pays the cost at every start and stop.
   */
  fineBursts: true,
});

/** HTMLMediaElement.readyState HAVE_FUTURE_DATA: enough to play on. */
const HAVE_FUTURE_DATA = 3;

/** Seconds the element has buffered from `t` on (0 when `t` is in no buffered range). */
function bufferedFrom(el, t) {
  const ranges = el.buffered;
  for (let i = 0; i < ranges.length; i += 1) {
    if (ranges.start(i) <= t + 0.001 && ranges.end(i) > t) return ranges.end(i) - t;
  }
  return 0;
}

/** Whether a seek to `t` lands within what the element has buffered (see `nearSeekBuffer`). */
function seeksWithinBuffer(el, t) {
  return bufferedFrom(el, t) >= MEDIA_PLAYER_TIMINGS.nearSeekBuffer;
}

export class MediaPlayer {
  /**
   * @param {HTMLElement|string} target the element (or its id) the `<video>` replaces
   * @param {{events?: {onReady?:Function, onStateChange?:Function, onPlaybackRateChange?:Function, onError?:Function}}} [options]
   */
  constructor(target, options = {}) {
    const host = typeof target === 'string' ? document.getElementById(target) : target;
    this._listeners = { onReady: [], onStateChange: [], onPlaybackRateChange: [], onError: [] };
    for (const [name, fn] of Object.entries(options.events || {})) this.addEventListener(name, fn);
    const el = document.createElement('video');
    el.id = host && host.id ? host.id : 'media-player';
    el.className = 'media-player';
    el.preload = 'auto';
    el.playsInline = true;
    el.controls = false; // the page draws its own transport
    el.preservesPitch = true; // a nudged rate must not be heard as a pitch change
    if (host && host.parentNode) host.parentNode.replaceChild(el, host);
    else document.body.append(el);
    this.element = el;
    this._state = STATE.UNSTARTED;
    this._url = null;
    this._seek = null; // {at, target, measuring}: the last seek, until its latency is read
    this._seekLatency = null;
    this._seekLatencies = { near: null, far: null }; // the same, apart for seeks within the buffer and beyond
    this._startLatency = null;
    this._start = null; // {at, from}: the last play() of a paused element, until its latency is read
    this._wantPlay = false;
    this.stats = { seeks: 0, rateChanges: 0, waits: 0, seekRetries: 0 };
    /** The element's position between its updates (learned: some engines hold `currentTime`). */
    this.clock = new PositionClock();
    this._sampler = null;
    this._seekRetry = null;

    el.addEventListener('playing', () => {
      this._sample();
      this._seekLanded();
      this._startLanded();
      this._setState(STATE.PLAYING);
    });
    el.addEventListener('pause', () => { if (!el.ended) this._setState(STATE.PAUSED); });
    el.addEventListener('waiting', () => { this.stats.waits += 1; this._setState(STATE.BUFFERING); });
    el.addEventListener('stalled', () => {
      // `stalled` only says data stopped arriving; it is buffering only when playback cannot go on.
      if (el.readyState < HAVE_FUTURE_DATA && !el.paused) this._setState(STATE.BUFFERING);
    });
    el.addEventListener('canplay', () => {
      if (this._state === STATE.BUFFERING) this._setState(el.paused ? STATE.PAUSED : STATE.PLAYING);
    });
    el.addEventListener('seeked', () => {
      // A paused element never fires `playing`, and one with the data at hand plays on
      // without `waiting`/`playing`: its seek has landed now. Otherwise `playing` says so.
      if (el.paused || el.readyState >= HAVE_FUTURE_DATA) this._seekLanded();
    });
    el.addEventListener('ended', () => { this._wantPlay = false; this._setState(STATE.ENDED); });
    el.addEventListener('ratechange', () => this._fire('onPlaybackRateChange', el.playbackRate));
    el.addEventListener('error', () => { if (this._url) this._fire('onError', el.error ? el.error.code : 0); });
    // Like YouTube's: ready after construction, never during it.
    setTimeout(() => this._fire('onReady'), 0);
  }

  _fire(name, data) {
    for (const fn of this._listeners[name] || []) {
      try { fn({ target: this, data }); } catch (err) { setTimeout(() => { throw err; }); }
    }
  }

  _setState(state) {
    if (this._state === state) return;
    this._state = state;
    this._fire('onStateChange', state);
  }

  /**
   * While the element plays, reads it every few ms for the position clock: until it is
   * known to move on every read (then the clock passes reads through and this stops), or
   * for as long as it plays when it holds its position between updates.
   */
  _sample() {
    if (this._sampler !== null) return;
    const tick = () => {
      this._sampler = null;
      const el = this.element;
      if (el.paused || el.ended || !this.clock.learning()) return;
      // A seek in play may land without a new "playing": keep watching through it.
      if (!el.seeking) this.clock.observe(el.currentTime || 0, performance.now(), el.playbackRate || 1, true);
      this._sampler = setTimeout(tick, POSITION_CLOCK_TIMINGS.sampleMs);
    };
    this._sampler = setTimeout(tick, 0);
  }

  /**
   * A seek landed: a moment later, compare where the element is with where it would be had
   * it played on from the target the instant it was asked to seek. The shortfall, in
   * seconds of wall clock, is this element's seek latency.
   */
  _seekLanded() {
    const seek = this._seek;
    if (!seek || seek.measuring) return;
    seek.measuring = true;
    seek.landedAt = performance.now();
    setTimeout(() => this._measureSeek(seek), MEDIA_PLAYER_TIMINGS.seekMeasureMs);
  }

  /**
   * Reads a landed seek's latency (see `_seekLanded`): when its time comes, or at once when
   * the rate is about to change (a corrector's burst right after a landing). Read after a
   * change of rate, the advance since the seek would be divided by a rate it did not play
   * at all along, and a burst's own gain or loss taken for the seek's latency (seen: a
   * Firefox element that seeks in ~30 ms measured at ~55 ms, and later seeks aimed as far
   * ahead). Too soon after the landing to have restarted for sure, it is not read at all.
   */
  _measureSeek(seek) {
    if (this._seek !== seek) return; // another seek came since: that one is measured
    this._seek = null;
    const el = this.element;
    if (el.paused || this._state !== STATE.PLAYING) return;
    const now = performance.now();
    if (now - seek.landedAt < MEDIA_PLAYER_TIMINGS.seekMeasureMinMs) return;
    const elapsed = (now - seek.at) / 1000;
    const rate = el.playbackRate || 1;
    const measured = elapsed - (this.getCurrentTime() - seek.target) / rate;
    // An element that seeks at once (Firefox) measures about 0, a little either side.
    if (!(measured >= -MEDIA_PLAYER_TIMINGS.readSlack) || measured > MEDIA_PLAYER_TIMINGS.maxSeekLatency) return;
    const latency = Math.max(0, measured);
    const g = MEDIA_PLAYER_TIMINGS.seekLatencyGain;
    const learn = (was) => (was === null ? latency : was * (1 - g) + latency * g);
    this._seekLatency = learn(this._seekLatency);
    const kind = seek.near ? 'near' : 'far';
    this._seekLatencies[kind] = learn(this._seekLatencies[kind]);
  }

  /**
   * A play() from paused got going: a moment later, the shortfall of the position against
   * the wall clock since the call is this element's start latency (learned, averaged).
   */
  _startLanded() {
    const start = this._start;
    if (!start || start.measuring) return;
    start.measuring = true;
    setTimeout(() => {
      if (this._start !== start) return;
      this._start = null;
      const el = this.element;
      if (el.paused || this._seek || this._state !== STATE.PLAYING) return;
      const rate = el.playbackRate || 1;
      const measured = (performance.now() - start.at) / 1000 - (this.getCurrentTime() - start.from) / rate;
      // An element that starts at once (Firefox) measures about 0, a little either side.
      if (!(measured >= -MEDIA_PLAYER_TIMINGS.readSlack) || measured > MEDIA_PLAYER_TIMINGS.maxStartLatency) return;
      const latency = Math.max(0, measured);
      const g = MEDIA_PLAYER_TIMINGS.seekLatencyGain;
      this._startLatency = this._startLatency === null ? latency : this._startLatency * (1 - g) + latency * g;
    }, MEDIA_PLAYER_TIMINGS.seekMeasureMs);
  }

  /** Seconds from play() on a paused element until it moves: learned, or a first guess. */
  getStartLatency() { return this._startLatency ?? MEDIA_PLAYER_TIMINGS.firstStartLatency; }

  _args(idOrObject, startSeconds) {
    if (idOrObject && typeof idOrObject === 'object') return [idOrObject.videoId, idOrObject.startSeconds];
    return [idOrObject, startSeconds];
  }

  _load(url, startSeconds, play) {
    const el = this.element;
    this._url = String(url);
    this._wantPlay = play;
    this._seek = null;
    this._start = null;
    const rate = el.playbackRate;
    this.clock.reset();
    el.src = this._url;
    // load() resets playbackRate to defaultPlaybackRate: keep the room's.
    el.defaultPlaybackRate = rate;
    el.playbackRate = rate;
    this._setState(play ? STATE.BUFFERING : STATE.UNSTARTED);
    const start = Math.max(0, Number(startSeconds) || 0);
    const askedAt = performance.now();
    el.addEventListener('loadedmetadata', () => {
      if (this._url !== String(url)) return;
      // Playing, the room moved on while the metadata came, and moves on while the
      // element starts: start where it will be once this element moves.
      const late = this._wantPlay
        ? ((performance.now() - askedAt) / 1000 + this.getStartLatency()) * (el.playbackRate || 1)
        : 0;
      if (start + late > 0) el.currentTime = start + late;
      if (this._wantPlay) this._play();
      else this._setState(STATE.CUED);
    }, { once: true });
    el.load();
  }

  _play() {
    const el = this.element;
    if (el.paused && !this._seek) this._start = { at: performance.now(), from: el.currentTime };
    this.element.play().catch(() => {
      // Autoplay refused (or the source failed): PlayerSync sees a player that does not start.
      if (this._state !== STATE.ENDED) this._setState(STATE.PAUSED);
    });
  }

  loadVideoById(idOrObject, startSeconds) { this._load(...this._args(idOrObject, startSeconds), true); }
  cueVideoById(idOrObject, startSeconds) { this._load(...this._args(idOrObject, startSeconds), false); }

  playVideo() {
    this._wantPlay = true;
    if (this._url === null) return;
    this._play();
  }

  pauseVideo() {
    this._wantPlay = false;
    this.element.pause();
  }

  stopVideo() { this.pauseVideo(); }

  seekTo(seconds) {
    const el = this.element;
    this.stats.seeks += 1;
    const target = Math.max(0, Number(seconds) || 0);
    const landing = Number.isFinite(el.duration) ? Math.min(target, el.duration) : target;
    const near = seeksWithinBuffer(el, landing);
    this._seek = { at: performance.now(), target: landing, measuring: false, near };
    this._start = null;
    this.clock.reset();
    el.currentTime = landing;
    this._watchSeek(this._seek);
  }

  /**
   * Reloads at the seek's target if it is still waiting for data after `seekRetryMs`, or
   * after `seekStuckMs` when nothing more has been buffered at the target since the last
   * look (see there).
   */
  _watchSeek(seek) {
    clearTimeout(this._seekRetry);
    const T = MEDIA_PLAYER_TIMINGS;
    let before = null;
    const look = () => {
      const el = this.element;
      if (this._seek !== seek || !el.seeking || el.readyState >= HAVE_FUTURE_DATA) return;
      const waited = performance.now() - seek.at;
      const buffered = bufferedFrom(el, seek.target);
      if (waited < T.seekRetryMs && !(waited >= T.seekStuckMs && before !== null && buffered <= before)) {
        before = buffered;
        this._seekRetry = setTimeout(look, T.seekLookMs);
        return;
      }
      // Where it would be now (a load playing adds its own start-up on top).
      const ahead = this._wantPlay ? (waited / 1000) * (el.playbackRate || 1) : 0;
      const landing = Number.isFinite(el.duration) ? Math.min(seek.target + ahead, el.duration) : seek.target + ahead;
      this.stats.seekRetries += 1;
      this._load(this._url, landing, this._wantPlay);
    };
    this._seekRetry = setTimeout(look, T.seekLookMs);
  }

  /**
   * Seconds from setting `currentTime` to playing on from there, learned; `null` before the
   * first seek measured. Given the seek's `target` (s), of seeks like it: within the buffer
   * or beyond it (each once one was measured).
   */
  getSeekLatency(target) {
    if (!Number.isFinite(target)) return this._seekLatency;
    const kind = seeksWithinBuffer(this.element, target) ? 'near' : 'far';
    return this._seekLatencies[kind] ?? this._seekLatency;
  }

  /** The element's position now: its `currentTime`, or between the updates of an engine that holds it, extrapolated ({@link PositionClock}). */
  getCurrentTime() {
    const el = this.element;
    const playing = !el.paused && !el.seeking && this._state === STATE.PLAYING;
    return this.clock.position(el.currentTime || 0, performance.now(), el.playbackRate || 1, playing);
  }
  getDuration() { return Number.isFinite(this.element.duration) ? this.element.duration : 0; }
  getPlayerState() { return this._state; }
  /** Positioned with data to play on: what a ready-gate report says. */
  isBuffered() { return this.element.readyState >= HAVE_FUTURE_DATA && !this.element.seeking; }
  getPlaybackRate() { return this.element.playbackRate; }

  /** Any rate: the element plays it (within the API's limits, which PlayerSync keeps to). */
  setPlaybackRate(rate) {
    const r = Number(rate);
    if (!Number.isFinite(r) || r <= 0 || r === this.element.playbackRate) return;
    this.stats.rateChanges += 1;
    if (this._seek && this._seek.measuring) this._measureSeek(this._seek);
    this.element.defaultPlaybackRate = r;
    this.element.playbackRate = r;
  }

  /** No menu of rates: the element takes any. */
  getAvailablePlaybackRates() { return []; }

  getVideoData() {
    const name = this._url ? decodeURIComponent(this._url.split(/[?#]/)[0].split('/').pop() || '') : '';
    return { video_id: this._url || '', title: name };
  }

  getVideoLoadedFraction() {
    const el = this.element;
    if (!Number.isFinite(el.duration) || el.duration <= 0 || el.buffered.length === 0) return 0;
    return el.buffered.end(el.buffered.length - 1) / el.duration;
  }

  mute() { this.element.muted = true; }
  unMute() { this.element.muted = false; }
  isMuted() { return this.element.muted; }
  setVolume(v) { this.element.volume = Math.min(1, Math.max(0, Number(v) / 100)); }
  getVolume() { return Math.round(this.element.volume * 100); }

  addEventListener(name, fn) {
    if (this._listeners[name] && typeof fn === 'function') this._listeners[name].push(fn);
  }

  removeEventListener(name, fn) {
    if (this._listeners[name]) this._listeners[name] = this._listeners[name].filter((f) => f !== fn);
  }

  destroy() {
    clearTimeout(this._sampler);
    clearTimeout(this._seekRetry);
    this.element.pause();
    this.element.removeAttribute('src');
    this.element.load();
    this.element.remove();
  }
}
