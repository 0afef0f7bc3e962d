// Starting together, in real headless Chromium: listener pages on real decoded media
// (WAV tones served with --media-dir, played by the page's media element player) and
// on the simulated player. The room waits for the pages' readiness reports (the ready
// gate) and schedules the start a lead ahead; every page starts its player at
// `starts_at` by the server clock. The start skew (players at one instant shortly
// after the start) is printed; the bound asserted is generous (a loaded 2-core
// machine), the figure itself is bench/sync.mjs's.
//
// A page whose readiness reports never arrive (its POSTs blocked: a frozen or very
// slow page) does not hold the room past the gate's deadline.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import {
  startServer, launchBrowser, openPage, waitFor, joinAsListener, api, fmtMs,
} from './helpers.mjs';
import { mediaDir } from './fixtures/media.mjs';
import { measureStart, seeksAfterStart } from './start-skew.mjs';

const SKEW_BOUND_MS = 100;
const LEAD_MS = 500;
const DEADLINE_MS = 4000;

let server;
let browser;
let media;
const pages = [];

before(async () => {
  media = mediaDir({ 'a.wav': { seconds: 30, freq: 440 }, 'b.wav': { seconds: 30, freq: 660 } });
  server = await startServer('start', [
    '--media-dir', media.dir, '--start-lead-ms', String(LEAD_MS), '--gate-deadline-ms', String(DEADLINE_MS),
  ]);
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
  if (media) media.remove();
});

async function newRoom() {
  const res = await api(server.url, 'POST', '/api/rooms', {});
  assert.equal(res.status, 201);
  return { roomId: res.body.room_id, token: res.body.host_token };
}

async function command(room, body) {
  const res = await api(server.url, 'POST', `/api/rooms/${room.roomId}/commands`, body, room.token);
  assert.equal(res.status, 200, `${JSON.stringify(body)}: ${JSON.stringify(res.body)}`);
  return res.body;
}

/** Records the causes of every `state` a page receives from now on. */
async function recordCauses(page) {
  await page.evaluate(() => {
    window.__causes = [];
    window.syncroom.client.addEventListener('state', (e) => window.__causes.push(e.detail.cause));
  });
}
const causes = (page) => page.evaluate(() => window.__causes.slice());

async function listeners(room, n, query) {
  const joined = [];
  for (let i = 0; i < n; i += 1) {
    const page = await openPage(browser);
    pages.push(page);
    await joinAsListener(page, server.url, room.roomId, `L${i + 1}`, { query });
    await recordCauses(page);
    joined.push(page);
  }
  return joined;
}

test('three media element pages report ready and start on the same beat', { timeout: 90000 }, async (t) => {
  const room = await newRoom();
  const three = await listeners(room, 3, '?player=sim');
  await command(room, { type: 'load', media_url: '/media/a.wav' });
  const start = await measureStart(three);
  const seeks = await seeksAfterStart(three, start);
  t.diagnostic(`media, 3 pages: start skew ${fmtMs(start.skewMs / 1000)}; player - room ${start.vsRoomMs.map((ms) => fmtMs(ms / 1000)).join(', ')}; `
    + `corrective seeks in the first 2 s ${seeks.join(', ')}; modes ${start.modes.join(', ')}; `
    + `start latencies ${start.startLatencies.map((s) => fmtMs(s)).join(', ')}`);
  // The gate opened on the pages' reports, before its deadline.
  assert.ok((await causes(three[0])).includes('ready'), `causes ${await causes(three[0])}`);
  assert.ok(start.skewMs <= SKEW_BOUND_MS, `start skew ${start.skewMs.toFixed(1)} ms`);
  for (const page of three) {
    assert.equal(await page.evaluate(() => window.syncroom.state().paused), false);
    assert.deepEqual(page.errors, []);
  }
});

test('two simulated players start on the same beat after play', { timeout: 60000 }, async (t) => {
  const room = await newRoom();
  await command(room, { type: 'load', video_id: 'dQw4w9WgXcQ', paused: true, duration: 120 });
  const two = await listeners(room, 2, '?player=sim');
  await command(room, { type: 'play', position: 10 });
  const start = await measureStart(two);
  t.diagnostic(`sim, 2 pages: start skew ${fmtMs(start.skewMs / 1000)}; player - room ${start.vsRoomMs.map((ms) => fmtMs(ms / 1000)).join(', ')}`);
  assert.ok(start.skewMs <= SKEW_BOUND_MS, `start skew ${start.skewMs.toFixed(1)} ms`);
});

test('a page whose reports never arrive does not hold the room past the deadline', { timeout: 60000 }, async (t) => {
  const room = await newRoom();
  // Everyone must be ready: the frozen page alone keeps the quorum from being met.
  await command(room, { type: 'ready_gate', quorum: 100, deadline_ms: DEADLINE_MS });
  const three = await listeners(room, 3, '?player=sim');
  let blocked = 0;
  await three[2].route('**/api/rooms/*/ready', (route) => { blocked += 1; return route.abort(); });
  const loaded = await command(room, { type: 'load', media_url: '/media/b.wav' });
  const gate = loaded.room.state.ready_gate;
  assert.equal(typeof gate, 'number', 'the load opened a gate');
  assert.equal(loaded.room.state.starts_at, loaded.room.state.updated_at + DEADLINE_MS + LEAD_MS);
  await waitFor(async () => {
    const st = (await api(server.url, 'GET', `/api/rooms/${room.roomId}`)).body.state;
    return !st.paused;
  }, { timeout: DEADLINE_MS + LEAD_MS + 10000, what: 'the room to start' });
  const st = (await api(server.url, 'GET', `/api/rooms/${room.roomId}`)).body.state;
  // It started at the deadline (plus the lead), not later, and not on a quorum.
  assert.equal(st.updated_at, loaded.room.state.starts_at);
  assert.ok(!(await causes(three[0])).includes('ready'));
  assert.ok(blocked >= 1, 'the frozen page tried to report');
  // The frozen page plays along anyway.
  await waitFor(() => three[2].evaluate(() => !window.syncroom.state().paused && window.syncroom.playerPosition() > 0.2),
    { what: 'the frozen page to play' });
  t.diagnostic(`deadline start: ${blocked} blocked report(s); the room started at updated_at + ${DEADLINE_MS} + ${LEAD_MS} ms`);
});
