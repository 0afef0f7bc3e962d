// Unit tests of the coarse-rate decision (sync-core.js decideCoarseCorrection): what a
// player that only plays YouTube's listed rates does about a drift.
// Run: node --test tests/js/
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';

import { decideCoarseCorrection, DEFAULT_CORRECTION } from '../../clients/js/sync-core.js';

const YT_RATES = [0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2];
const close = (actual, expected, eps = 1e-9) =>
  assert.ok(Math.abs(actual - expected) <= eps, `${actual} is not within ${eps} of ${expected}`);

describe('decideCoarseCorrection: a burst at a listed rate, or a seek, whichever disturbs less', () => {
  test('a drift within coarseTolerance is left alone, at the room rate', () => {
    for (const drift of [0, DEFAULT_CORRECTION.coarseTolerance, -DEFAULT_CORRECTION.coarseTolerance, 0.01]) {
      assert.deepEqual(decideCoarseCorrection({ drift, rate: 1, rates: YT_RATES }), { action: 'none', rate: 1, seconds: 0 });
    }
  });

  test('behind: a burst at the next listed rate above, for |drift| / |burst - room| seconds', () => {
    const d = decideCoarseCorrection({ drift: -0.1, rate: 1, rates: YT_RATES });
    assert.equal(d.action, 'burst');
    assert.equal(d.rate, 1.25);
    close(d.seconds, 0.1 / 0.25);
  });

  test('ahead: a burst at the next listed rate below', () => {
    const d = decideCoarseCorrection({ drift: 0.12, rate: 1, rates: YT_RATES });
    assert.equal(d.action, 'burst');
    assert.equal(d.rate, 0.75);
    close(d.seconds, 0.12 / 0.25);
  });

  test('the burst is relative to the room rate, not to 1', () => {
    const ahead = decideCoarseCorrection({ drift: 0.05, rate: 1.5, rates: YT_RATES });
    assert.equal(ahead.rate, 1.25);
    close(ahead.seconds, 0.2);
    const behind = decideCoarseCorrection({ drift: -0.05, rate: 1.5, rates: YT_RATES });
    assert.equal(behind.rate, 1.75);
  });

  test('rates need not be sorted, and unusable entries are ignored', () => {
    const d = decideCoarseCorrection({ drift: -0.1, rate: 1, rates: [2, 'x', NaN, 1.5, 1, 0.5, 9] });
    assert.equal(d.action, 'burst');
    assert.equal(d.rate, 1.5);
    close(d.seconds, 0.2);
  });

  test('no listed rate on the needed side (the room at 2x and behind): seek', () => {
    assert.equal(decideCoarseCorrection({ drift: -0.1, rate: 2, rates: YT_RATES }).action, 'seek');
    assert.equal(decideCoarseCorrection({ drift: 0.1, rate: 0.25, rates: YT_RATES }).action, 'seek');
    assert.equal(decideCoarseCorrection({ drift: 0.1, rate: 1, rates: [] }).action, 'seek');
  });

  test('a burst longer than maxBurstSeconds seeks instead', () => {
    const o = { maxBurstSeconds: 1 };
    assert.equal(decideCoarseCorrection({ drift: 0.2, rate: 1, rates: YT_RATES }, o).action, 'burst'); // 0.8 s
    const d = decideCoarseCorrection({ drift: 0.3, rate: 1, rates: YT_RATES }, o); // 1.2 s
    assert.deepEqual(d, { action: 'seek', rate: 1, seconds: 0 });
  });

  test('whichever disturbs less: a slow seek makes a longer burst worth it', () => {
    const o = { burstCostPerSecond: 0.2, seekCost: 0.2, maxBurstSeconds: 10 };
    // A 2 s burst costs 0.4 s: worse than an instant seek (0.2), better than a 0.5 s one (0.7).
    assert.equal(decideCoarseCorrection({ drift: 0.5, rate: 1, rates: YT_RATES, seekLatency: 0 }, o).action, 'seek');
    assert.equal(decideCoarseCorrection({ drift: 0.5, rate: 1, rates: YT_RATES, seekLatency: 0.5 }, o).action, 'burst');
  });

  test('beyond seekThreshold a seek, whatever the rates', () => {
    const d = decideCoarseCorrection({ drift: DEFAULT_CORRECTION.seekThreshold + 0.01, rate: 1, rates: YT_RATES, seekLatency: 2 });
    assert.equal(d.action, 'seek');
  });

  test('with the defaults, every drift a 100 ms p95 target cares about is a burst, not a seek', () => {
    for (const drift of [0.04, 0.1, 0.25, 0.5, -0.04, -0.1, -0.25, -0.5]) {
      assert.equal(decideCoarseCorrection({ drift, rate: 1, rates: YT_RATES, seekLatency: 0.2 }).action, 'burst', `drift ${drift}`);
    }
  });

  test('a burst closes exactly the drift it was asked to (no overshoot to oscillate on)', () => {
    for (const drift of [0.05, -0.07, 0.3, -0.6]) {
      const d = decideCoarseCorrection({ drift, rate: 1, rates: YT_RATES, seekLatency: 0.3 });
      assert.equal(d.action, 'burst', `drift ${drift}`);
      // Position gained relative to the room during the burst: (burst - room) * seconds.
      close((d.rate - 1) * d.seconds, -drift, 1e-9);
    }
  });

  test('a non-finite drift does nothing', () => {
    assert.equal(decideCoarseCorrection({ drift: NaN, rate: 1, rates: YT_RATES }).action, 'none');
  });

  test('with a pair cost, the burst is sized to end at 0 with it (behind: longer)', () => {
    const d = decideCoarseCorrection({ drift: -0.1, rate: 1, rates: YT_RATES, cost: () => 0.02 });
    assert.equal(d.rate, 1.25);
    close(d.seconds, 0.12 / 0.25);
    const ahead = decideCoarseCorrection({ drift: 0.1, rate: 1, rates: YT_RATES, cost: () => 0.02 });
    assert.equal(ahead.rate, 0.75);
    close(ahead.seconds, 0.08 / 0.25);
  });

  test('a lead smaller than the pair cost is closed by a short burst above, or left when shorter than minBurst', () => {
    const o = { coarseTolerance: 0.005 };
    const d = decideCoarseCorrection({ drift: 0.01, rate: 1, rates: YT_RATES, cost: () => 0.03 }, o);
    assert.equal(d.rate, 1.25);
    close(d.seconds, 0.08);
    const short = decideCoarseCorrection({ drift: 0.01, rate: 1, rates: YT_RATES, cost: () => 0.03, minBurst: 0.16 }, o);
    assert.equal(short.action, 'none', 'a 0.16 s burst either way would leave more');
  });
});
