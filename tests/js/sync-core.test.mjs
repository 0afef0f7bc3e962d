// Unit tests of the browser client's pure functions (clients/js/sync-core.js).
// Run: node --test tests/js/
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';

import {
  roomPosition, effectiveState, estimateOffset, sampleOffset, decideCorrection, DEFAULT_CORRECTION,
  parseYouTube, parseTimestamp, isVideoId, clampRate, formatTime,
} from '../../clients/js/sync-core.js';

const close = (actual, expected, eps = 1e-9) =>
  assert.ok(Math.abs(actual - expected) <= eps, `${actual} is not within ${eps} of ${expected}`);

describe('a pending start (starts_at): paused until the moment, playing from it after', () => {
  const pending = { video_id: 'dQw4w9WgXcQ', position: 30, paused: true, rate: 2, duration: 212, updated_at: 1_000_000, starts_at: 1_000_300, ready_gate: null };

  test('before the moment the position waits where the start will be, for old and new clients alike', () => {
    assert.equal(roomPosition(pending, 1_000_299), 30);
    assert.equal(effectiveState(pending, 1_000_299), pending);
  });

  test('from the moment on it plays from starts_at, as the server\'s start event will say', () => {
    const st = effectiveState(pending, 1_001_300);
    assert.equal(st.paused, false);
    assert.equal(st.updated_at, 1_000_300);
    assert.equal(st.starts_at, null);
    close(roomPosition(pending, 1_001_300), 32, 1e-9);
  });
});

describe('roomPosition: the current position as API.md defines it', () => {
  const base = { video_id: 'dQw4w9WgXcQ', position: 42.5, paused: false, rate: 1, duration: 212, updated_at: 1_000_000 };

  test('a paused room stays at its position whatever the clock says', () => {
    const st = { ...base, paused: true };
    assert.equal(roomPosition(st, 1_000_000), 42.5);
    assert.equal(roomPosition(st, 9_000_000), 42.5);
  });

  test('a playing room advances by elapsed server time at rate 1', () => {
    close(roomPosition(base, 1_000_000), 42.5);
    close(roomPosition(base, 1_001_500), 44.0);
    close(roomPosition(base, 1_000_001), 42.501);
  });

  for (const rate of [0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2]) {
    test(`rate ${rate}: elapsed time is scaled by the rate`, () => {
      const st = { ...base, rate };
      close(roomPosition(st, 1_010_000), 42.5 + 10 * rate, 1e-9);
    });
  }

  test('clamped to the duration when it is known', () => {
    assert.equal(roomPosition(base, 1_000_000 + 500_000), 212);
    assert.equal(roomPosition({ ...base, paused: true, position: 300 }, 1_000_000), 212);
    assert.equal(roomPosition({ ...base, rate: 2 }, 1_000_000 + 100_000), 212);
  });

  test('not clamped above when the duration is unknown', () => {
    close(roomPosition({ ...base, duration: null }, 1_000_000 + 500_000), 542.5);
  });

  test('clamped to 0 below (a server clock read before updated_at)', () => {
    const st = { ...base, position: 0.2 };
    assert.equal(roomPosition(st, 1_000_000 - 5_000), 0);
  });

  test('a missing state is position 0', () => {
    assert.equal(roomPosition(null, 123), 0);
  });

  test('a room with no video yet (duration null, position 0, paused) is at 0', () => {
    assert.equal(roomPosition({ video_id: null, position: 0, paused: true, rate: 1, duration: null, updated_at: 5 }, 1e12), 0);
  });
});

describe('estimateOffset: NTP style, the lowest round trip wins', () => {
  test('one sample: offset is server time minus the midpoint', () => {
    const s = { sentAt: 1000, serverTime: 6050, receivedAt: 1100 };
    assert.deepEqual(sampleOffset(s), { offset: 5000, rtt: 100 });
    assert.deepEqual(estimateOffset([s]), { offset: 5000, rtt: 100, error: 50, samples: 1 });
  });

  test('picks the sample with the lowest round trip, not the average', () => {
    const samples = [
      { sentAt: 0, serverTime: 300 + 200, receivedAt: 400 },   // rtt 400, offset 300 (queued on the way back)
      { sentAt: 1000, serverTime: 1000 + 10 + 250, receivedAt: 1020 }, // rtt 20, offset 250
      { sentAt: 2000, serverTime: 2000 + 90 + 150, receivedAt: 2180 }, // rtt 180, offset 150
    ];
    const est = estimateOffset(samples);
    assert.equal(est.rtt, 20);
    assert.equal(est.offset, 250);
    assert.equal(est.error, 10);
    assert.equal(est.samples, 3);
  });

  test('a negative offset (a client clock ahead of the server)', () => {
    const est = estimateOffset([{ sentAt: 10_000, serverTime: 7_005, receivedAt: 10_010 }]);
    assert.equal(est.offset, -3000);
  });

  test('ignores impossible samples (negative or non-finite round trip)', () => {
    const est = estimateOffset([
      { sentAt: 100, serverTime: 0, receivedAt: 50 },
      { sentAt: 0, serverTime: NaN, receivedAt: 10 },
      { sentAt: 0, serverTime: 1005, receivedAt: 10 },
    ]);
    assert.deepEqual(est, { offset: 1000, rtt: 10, error: 5, samples: 1 });
  });

  test('no usable sample: null', () => {
    assert.equal(estimateOffset([]), null);
    assert.equal(estimateOffset(undefined), null);
  });

  test('the first of equally fast samples is kept', () => {
    const est = estimateOffset([
      { sentAt: 0, serverTime: 105, receivedAt: 10 },
      { sentAt: 100, serverTime: 305, receivedAt: 110 },
    ]);
    assert.equal(est.offset, 100);
  });
});

describe('decideCorrection: nothing, nudge or seek', () => {
  const o = DEFAULT_CORRECTION;

  test('inside the dead band: nothing, at the room rate', () => {
    assert.deepEqual(decideCorrection({ drift: 0, paused: false, rate: 1 }), { action: 'none', rate: 1 });
    assert.deepEqual(decideCorrection({ drift: o.nudgeStart * 0.9, paused: false, rate: 1.5 }), { action: 'none', rate: 1.5 });
    assert.deepEqual(decideCorrection({ drift: -o.nudgeStart, paused: false, rate: 1 }), { action: 'none', rate: 1 });
  });

  test('a player behind the room speeds up, one ahead slows down', () => {
    const behind = decideCorrection({ drift: -0.1, paused: false, rate: 1 });
    assert.equal(behind.action, 'nudge');
    assert.ok(behind.rate > 1 && behind.rate <= 1 + o.maxNudge, `rate ${behind.rate}`);
    const ahead = decideCorrection({ drift: 0.1, paused: false, rate: 1 });
    assert.equal(ahead.action, 'nudge');
    assert.ok(ahead.rate < 1 && ahead.rate >= 1 - o.maxNudge, `rate ${ahead.rate}`);
  });

  test('the nudge is proportional, bounded by minNudge and maxNudge, relative to the room rate', () => {
    close(decideCorrection({ drift: -0.05, paused: false, rate: 1 }).rate, 1 + Math.min(o.maxNudge, 0.05 * o.nudgeGain));
    close(decideCorrection({ drift: -0.025, paused: false, rate: 1 }).rate, 1 + Math.max(o.minNudge, 0.025 * o.nudgeGain));
    close(decideCorrection({ drift: -0.01, paused: false, rate: 1, nudging: true }).rate, 1 + o.minNudge);
    close(decideCorrection({ drift: -0.9, paused: false, rate: 1 }).rate, 1 + o.maxNudge);
    close(decideCorrection({ drift: 0.9, paused: false, rate: 0.5 }).rate, 0.5 * (1 - o.maxNudge));
  });

  test('hysteresis: a nudge in progress goes on until nudgeStop', () => {
    const drift = (o.nudgeStart + o.nudgeStop) / 2;
    assert.equal(decideCorrection({ drift, paused: false, rate: 1, nudging: false }).action, 'none');
    assert.equal(decideCorrection({ drift, paused: false, rate: 1, nudging: true }).action, 'nudge');
    assert.equal(decideCorrection({ drift: o.nudgeStop / 2, paused: false, rate: 1, nudging: true }).action, 'none');
  });

  test('past the seek threshold: seek, at the room rate', () => {
    assert.deepEqual(decideCorrection({ drift: o.seekThreshold + 0.01, paused: false, rate: 1.25 }), { action: 'seek', rate: 1.25 });
    assert.deepEqual(decideCorrection({ drift: -30, paused: false, rate: 1 }), { action: 'seek', rate: 1 });
  });

  test('right after a state event the tighter eventSeekThreshold applies', () => {
    assert.equal(decideCorrection({ drift: 0.3, paused: false, rate: 1 }).action, 'nudge');
    assert.equal(decideCorrection({ drift: 0.3, paused: false, rate: 1, afterEvent: true }).action, 'seek');
    assert.equal(decideCorrection({ drift: 0.02, paused: false, rate: 1, afterEvent: true }).action, 'none');
  });

  test('paused: seek beyond pausedTolerance, else nothing (rate cannot help)', () => {
    assert.deepEqual(decideCorrection({ drift: 0.5, paused: true, rate: 1 }), { action: "seek", rate: 1 });
    assert.deepEqual(decideCorrection({ drift: o.pausedTolerance / 2, paused: true, rate: 1 }), { action: 'none', rate: 1 });
  });

  test('options override the thresholds', () => {
    const opts = { seekThreshold: 5, maxNudge: 0.1, nudgeGain: 1 };
    const d = decideCorrection({ drift: -2, paused: false, rate: 1 }, opts);
    assert.equal(d.action, 'nudge');
    close(d.rate, 1.1);
    assert.equal(decideCorrection({ drift: -6, paused: false, rate: 1 }, opts).action, 'seek');
  });

  test('at the edge of the allowed rates a nudge that cannot move seeks instead', () => {
    assert.deepEqual(decideCorrection({ drift: -0.5, paused: false, rate: 2 }), { action: 'seek', rate: 2 });
    assert.equal(decideCorrection({ drift: 0.5, paused: false, rate: 2 }).action, 'nudge');
    assert.deepEqual(decideCorrection({ drift: 0.5, paused: false, rate: 0.25 }), { action: 'seek', rate: 0.25 });
  });

  test('a non-finite drift changes nothing', () => {
    assert.deepEqual(decideCorrection({ drift: NaN, paused: false, rate: 1 }), { action: 'none', rate: 1 });
  });

  test('clampRate keeps rates in [0.25, 2]', () => {
    assert.equal(clampRate(3), 2);
    assert.equal(clampRate(0.1), 0.25);
    assert.equal(clampRate(1.04), 1.04);
  });
});

describe('parseYouTube: the link forms people paste', () => {
  const id = 'dQw4w9WgXcQ';
  const cases = [
    [id, null],
    [`  ${id}  `, null],
    [`https://www.youtube.com/watch?v=${id}`, null],
    [`http://youtube.com/watch?v=${id}&list=PL123&index=2`, null],
    [`www.youtube.com/watch?v=${id}`, null],
    [`youtube.com/watch?feature=share&v=${id}`, null],
    [`https://m.youtube.com/watch?v=${id}`, null],
    [`https://music.youtube.com/watch?v=${id}&si=abc`, null],
    [`https://youtu.be/${id}`, null],
    [`youtu.be/${id}?si=xyz`, null],
    [`https://www.youtube.com/embed/${id}?autoplay=1`, null],
    [`https://www.youtube-nocookie.com/embed/${id}`, null],
    [`https://www.youtube.com/shorts/${id}`, null],
    [`https://youtube.com/shorts/${id}?feature=share`, null],
    [`https://www.youtube.com/live/${id}`, null],
    [`https://www.youtube.com/v/${id}`, null],
    [`https://youtu.be/${id}?t=42`, 42],
    [`https://www.youtube.com/watch?v=${id}&t=1m30s`, 90],
    [`https://www.youtube.com/watch?v=${id}&t=1h2m3s`, 3723],
    [`https://www.youtube.com/embed/${id}?start=15`, 15],
    [`https://www.youtube.com/watch?v=${id}#t=2m`, 120],
  ];
  for (const [input, start] of cases) {
    test(`${input.trim()} → ${id}${start === null ? '' : ` @${start}s`}`, () => {
      assert.deepEqual(parseYouTube(input), { videoId: id, start });
    });
  }

  test('ids with - and _ survive', () => {
    assert.deepEqual(parseYouTube('https://youtu.be/a-b_c-d_e-f'), { videoId: 'a-b_c-d_e-f', start: null });
  });

  const rejects = [
    '', '   ', 'hello', 'dQw4w9WgXc', 'dQw4w9WgXcQQ', 'dQw4w9WgX!Q',
    'https://vimeo.com/123456789', 'https://example.com/watch?v=dQw4w9WgXcQ',
    'https://www.youtube.com/watch?v=short', 'https://www.youtube.com/watch',
    'https://www.youtube.com/channel/UC38IQsAvIsxxjztdMZQtwHA', 'https://youtu.be/',
    'javascript:alert(1)', null, 42,
  ];
  for (const input of rejects) {
    test(`rejects ${JSON.stringify(input)}`, () => {
      assert.equal(parseYouTube(input), null);
    });
  }

  test('isVideoId checks the 11-character alphabet', () => {
    assert.ok(isVideoId('dQw4w9WgXcQ'));
    assert.ok(!isVideoId('dQw4w9WgXc'));
    assert.ok(!isVideoId('dQw4w9WgXc='));
  });
});

describe('parseTimestamp and formatTime', () => {
  test('seconds, suffixed seconds, h/m/s and colon forms', () => {
    assert.equal(parseTimestamp('90'), 90);
    assert.equal(parseTimestamp('12.5'), 12.5);
    assert.equal(parseTimestamp('45s'), 45);
    assert.equal(parseTimestamp('1m30s'), 90);
    assert.equal(parseTimestamp('2m'), 120);
    assert.equal(parseTimestamp('1h'), 3600);
    assert.equal(parseTimestamp('1:30'), 90);
    assert.equal(parseTimestamp('1:02:03'), 3723);
  });

  test('nonsense is null', () => {
    assert.equal(parseTimestamp(''), null);
    assert.equal(parseTimestamp(null), null);
    assert.equal(parseTimestamp('soon'), null);
    assert.equal(parseTimestamp('-5'), null);
  });

  test('formatTime', () => {
    assert.equal(formatTime(0), '0:00');
    assert.equal(formatTime(59.9), '0:59');
    assert.equal(formatTime(90), '1:30');
    assert.equal(formatTime(3723), '1:02:03');
    assert.equal(formatTime(NaN), '0:00');
  });
});

describe('decideCorrection: paused and starting players', () => {
  const o = DEFAULT_CORRECTION;

  test('paused, right after a change: exact (pausedTolerance)', () => {
    assert.equal(decideCorrection({ drift: 0.02, paused: true, rate: 1, afterEvent: true }).action, 'seek');
    assert.equal(decideCorrection({ drift: o.pausedTolerance / 2, paused: true, rate: 1, afterEvent: true }).action, 'none');
  });

  test('paused, periodic check: only a large slip is sought (pausedResync)', () => {
    assert.equal(decideCorrection({ drift: 0.02, paused: true, rate: 1 }).action, 'none');
    assert.equal(decideCorrection({ drift: -(o.pausedResync + 0.01), paused: true, rate: 1 }).action, 'seek');
  });

  test('starting: seek beyond startTolerance, never nudge', () => {
    assert.deepEqual(decideCorrection({ drift: -0.02, paused: false, rate: 1, starting: true }), { action: 'seek', rate: 1 });
    assert.deepEqual(decideCorrection({ drift: 0.005, paused: false, rate: 1, starting: true }), { action: 'none', rate: 1 });
    assert.deepEqual(decideCorrection({ drift: 0.5, paused: false, rate: 1.5, starting: true }), { action: 'seek', rate: 1.5 });
  });
});

describe('decideCorrection: a player that cannot take fine rates', () => {
  const o = DEFAULT_CORRECTION;

  test('never nudges; seeks beyond seekThresholdWithoutNudge', () => {
    assert.deepEqual(decideCorrection({ drift: 0.1, paused: false, rate: 1, canNudge: false }), { action: 'none', rate: 1 });
    assert.deepEqual(decideCorrection({ drift: -(o.seekThresholdWithoutNudge + 0.01), paused: false, rate: 1, canNudge: false }),
      { action: 'seek', rate: 1 });
  });

  test('after an event the tighter eventSeekThreshold still applies', () => {
    assert.equal(decideCorrection({ drift: 0.15, paused: false, rate: 1, canNudge: false, afterEvent: true }).action, 'seek');
  });
});

test('percentile is the nearest rank, as the server computes it', async () => {
  const { percentile } = await import('../../clients/js/sync-core.js');
  assert.equal(percentile([], 95), null);
  const forty = Array.from({ length: 40 }, (_, i) => i + 1);
  assert.equal(percentile(forty, 95), 38);
  assert.equal(percentile([3, 1, 70], 95), 70);
  assert.equal(percentile([5, 1, 3], 50), 3);
});

test('a DriftWindow leaves out the readings just after a deliberate change', async () => {
  const { DriftWindow } = await import('../../clients/js/sync-core.js');
  const w = new DriftWindow({ quietMs: 2000, keepMs: 60000 });
  assert.equal(w.add(0, 0.010), true);
  w.quiet(1000); // a seek by the room at t = 1 s
  assert.equal(w.add(1500, 0.900), false, 'the seek landing is not drift');
  assert.equal(w.add(2999, 0.400), false);
  assert.equal(w.add(3000, -0.020), true);
  assert.deepEqual(w.takeReport(), { p50: 10, p95: 20, samples: 2 });
  assert.equal(w.takeReport(), null, 'each reading is reported once');
  // The chart keeps the last minute, signed.
  assert.deepEqual(w.series(61_000).map((s) => s.ms), [-20]);
});
