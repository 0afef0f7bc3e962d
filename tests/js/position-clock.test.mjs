// The media player's position clock (clients/js/media-player.js PositionClock): learning,
// from reads alone, that an element holds `currentTime` between updates, and placing the
// position between them; an element that moves on every read is passed through.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { PositionClock, POSITION_CLOCK_TIMINGS } from '../../clients/js/media-player.js';

/** An element updated every `periodMs` (0: on every read), started at wall 0 from 10 s, at `rate`. */
function element(periodMs, rate = 1) {
  const truth = (at) => 10 + (rate * at) / 1000;
  const read = (at) => (periodMs === 0 ? truth(at) : truth(Math.floor(at / periodMs) * periodMs));
  return { truth, read, rate };
}

/** Feeds `clock` reads every `everyMs` (plus a little jitter) from `from` to `to` ms. */
function feed(clock, el, from, to, everyMs = POSITION_CLOCK_TIMINGS.sampleMs) {
  let at = from;
  let k = 0;
  while (at < to) {
    clock.observe(el.read(at), at, el.rate, true);
    k += 1;
    at += everyMs + ((k * 7) % 3) * 0.37; // reads drift against the updates, as timers do
  }
}

test('an element that holds its position 40 ms at a time is learned stepped, and read between updates', () => {
  const clock = new PositionClock();
  const el = element(40);
  feed(clock, el, 0, 1000);
  assert.equal(clock.stepped, true);
  assert.ok(Math.abs(clock.periodMs - 40) <= POSITION_CLOCK_TIMINGS.sampleMs, `period ${clock.periodMs}`);
  // A raw read lags by up to 40 ms; the clock's is within a couple of ms at any phase.
  let worstRaw = 0;
  let worst = 0;
  for (let at = 1000; at < 1080; at += 3.3) {
    worstRaw = Math.max(worstRaw, el.truth(at) - el.read(at));
    worst = Math.max(worst, Math.abs(clock.position(el.read(at), at, el.rate, true) - el.truth(at)));
  }
  assert.ok(worstRaw > 0.03, `raw reads lag up to ${worstRaw}`);
  assert.ok(worst < 0.003, `clock within ${worst * 1000} ms`);
});

test('at another rate the extrapolation follows the rate, and a new rate starts a new run', () => {
  const clock = new PositionClock();
  feed(clock, element(40), 0, 600);
  const fast = element(40, 1.25);
  feed(clock, fast, 600, 1200);
  const at = 1217;
  assert.ok(Math.abs(clock.position(fast.read(at), at, 1.25, true) - fast.truth(at)) < 0.003);
});

test('a stalled stepped element is not played on past one and a half update periods', () => {
  const clock = new PositionClock();
  const el = element(40);
  feed(clock, el, 0, 800);
  const held = el.read(800);
  const pos = clock.position(held, 1500, 1, true);
  assert.ok(pos - held <= 0.04 * POSITION_CLOCK_TIMINGS.maxPeriods + 1e-9, `extrapolated ${pos - held}`);
});

test('an element that moves on every read is passed through untouched', () => {
  const clock = new PositionClock();
  const el = element(0);
  feed(clock, el, 0, 500);
  assert.equal(clock.stepped, false);
  assert.equal(clock.learning(), false);
  assert.equal(clock.position(el.read(600), 600, 1, true), el.read(600));
});

test('a start-up that stands still before it moves is not taken for a stepped element', () => {
  const clock = new PositionClock();
  for (let at = 0; at < 120; at += 7) clock.observe(10, at, 1, true); // "playing", not moving yet
  const el = element(0);
  feed(clock, { ...el, read: (at) => el.read(at - 120) }, 120, 600);
  assert.equal(clock.stepped, false);
});

test('paused, or after a seek, the read itself is the position', () => {
  const clock = new PositionClock();
  const el = element(40);
  feed(clock, el, 0, 600);
  assert.equal(clock.position(12.5, 610, 1, false), 12.5);
  // A jump back (a seek): a new run, nothing to extrapolate from yet.
  assert.equal(clock.position(3, 620, 1, true), 3);
});
