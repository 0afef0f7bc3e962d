/**
 * sim-player.js — a simulated video player with the YouTube IFrame API's interface.
 *
 * Used when the YouTube API cannot load (offline machines, strict networks) or
 * with `?player=sim`, and by the browser tests. It plays no media: it is a
 * timeline driven by the local monotonic clock, drawn as a big time read-out and
 * a progress bar, with its own play/pause button and clickable bar (the
 * equivalent of YouTube's own controls).
 *
 * Supported YT.Player methods: playVideo, pauseVideo, stopVideo, seekTo,
 * loadVideoById, cueVideoById, getCurrentTime, getDuration, getPlayerState,
 * getPlaybackRate, setPlaybackRate, getAvailablePlaybackRates, getVideoData,
 * mute, unMute, isMuted, setVolume, getVolume, addEventListener,
 * removeEventListener, destroy. Events: onReady, onStateChange,
 * onPlaybackRateChange (each listener gets `{target, data}` like YouTube's).
 *
 * @module sim-player
 */

import { formatTime, MIN_RATE, MAX_RATE, clampRate } from './sync-core.js';
import { PlayerState as STATE } from './player-sync.js';

/** The menu of rates YouTube offers, within the API's limits (`MIN_RATE`..`MAX_RATE`). */
const RATES = Object.freeze([0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2].filter((r) => r >= MIN_RATE && r <= MAX_RATE));

/** A stable pseudo-random number in [0, 1) from a string (for durations and colours). */
function hash01(text) {
  let h = 2166136261;
  for (let i = 0; i < text.length; i += 1) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 16777619);
  }
  return ((h >>> 0) % 100000) / 100000;
}

/** The simulated length of a video whose room does not know it: 3–9 minutes, fixed per id. */
export function simDuration(videoId) {
  return Math.round(180 + hash01(videoId) * 360);
}

function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'text') node.textContent = v;
    else if (k === 'class') node.className = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

export class SimPlayer {
  /**
   * @param {HTMLElement|string} element the element (or its id) to draw into
   * @param {{events?: {onReady?:Function, onStateChange?:Function, onPlaybackRateChange?:Function}, skew?: number, controls?: boolean}} [options]
   *        `controls`: draw the player's own play button and progress bar (default true);
   *        a page with its own transport passes `false`, so people see one set of controls.
   *        `skew`: how much faster (0.01 = 1 %) or slower (negative) this player's clock
   *        runs than real time, to show (and test) drift correction: a real player's
   *        media clock is never exactly the system's.
   */
  constructor(element, options = {}) {
    this._skew = Number(options.skew) || 0;
    this._controls = options.controls !== false;
    this.root = typeof element === 'string' ? document.getElementById(element) : element;
    this._listeners = new Map();
    this._videoId = null;
    this._duration = 0;
    this._state = STATE.UNSTARTED;
    this._rate = 1;
    this._basePos = 0;
    this._baseAt = performance.now();
    this._muted = false;
    this._volume = 100;
    this._destroyed = false;
    for (const [name, fn] of Object.entries(options.events || {})) this.addEventListener(name, fn);
    this._render();
    this._frame = this._frame.bind(this);
    requestAnimationFrame(this._frame);
    this._endTimer = setInterval(() => this._checkEnd(), 100);
    setTimeout(() => this._fire('onReady', undefined), 0);
  }

  _render() {
    this.root.textContent = '';
    this.root.classList.add('sim-player');
    this.ui = {};
    this.ui.badge = el('span', { class: 'sim-badge', text: 'Simulated player' });
    this.ui.title = el('div', { class: 'sim-title', text: 'No video loaded' });
    this.ui.time = el('div', { class: 'sim-time', 'aria-live': 'off', text: '0:00' });
    this.ui.rate = el('span', { class: 'sim-rate', text: '' });
    this.ui.toggle = el('button', { type: 'button', class: 'sim-toggle', 'aria-label': 'Play (player control)' });
    this.ui.toggle.innerHTML = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M8 5v14l11-7z"/></svg>';
    this.ui.fill = el('div', { class: 'sim-fill' });
    this.ui.knob = el('div', { class: 'sim-knob' });
    this.ui.bar = el('div', {
      class: 'sim-bar', role: 'slider', tabindex: '0', 'aria-label': 'Position (player control)',
      'aria-valuemin': '0', 'aria-valuemax': '0', 'aria-valuenow': '0',
    }, [this.ui.fill, this.ui.knob]);
    this.ui.clock = el('span', { class: 'sim-clock', text: '0:00 / 0:00' });
    const screen = el('div', { class: 'sim-screen' }, [this.ui.badge, this.ui.title, this.ui.time, this.ui.rate]);
    const bar = el('div', { class: 'sim-controls' }, [this.ui.toggle, this.ui.bar, this.ui.clock]);
    bar.hidden = !this._controls;
    this.root.append(screen, bar);

    this.ui.toggle.addEventListener('click', () => {
      if (!this._videoId) return;
      if (this._state === STATE.PLAYING) this.pauseVideo(); else this.playVideo();
    });
    this.ui.bar.addEventListener('click', (e) => {
      if (!this._duration) return;
      const box = this.ui.bar.getBoundingClientRect();
      this.seekTo(((e.clientX - box.left) / box.width) * this._duration, true);
    });
    this.ui.bar.addEventListener('keydown', (e) => {
      if (!this._duration) return;
      const step = e.key === 'ArrowRight' ? 5 : e.key === 'ArrowLeft' ? -5 : 0;
      if (step) { e.preventDefault(); this.seekTo(Math.max(0, this.getCurrentTime() + step), true); }
    });
  }

  _frame() {
    if (this._destroyed) return;
    // Touch the DOM only when what it shows changes: several players may share a CPU.
    const pos = this.getCurrentTime();
    const dur = this._duration;
    const playing = this._state === STATE.PLAYING;
    const pct = dur > 0 ? Math.min(100, (pos / dur) * 100) : 0;
    const view = {
      time: formatTime(pos),
      clock: `${formatTime(pos)} / ${formatTime(dur)}`,
      pct: pct.toFixed(1),
      playing,
      rate: this._rate !== 1 ? `${+this._rate.toFixed(3)}×` : '',
      dur,
    };
    const last = this._view || {};
    if (view.time !== last.time) this.ui.time.textContent = view.time;
    if (view.clock !== last.clock) this.ui.clock.textContent = view.clock;
    if (view.pct !== last.pct) {
      this.ui.fill.style.width = `${view.pct}%`;
      this.ui.knob.style.left = `${view.pct}%`;
      this.ui.bar.setAttribute('aria-valuenow', pos.toFixed(0));
    }
    if (view.dur !== last.dur) this.ui.bar.setAttribute('aria-valuemax', String(dur));
    if (view.rate !== last.rate) this.ui.rate.textContent = view.rate;
    if (view.playing !== last.playing) {
      this.root.classList.toggle('is-playing', playing);
      this.ui.toggle.setAttribute('aria-label', playing ? 'Pause (player control)' : 'Play (player control)');
      this.ui.toggle.innerHTML = playing
        ? '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M6 5h4v14H6zM14 5h4v14h-4z"/></svg>'
        : '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M8 5v14l11-7z"/></svg>';
    }
    this._view = view;
    requestAnimationFrame(this._frame);
  }

  _checkEnd() {
    if (this._state === STATE.PLAYING && this._duration > 0 && this._rawPosition() >= this._duration) {
      this._rebase(this._duration);
      this._setState(STATE.ENDED);
    }
  }

  _rawPosition() {
    if (this._state !== STATE.PLAYING) return this._basePos;
    return this._basePos + ((performance.now() - this._baseAt) / 1000) * this._rate * (1 + this._skew);
  }

  _rebase(pos) {
    this._basePos = pos;
    this._baseAt = performance.now();
  }

  _setState(state) {
    if (this._state === state) return;
    this._state = state;
    this._fire('onStateChange', state);
  }

  _fire(name, data) {
    const fns = this._listeners.get(name);
    if (!fns) return;
    // YouTube delivers events asynchronously (postMessage); so do we.
    for (const fn of [...fns]) setTimeout(() => fn({ target: this, data }), 0);
  }

  addEventListener(name, fn) {
    if (!this._listeners.has(name)) this._listeners.set(name, new Set());
    this._listeners.get(name).add(fn);
  }

  removeEventListener(name, fn) {
    const fns = this._listeners.get(name);
    if (fns) fns.delete(fn);
  }

  _load(args, startSeconds, play) {
    const opts = typeof args === 'object' && args !== null ? args : { videoId: args, startSeconds };
    this._videoId = opts.videoId;
    // The room's duration when the caller knows it (PlayerSync passes it), else a made-up one.
    const given = Number(opts.duration);
    this._duration = Number.isFinite(given) && given > 0 ? given : simDuration(opts.videoId);
    this.ui.title.textContent = `Video ${opts.videoId}`;
    this.root.style.setProperty('--sim-hue', String(Math.round(hash01(opts.videoId) * 360)));
    this._state = STATE.UNSTARTED;
    this._rebase(Math.min(this._duration, Math.max(0, Number(opts.startSeconds) || 0)));
    this._setState(play ? STATE.PLAYING : STATE.CUED);
  }

  loadVideoById(args, startSeconds) { this._load(args, startSeconds, true); }

  cueVideoById(args, startSeconds) { this._load(args, startSeconds, false); }

  playVideo() {
    if (!this._videoId) return;
    if (this._state === STATE.PLAYING) return;
    const pos = this._state === STATE.ENDED ? 0 : this._rawPosition();
    this._state = STATE.PAUSED; // so _rebase reads the frozen position
    this._rebase(pos);
    this._setState(STATE.PLAYING);
  }

  pauseVideo() {
    if (this._state !== STATE.PLAYING) return;
    this._rebase(this._rawPosition());
    this._setState(STATE.PAUSED);
  }

  stopVideo() {
    this._rebase(0);
    this._setState(STATE.CUED);
  }

  seekTo(seconds, _allowSeekAhead) {
    if (!this._videoId) return;
    const pos = Math.min(this._duration, Math.max(0, Number(seconds) || 0));
    this._rebase(pos);
    if (this._state === STATE.ENDED && pos < this._duration) this._setState(STATE.PAUSED);
  }

  getCurrentTime() { return Math.min(this._duration || Infinity, this._rawPosition()); }

  getDuration() { return this._duration; }

  /**
   * Not in YouTube's API: sets the length of the loaded video (a simulated video has
   * none of its own). PlayerSync calls it with the room's `duration`.
   */
  setDuration(seconds) {
    const d = Number(seconds);
    if (!this._videoId || !Number.isFinite(d) || d <= 0 || d === this._duration) return;
    const pos = Math.min(d, this._rawPosition());
    this._duration = d;
    this._rebase(pos);
  }

  getPlayerState() { return this._state; }

  getPlaybackRate() { return this._rate; }

  /** Accepts any rate in [MIN_RATE, MAX_RATE] (like YouTube's custom speeds), so nudges are exact. */
  setPlaybackRate(rate) {
    const r = clampRate(Number(rate) || 1);
    if (r === this._rate) return;
    this._rebase(this._rawPosition());
    this._rate = r;
    this._fire('onPlaybackRateChange', r);
  }

  getAvailablePlaybackRates() { return RATES.slice(); }

  getVideoData() { return { video_id: this._videoId || '', title: this._videoId ? `Video ${this._videoId}` : '' }; }

  getVideoUrl() { return this._videoId ? `https://www.youtube.com/watch?v=${this._videoId}` : ''; }

  mute() { this._muted = true; }

  unMute() { this._muted = false; }

  isMuted() { return this._muted; }

  setVolume(v) { this._volume = v; }

  getVolume() { return this._volume; }

  getIframe() { return this.root; }

  destroy() {
    this._destroyed = true;
    clearInterval(this._endTimer);
    this.root.textContent = '';
    this.root.classList.remove('sim-player', 'is-playing');
  }
}
