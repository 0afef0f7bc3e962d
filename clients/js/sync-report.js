/**
 * sync-report.js — tells the room how far this page's player drifts (sync health).
 *
 * {@link SyncReporter} takes, every report interval, the p50/p95 of the page's
 * `|drift|` readings since the last report (a `DriftWindow` of sync-core.js,
 * which leaves out the readings around deliberate changes) and POSTs them with
 * the stream token of the page's live event stream. The server answers with the
 * room's summary and the interval it wants (`report_every_ms`, from its
 * `--sync-report-interval`). Nothing is sent without a token or a player kind,
 * nor without readings unless the player is buffering while the room plays: a
 * stalled page says so (`buffering: true`, with how far off it is now), so the
 * host sees who is behind, by the `name` the page reports. While the room does not
 * know the current item's length, a report also carries the player's (`duration`): the
 * server takes it once enough listeners agree, so a room can advance with nobody at
 * the controls.
 *
 * @module sync-report
 */

import { reportSync, ApiError } from './api.js';
import {
  MAX_CHAT_NAME_CHARS, MAX_DRIFT_MS, MIN_SYNC_REPORT_INTERVAL_MS, MAX_SYNC_REPORT_INTERVAL_MS,
} from './limits.js';

/** Timings of {@link SyncReporter}, in milliseconds. */
export const REPORT_TIMINGS = Object.freeze({
  /** The interval until the server names its own (the server's default). */
  firstReportMs: 5_000,
  /** The shortest and longest interval believed from an answer (the flag's bounds). */
  minReportMs: MIN_SYNC_REPORT_INTERVAL_MS,
  maxReportMs: MAX_SYNC_REPORT_INTERVAL_MS,
});

/** The longest item length a report may carry (seconds), as the API bounds `duration`. */
export const MAX_REPORTED_DURATION_S = 1e6;

/** The player kinds a report may name. */
export const PLAYER_KINDS = Object.freeze(['youtube', 'media', 'sim']);

export class SyncReporter {
  /**
   * @param {object} options
   * @param {string} options.roomId
   * @param {string} [options.baseUrl='']
   * @param {import('./sync-core.js').DriftWindow} options.window the page's drift readings
   * @param {() => string|null} options.token the newest stream token (`hello`)
   * @param {() => string|null} options.kind the player kind now (`youtube`, `media`, `sim`)
   * @param {() => ({buffering:boolean, driftMs:number|null}|null)} [options.status] whether the
   *        player is buffering while the room plays, and its `|drift|` now (ms)
   * @param {() => string|null} [options.name] the listener's display name, shown when behind
   * @param {() => number|null} [options.duration] the player's length of the current item (seconds),
   *        while the room does not know it; `null` otherwise
   * @param {(answer:{sync:object, report_every_ms:number}) => void} [options.onAccepted]
   */
  constructor(options) {
    this.options = options;
    this.everyMs = REPORT_TIMINGS.firstReportMs;
    this.sent = 0;
    this.refused = 0;
    /** The token a `403` refused: not sent again (the next `hello` brings a new one). */
    this._refusedToken = null;
    this._timer = null;
    this._stopped = true;
  }

  start() {
    if (!this._stopped) return;
    this._stopped = false;
    this._schedule(this.everyMs);
  }

  stop() {
    this._stopped = true;
    clearTimeout(this._timer);
  }

  _schedule(ms) {
    clearTimeout(this._timer);
    if (!this._stopped) this._timer = setTimeout(() => { this.reportNow(); }, ms);
  }

  /** Sends the report of the readings so far (if there is something to send); schedules the next. */
  async reportNow() {
    const { roomId, baseUrl = '', window, token, kind, status, name, duration, onAccepted } = this.options;
    let next = this.everyMs;
    const streamToken = token();
    const player = kind();
    if (streamToken && streamToken !== this._refusedToken && PLAYER_KINDS.includes(player)) {
      const report = stalled(window.takeReport(), status ? status() : null);
      if (report) {
        const body = {
          stream_token: streamToken,
          drift_p50_ms: round(report.p50),
          drift_p95_ms: round(report.p95),
          player,
          buffering: report.buffering,
        };
        const shown = displayName(name ? name() : null);
        if (shown) body.name = shown;
        const length = duration ? Number(duration()) : NaN;
        if (Number.isFinite(length) && length > 0 && length <= MAX_REPORTED_DURATION_S) body.duration = length;
        try {
          const answer = await reportSync(roomId, body, baseUrl);
          this.sent += 1;
          const every = Number(answer && answer.report_every_ms);
          if (Number.isFinite(every)) {
            this.everyMs = Math.min(REPORT_TIMINGS.maxReportMs, Math.max(REPORT_TIMINGS.minReportMs, every));
            next = this.everyMs;
          }
          if (onAccepted) onAccepted(answer);
        } catch (err) {
          this.refused += 1;
          if (err instanceof ApiError && err.status === 403) this._refusedToken = streamToken;
          if (err instanceof ApiError && err.retryAfter) next = Math.max(next, err.retryAfter * 1000);
        }
      }
    }
    this._schedule(next);
  }
}

/**
 * The report to send: the readings' p50/p95 (`null` without readings), and for a
 * player buffering while the room plays, at least how far off it is now (its
 * readings are left out while it buffers, so a stall alone would send nothing).
 */
export function stalled(report, status) {
  const buffering = Boolean(status && status.buffering);
  if (!buffering) return report ? { p50: report.p50, p95: report.p95, buffering: false } : null;
  const now = Math.abs(Number(status.driftMs)) || 0;
  const p95 = Math.max(report ? report.p95 : 0, now);
  return { p50: Math.min(report ? report.p50 : p95, p95), p95, buffering: true };
}

/**
 * A name as the API takes it (trimmed, 1 to 64 characters, no control characters), or `null`:
 * in sync reports and as the event stream's `?name=`, which refuses any other.
 */
export function displayName(name) {
  // eslint-disable-next-line no-control-regex
  const text = String(name || '').replace(/[\u0000-\u001f\u007f-\u009f]/g, '').trim();
  return text ? Array.from(text).slice(0, MAX_CHAT_NAME_CHARS).join('').trim() : null;
}

/** Milliseconds to 0.1 ms, and never above the API's bound. */
function round(ms) {
  return Math.min(MAX_DRIFT_MS, Math.round(ms * 10) / 10);
}
