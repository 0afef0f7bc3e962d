/**
 * youtube-player.js — what keeping a YouTube IFrame API player (YT.Player) in step needs
 * beyond the defaults: pass {@link YOUTUBE_CORRECTION} as
 * `attachPlayer(ytPlayer, {correction: YOUTUBE_CORRECTION, listedRatesOnly: true})`.
 *
 * A YouTube player plays only the rates it lists (0.25 apart), so PlayerSync closes a drift by
 * a short burst at a neighbouring listed rate. Under the iframe is the browser's own media
 * stack, and a change of rate there costs position (Chromium's element takes a new rate late
 * and falls behind doing so): a burst sized by the rates alone lands off by that cost, and a
 * tolerance wide enough to stop chasing it leaves a steady offset. So the bursts are sized for
 * what each rate pair is learned to cost this player, and the tolerance is tight.
 *
 * @module youtube-player
 */

/** Correction thresholds for a YouTube player (keys of `DEFAULT_CORRECTION`, sync-core.js). */
export const YOUTUBE_CORRECTION = Object.freeze({
  /** Learn what a burst's rate pair costs the position, per room and listed rate, and size bursts for it. */
  coarseBurstCosts: true,
  /** Seconds of drift left alone (the default, 0.02, is what unsized bursts could hold). */
  coarseTolerance: 0.01,
  /** Seconds: no shorter burst (a rate asked and taken back sooner may never reach the position). */
  minBurstSeconds: 0.08,
  /**
   * Seconds a rate pair is taken to cost before this player's own outcomes say: what a change
   * of rate and back costs Chromium's media element (bench/element-start.mjs: 24 ms).
   */
  burstCostGuess: 0.02,
  /** After a burst: the rate back has reached the position well within this (ms; the default is 800). */
  burstSettleMs: 500,
});
