/**
 * clock.js — the server's clock, estimated NTP style from `GET /api/time`.
 *
 * Positions in a room are computed from the server's `updated_at` timestamps, so
 * every client needs the server's clock to a few milliseconds. {@link ServerClock}
 * takes a burst of samples at start and a few more periodically; the estimate is
 * the recent sample with the lowest round trip (see `estimateOffset` in
 * sync-core.js). Works in browsers and in Node 18+ (global `fetch`).
 *
 * @module clock
 */

import { estimateOffset } from './sync-core.js';
import { ApiError } from './api.js';

/** The server clock's defaults (each also a `ServerClock` option). */
export const CLOCK_DEFAULTS = Object.freeze({
  /** Samples in the first burst: enough for one with a short round trip. */
  initialSamples: 8,
  /** Milliseconds between periodic re-samples (local clocks drift by parts per million). */
  resampleEvery: 15000,
  /** Samples per periodic re-sample. */
  resampleCount: 3,
  /** Milliseconds a sample stays a candidate for the estimate. */
  keepFor: 300000,
  /** Milliseconds to wait for a sample's Resource Timing entry once the timeline is full. */
  timingEntryWaitMs: 150,
});

/** A monotonic local clock in Unix milliseconds (immune to wall-clock steps). */
export function localNow() {
  return performance.timeOrigin + performance.now();
}

/**
 * The Resource Timing entry of a fetched `url`, or `null`. Read from the timeline,
 * or, once its buffer is full (a long session), from a short-lived observer.
 */
export async function resourceEntry(url) {
  if (typeof performance === 'undefined' || typeof performance.getEntriesByName !== 'function') return null;
  const find = () => {
    const list = performance.getEntriesByName(url, 'resource');
    return list.length ? list[list.length - 1] : null;
  };
  let entry = find();
  if (!entry && typeof PerformanceObserver === 'function') {
    entry = await new Promise((resolve) => {
      let observer = null;
      const timer = setTimeout(() => { if (observer) observer.disconnect(); resolve(find()); }, CLOCK_DEFAULTS.timingEntryWaitMs);
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
    this.initialSamples = options.initialSamples ?? CLOCK_DEFAULTS.initialSamples;
    this.resampleEvery = options.resampleEvery ?? CLOCK_DEFAULTS.resampleEvery;
    this.resampleCount = options.resampleCount ?? CLOCK_DEFAULTS.resampleCount;
    this.keepFor = options.keepFor ?? CLOCK_DEFAULTS.keepFor;
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
    const url = new URL(`${this.baseUrl}/api/time?s=${Date.now().toString(36)}${this._seq}`,
      globalThis.location ? globalThis.location.href : undefined).href;
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

