// A page's sync report carries its player's length of the current item while the room
// does not know it (clients/js/sync-report.js), so the server can learn it from the
// listeners. The reports go to a real local HTTP server that records their bodies.
// Run: node --test tests/js/*.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';

import { SyncReporter, MAX_REPORTED_DURATION_S } from '../../clients/js/sync-report.js';
import { DriftWindow } from '../../clients/js/sync-core.js';

let server;
let baseUrl;
const bodies = [];

before(async () => {
  server = http.createServer((req, res) => {
    let text = '';
    req.on('data', (part) => { text += part; });
    req.on('end', () => {
      bodies.push(JSON.parse(text));
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ sync: { reporting: 1, in_sync: 1, drift_p95_ms: 1, behind: [] }, report_every_ms: 5000 }));
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${server.address().port}`;
});

after(() => new Promise((resolve) => server.close(resolve)));

/** Sends one report with some drift readings and `duration()`; answers the body the server got. */
async function reportWith(duration) {
  const window = new DriftWindow();
  for (let i = 0; i < 5; i += 1) window.add(1000 + i, 0.004);
  const reporter = new SyncReporter({
    roomId: 'r1', baseUrl, window, token: () => 'tok', kind: () => 'media', duration,
  });
  bodies.length = 0;
  await reporter.reportNow();
  reporter.stop();
  assert.equal(bodies.length, 1);
  return bodies[0];
}

test("a report carries the player's length of the item while the room does not know it", async () => {
  assert.equal((await reportWith(() => 212.4)).duration, 212.4);
});

test('no length, an unusable one or none asked for: the report goes without it', async () => {
  for (const fn of [() => null, () => 0, () => -3, () => NaN, () => Infinity, () => MAX_REPORTED_DURATION_S + 1, undefined]) {
    const body = await reportWith(fn);
    assert.equal('duration' in body, false, String(fn));
    assert.equal(body.stream_token, 'tok');
  }
});
