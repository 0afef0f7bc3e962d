// Type declarations of syncroom-client/media-player (browser only: it makes a <video> element).
import type { SyncablePlayer } from './index.js';

export declare const MEDIA_PLAYER_TIMINGS: Readonly<{ seekLatencyGain: number; maxSeekLatency: number }>;

/** Tighter nudge thresholds for a media element (attachPlayer(player, {correction})). */
export declare const MEDIA_CORRECTION: Readonly<{ nudgeStart: number; nudgeStop: number; eventSeekThreshold: number }>;

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
  readonly stats: { seeks: number; rateChanges: number; waits: number };
  getCurrentTime(): number;
  getDuration(): number;
  getPlayerState(): number;
  getPlaybackRate(): number;
  setPlaybackRate(rate: number): void;
  getAvailablePlaybackRates(): number[];
  /** Seconds from setting currentTime to playing again, learned; null before the first seek. */
  getSeekLatency(): number | null;
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
