// Unit tests of what a page's sync report says (clients/js/sync-report.js).
// Run: node --test tests/js/
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { stalled } from '../../clients/js/sync-report.js';

test('a playing page reports its readings, and nothing without them', () => {
  assert.deepEqual(stalled({ p50: 3, p95: 9, samples: 20 }, { buffering: false, driftMs: 4 }),
    { p50: 3, p95: 9, buffering: false });
  assert.equal(stalled(null, { buffering: false, driftMs: 400 }), null);
  assert.equal(stalled(null, null), null);
});

test('a stalled page reports buffering with how far off it is now, readings or not', () => {
  // Its readings are left out while it buffers: the drift now says how far behind it is.
  assert.deepEqual(stalled(null, { buffering: true, driftMs: -1250 }), { p50: 1250, p95: 1250, buffering: true });
  // Readings from before the stall keep their p50; the p95 is at least the drift now.
  assert.deepEqual(stalled({ p50: 3, p95: 9, samples: 20 }, { buffering: true, driftMs: 700 }),
    { p50: 3, p95: 700, buffering: true });
  assert.deepEqual(stalled({ p50: 30, p95: 900, samples: 20 }, { buffering: true, driftMs: 70 }),
    { p50: 30, p95: 900, buffering: true });
  // A drift it cannot tell is 0, never NaN (the server would refuse it).
  assert.deepEqual(stalled(null, { buffering: true, driftMs: null }), { p50: 0, p95: 0, buffering: true });
});
