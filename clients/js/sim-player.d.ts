// Type declarations of syncroom-client/sim-player (browser only: it draws into the DOM).
import type { SyncablePlayer } from './index.js';

/** The simulated length (seconds) of a video whose room does not know it: 3–9 minutes, fixed per id. */
export declare function simDuration(videoId: string): number;

export interface SimPlayerOptions {
  events?: {
    onReady?: (event: { target: SimPlayer; data: undefined }) => void;
    onStateChange?: (event: { target: SimPlayer; data: number }) => void;
    onPlaybackRateChange?: (event: { target: SimPlayer; data: number }) => void;
  };
  /** How much faster (0.01 = 1 %) or slower (negative) this player's clock runs. */
  skew?: number;
  /** Draw the player's own play button and progress bar (default true). */
  controls?: boolean;
}

/** A simulated video player with the YouTube IFrame API's interface. */
export declare class SimPlayer implements SyncablePlayer {
  constructor(element: HTMLElement | string, options?: SimPlayerOptions);
  getCurrentTime(): number;
  getDuration(): number;
  setDuration(seconds: number): void;
  getPlayerState(): number;
  getPlaybackRate(): number;
  setPlaybackRate(rate: number): void;
  getAvailablePlaybackRates(): number[];
  getVideoData(): { video_id: string | null; title: string };
  seekTo(seconds: number, allowSeekAhead: boolean): void;
  playVideo(): void;
  pauseVideo(): void;
  stopVideo(): void;
  loadVideoById(args: { videoId: string; startSeconds?: number; duration?: number } | string, startSeconds?: number): void;
  cueVideoById(args: { videoId: string; startSeconds?: number; duration?: number } | string, startSeconds?: number): void;
  mute(): void;
  unMute(): void;
  isMuted(): boolean;
  setVolume(volume: number): void;
  getVolume(): number;
  addEventListener(name: string, listener: (event: { target: SimPlayer; data: unknown }) => void): void;
  removeEventListener(name: string, listener: (event: { target: SimPlayer; data: unknown }) => void): void;
  destroy(): void;
}
