// Type declarations of syncroom-client/media-player (browser only: it makes a <video> element).
import type { SyncablePlayer } from './index.js';

export declare const MEDIA_PLAYER_TIMINGS: Readonly<{ seekLatencyGain: number; maxSeekLatency: number; seekMeasureMs: number; firstStartLatency: number; maxStartLatency: number; readSlack: number; seekRetryMs: number; seekStuckMs: number; seekLookMs: number }>;

/** Tighter nudge thresholds for a media element (attachPlayer(player, {correction})). */
export declare const MEDIA_CORRECTION: Readonly<{ nudgeStart: number; nudgeStop: number; eventSeekThreshold: number; fineBursts: boolean }>;

/** Timings of the position clock: read interval, reads to learn from, held fraction, anchors, longest extrapolation. */
export declare const POSITION_CLOCK_TIMINGS: Readonly<{ sampleMs: number; learnReads: number; heldFraction: number; anchors: number; maxPeriods: number }>;

/**
 * The element's position between its own updates: learns from reads whether the element holds
 * `currentTime` between updates (Firefox: every ~40 ms) and, if so, extrapolates from the newest.
 */
export declare class PositionClock {
  /** null until learned; true for an element that holds its position between updates. */
  readonly stepped: boolean | null;
  /** Learned wall ms between two updates of a stepped element. */
  readonly periodMs: number | null;
  reset(): void;
  learning(): boolean;
  /** One read: `value` seconds at `at` ms (performance.now()), playing at `rate`. */
  observe(value: number, at: number, rate: number, playing: boolean): void;
  /** The position at `at` given the read `value` then (the read itself for a continuous element). */
  position(value: number, at: number, rate: number, playing: boolean): number;
}

export interface MediaPlayerOptions {
  events?: {
    onReady?: (event: { target: MediaPlayer; data: undefined }) => void;
    onStateChange?: (event: { target: MediaPlayer; data: number }) => void;
    onPlaybackRateChange?: (event: { target: MediaPlayer; data: number }) => void;
    onError?: (event: { target: MediaPlayer; data: number }) => void;
  };
}

/** A `<video>` element (audio too) with the YouTube IFrame API's interface; the "video id" is a media URL. */
export declare class MediaPlayer implements SyncablePlayer {
  constructor(target: HTMLElement | string, options?: MediaPlayerOptions);
  readonly element: HTMLVideoElement;
  readonly stats: { seeks: number; rateChanges: number; waits: number; seekRetries: number };
  /** The element's position between its updates (learned at run time). */
  readonly clock: PositionClock;
  /** The element's position: its currentTime, extrapolated between updates on an engine that holds it. */
  getCurrentTime(): number;
  getDuration(): number;
  getPlayerState(): number;
  getPlaybackRate(): number;
  setPlaybackRate(rate: number): void;
  getAvailablePlaybackRates(): number[];
  /** Seconds from setting currentTime to playing again, learned; null before the first seek. Given the target: of seeks within the buffer, or beyond it. */
  getSeekLatency(target?: number): number | null;
  seekTo(seconds: number, allowSeekAhead?: boolean): void;
  playVideo(): void;
  pauseVideo(): void;
  stopVideo(): void;
  loadVideoById(args: { videoId: string; startSeconds?: number } | string, startSeconds?: number): void;
  cueVideoById(args: { videoId: string; startSeconds?: number } | string, startSeconds?: number): void;
  getVideoData(): { video_id: string; title: string };
  getVideoLoadedFraction(): number;
  mute(): void;
  unMute(): void;
  isMuted(): boolean;
  setVolume(volume: number): void;
  getVolume(): number;
  addEventListener(name: string, listener: (event: { data: unknown }) => void): void;
  removeEventListener(name: string, listener: (event: { data: unknown }) => void): void;
  destroy(): void;
}
