// A listener whose stream the server keeps ending (a 3 s maximum stream age)
// resumes with Last-Event-ID each time: it stays in sync and misses nothing —
// every chat message sent around the reconnects appears exactly once, in order.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import {
  startServer, launchBrowser, openPage, screenshot, probe, waitFor, joinAsListener, api, fmtMs,
} from './helpers.mjs';

let server;
let browser;

before(async () => {
  server = await startServer('resume', [
    '--max-stream-age', '3', '--retry-ms', '200', '--keepalive', '1',
    '--chat-per-minute', '6000', '--chat-burst', '1000',
  ]);
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
});

test('a listener whose stream the server ends resumes, stays in sync and misses nothing', { timeout: 90000 }, async (t) => {
  const created = await api(server.url, 'POST', '/api/rooms', { name: 'Resume room', video_id: 'dQw4w9WgXcQ' });
  assert.equal(created.status, 201);
  const { room_id: roomId, host_token: token } = created.body;
  const command = async (body) => {
    const res = await api(server.url, 'POST', `/api/rooms/${roomId}/commands`, body, token);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body;
  };
  await command({ type: 'duration', duration: 600 });
  await command({ type: 'play', position: 10 });

  const page = await openPage(browser);
  await joinAsListener(page, server.url, roomId, 'Resuming Rae');
  // The simulated player plays for the room's duration (10:00), not a made-up one,
  // and draws no transport of its own: one play button on the page.
  await waitFor(() => page.evaluate(() => window.syncroom.client.sync.player.getDuration() === 600),
    { what: "the simulated player to take the room's duration" });
  // The transport is redrawn every 250 ms: wait for the next redraw, then read it.
  await waitFor(async () => (await page.locator('#time-total').textContent()) === '10:00',
    { what: 'the transport to show 10:00' });
  assert.equal(await page.locator('#time-total').textContent(), '10:00');
  // (A listener's own is hidden in a host room: counted whether shown or not.)
  assert.equal(await page.locator('button[aria-label="Play"], button[aria-label="Pause"]').count(), 1, 'one play/pause button');
  await page.evaluate(() => {
    window.__connection = [];
    window.syncroom.client.addEventListener('connection', (e) => window.__connection.push(e.detail.status));
  });

  // Chat and commands spread over ~9 s: three or more stream lifetimes.
  const sent = [];
  let lastCommandAt = Date.now();
  let worstDrift = 0;
  let samples = 0;
  for (let i = 0; i < 36; i += 1) {
    const text = `message ${String(i).padStart(2, '0')} <i>${i}</i>`;
    const res = await api(server.url, 'POST', `/api/rooms/${roomId}/chat`, { name: 'Hal', text });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    sent.push(text);
    if (i === 12) { await command({ type: 'seek', position: 120 }); lastCommandAt = Date.now(); }
    if (i === 20) { await command({ type: 'pause' }); lastCommandAt = Date.now(); }
    if (i === 26) { await command({ type: 'play' }); lastCommandAt = Date.now(); }
    // Between commands (1 s after each, the sync window), the listener must stay in sync,
    // reconnects or not.
    const p = await probe(page);
    if (Date.now() - lastCommandAt > 1000) {
      samples += 1;
      worstDrift = Math.max(worstDrift, Math.abs(p.player - p.room));
    }
    await new Promise((r) => setTimeout(r, 250));
  }

  const room = (await api(server.url, 'GET', `/api/rooms/${roomId}`)).body;
  // (The stream may be between two lives right now: wait for it to be live again.)
  await waitFor(() => page.evaluate((v) => window.syncroom.connected && window.syncroom.stats().lastEventId === v, room.version),
    { what: `the listener to be live at version ${room.version}` });

  const seen = await page.evaluate(() => ({
    dom: [...document.querySelectorAll('#chat-list .chat-text')].map((n) => n.textContent),
    stats: window.syncroom.stats(),
    connection: window.__connection,
    pill: document.getElementById('conn-text').textContent,
    live: window.syncroom.connected,
  }));
  t.diagnostic(`stream opens ${seen.stats.opens}, snapshots ${seen.stats.snapshots}, duplicates ${seen.stats.duplicates}, gaps ${seen.stats.gaps}; `
    + `worst drift between commands ${fmtMs(worstDrift)} over ${samples} samples`);

  assert.ok(seen.stats.opens >= 3, `the server ended the stream and the client reconnected (opens: ${seen.stats.opens})`);
  assert.ok(seen.connection.includes('reconnecting') && seen.connection.lastIndexOf('live') > seen.connection.indexOf('reconnecting'),
    `connection went reconnecting → live: ${seen.connection}`);
  // (A stream lives 3 s: it may be between two lives at this very moment.)
  assert.equal(seen.pill, seen.live ? 'Live' : 'Reconnecting…', 'the page shows the connection state');
  assert.deepEqual(seen.dom, sent, 'every chat message exactly once, in order');
  assert.equal(seen.stats.snapshots, 1, 'reconnects resumed by replay (Last-Event-ID), not with a fresh snapshot');
  assert.equal(seen.stats.gaps, 0, 'event ids continue with no gap');
  assert.equal(seen.stats.duplicates, 0, 'no event replayed twice');
  assert.ok(samples >= 12, `enough samples (${samples})`);
  assert.ok(worstDrift <= 0.1, `stayed within 100 ms of the room across reconnects (worst ${fmtMs(worstDrift)})`);

  const p = await probe(page);
  assert.deepEqual({ ...p.state }, room.state, 'the listener holds the server state');
  assert.ok(Math.abs(p.player - p.room) <= 0.1);
  await screenshot(page, 'listener-after-resume');
  assert.deepEqual(page.errors, []);

  // The host closes the room: the listener stops for good and says so.
  const del = await api(server.url, 'DELETE', `/api/rooms/${roomId}`, undefined, token);
  assert.equal(del.status, 204);
  await waitFor(() => page.evaluate(() => !window.syncroom.connected && document.getElementById('conn-text').textContent === 'Closed'),
    { what: 'the listener to show the room closed' });
  const banner = await page.locator('#closed-banner').textContent();
  assert.match(banner, /closed/i);
  // Nobody watches a closed room: the count does not keep its old number.
  assert.equal(await page.locator('#listeners-count').textContent(), '0');
  const opensAtClose = (await page.evaluate(() => window.syncroom.stats())).opens;
  await new Promise((r) => setTimeout(r, 1500)); // longer than the retry delay: no reconnect may follow
  assert.equal((await page.evaluate(() => window.syncroom.stats())).opens, opensAtClose, 'no reconnect after closed');
  await screenshot(page, 'listener-room-closed');
});

test('a link to a room that does not exist says so', { timeout: 30000 }, async () => {
  const page = await openPage(browser);
  await page.goto(`${server.url}/r/no-such-room?player=sim`);
  await page.getByRole('heading', { name: 'Room not found' }).waitFor();
  assert.deepEqual(page.errors.filter((e) => !/404/.test(e)), []);
});

test('a stream refused at capacity (503) is retried until a slot frees; a room lost in a restart (404) stops the client', { timeout: 90000 }, async (t) => {
  const small = await startServer('capacity', ['--max-connections', '1', '--retry-ms', '200']);
  let restarted = null;
  try {
    const created = await api(small.url, 'POST', '/api/rooms', { name: 'Tiny', video_id: 'dQw4w9WgXcQ' });
    const { room_id: roomId, host_token: token } = created.body;
    await api(small.url, 'POST', `/api/rooms/${roomId}/commands`, { type: 'play', position: 5 }, token);

    const first = await openPage(browser);
    await joinAsListener(first, small.url, roomId, 'First');

    const second = await openPage(browser);
    await second.goto(`${small.url}/r/${roomId}?player=sim`);
    await second.getByRole('textbox', { name: 'Your name' }).fill('Second');
    await second.getByRole('button', { name: 'Join & watch' }).click();
    await waitFor(() => second.evaluate(() => document.getElementById('conn-text').textContent === 'Reconnecting…'),
      { what: 'the refused listener to show it is reconnecting' });
    assert.equal(await second.evaluate(() => window.syncroom.connected), false);

    // The first listener leaves: the second gets the slot on one of its retries.
    const freed = Date.now();
    await first.context().close();
    await waitFor(async () => {
      const p = await probe(second);
      return p && p.connected && p.state && p.health.mode === 'in-sync' && Math.abs(p.player - p.room) < 0.1;
    }, { timeout: 40000, what: 'the second listener to get in once a slot is free' });
    t.diagnostic(`refused listener got in ${Date.now() - freed} ms after a slot freed`);

    // The server restarts: its rooms (in memory) are gone; the stream's retry meets 404.
    await small.stop();
    restarted = await startServer('capacity-restarted', ['--max-connections', '1'], { port: small.port });
    await waitFor(() => second.evaluate(() => document.getElementById('conn-text').textContent === 'Closed'),
      { timeout: 40000, what: 'the client to stop on 404' });
    assert.match(await second.locator('#closed-banner').textContent(), /no longer exists/);
    await screenshot(second, 'listener-room-gone');
  } finally {
    if (restarted) await restarted.stop();
    await small.stop();
  }
});

test("a late joiner's page shows the chat said before it joined, once, also after reconnects and a resync", { timeout: 60000 }, async () => {
  const created = await api(server.url, 'POST', '/api/rooms', { name: 'Late room' });
  assert.equal(created.status, 201);
  const roomId = created.body.room_id;
  const said = ['first!', 'the drop at 1:02', 'who made this?'];
  for (const text of said) {
    const res = await api(server.url, 'POST', `/api/rooms/${roomId}/chat`, { name: 'Early Ed', text });
    assert.equal(res.status, 200, JSON.stringify(res.body));
  }
  const page = await openPage(browser);
  await joinAsListener(page, server.url, roomId, 'Late Lou');
  const shown = () => page.locator('#chat-list .chat-text').allTextContents();
  await waitFor(async () => (await shown()).length >= said.length, { what: 'the chat history' });
  assert.deepEqual(await shown(), said);
  // The server ends the stream every 3 s: after a reconnect nothing is shown twice.
  const opens = (await page.evaluate(() => window.syncroom.stats())).opens;
  await waitFor(async () => (await page.evaluate(() => window.syncroom.stats())).opens > opens,
    { timeout: 20000, what: 'a reconnect' });
  // A resync snapshot (as after falling behind) carries the same history: shown once.
  const room = (await api(server.url, 'GET', `/api/rooms/${roomId}`)).body;
  await page.evaluate((r) => window.syncroom.client._onIdEvent('snapshot', { data: JSON.stringify(r), lastEventId: String(r.version) }), room);
  const live = await api(server.url, 'POST', `/api/rooms/${roomId}/chat`, { name: 'Early Ed', text: 'welcome Lou' });
  assert.equal(live.status, 200);
  await waitFor(async () => (await shown()).length > said.length, { what: 'the live message' });
  assert.deepEqual(await shown(), [...said, 'welcome Lou']);
  assert.deepEqual((await page.evaluate(() => window.syncroom.chatMessages())).map((m) => m.text), [...said, 'welcome Lou']);
  await page.context().close();
});
