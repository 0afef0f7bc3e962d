// Sync health in real Chromium: each page charts its own drift
// over the last minute and reports it over its stream token; the host's page shows
// "N of M in sync", live: it follows the server's summary as pages join and leave.
// And the host sees who is behind: a listener whose media never
// arrives reports itself buffering, by name, and the room plays on without it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import {
  startServer, launchBrowser, openPage, screenshot, waitFor, joinAsListener, api,
} from './helpers.mjs';
import { mediaDir } from './fixtures/media.mjs';

let server;
let browser;
let media;

before(async () => {
  media = mediaDir({ 'tone.wav': { seconds: 60, freq: 440 } });
  // Reports every second, so the test sees several in a few seconds.
  server = await startServer('sync-health', ['--sync-report-interval', '1', '--media-dir', media.dir]);
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
  if (media) media.remove();
});

/** The room's summary as the server has it. */
async function serverSync(roomId) {
  const { status, body } = await api(server.url, 'GET', `/api/rooms/${roomId}`);
  assert.equal(status, 200);
  return body.sync;
}

/** Waits until the host page shows the server's summary for `reporting` reporters. */
async function hostShows(host, roomId, reporting) {
  return waitFor(async () => {
    const s = await serverSync(roomId);
    if (s.reporting !== reporting) return false;
    const shown = await host.evaluate(() => (document.getElementById('sync-pill').hidden ? null : document.getElementById('room-sync').textContent));
    return shown === `${s.in_sync} of ${s.reporting} in sync` && shown;
  }, { timeout: 20000, what: `the host to show the summary of ${reporting} reporters` });
}

/** A host page that creates a room named `title` and plays `item` in it (by the API). */
async function hostPlaying(title, item) {
  const host = await openPage(browser);
  await host.goto(`${server.url}/?player=sim`);
  await host.getByRole('textbox', { name: 'Room name' }).fill(title);
  await host.getByRole('textbox', { name: 'Your name' }).fill('Hostess');
  await host.getByRole('button', { name: 'Create room' }).click();
  await waitFor(() => host.evaluate(() => Boolean(window.syncroom && window.syncroom.connected && window.syncroom.isHost && window.syncroom.playerKind)),
    { what: 'the host to be live' });
  const roomId = await host.evaluate(() => window.syncroom.roomId);
  const token = await host.evaluate((id) => localStorage.getItem(`syncroom:host:${id}`), roomId);
  const load = await api(server.url, 'POST', `/api/rooms/${roomId}/commands`, { type: 'load', ...item, paused: false }, token);
  assert.equal(load.status, 200);
  return { host, roomId };
}

test('pages chart their drift and the host sees "N of M in sync", live', { timeout: 90000 }, async () => {
  const { host, roomId } = await hostPlaying('Sync health', { video_id: 'aaaaaaaaaaa', duration: 600 });

  const listeners = [];
  for (const name of ['Lee', 'Mo']) {
    const page = await openPage(browser);
    await joinAsListener(page, server.url, roomId, name);
    listeners.push(page);
  }

  // Host and both listeners report (the host plays too): three reporters, shown as the server counts them.
  const shown = await hostShows(host, roomId, 3);
  console.log(`# host shows "${shown}"`);

  // A listener's own chart: a labelled image of its readings over the last minute.
  const chart = await waitFor(() => listeners[0].evaluate(() => {
    const canvas = document.getElementById('drift-chart');
    const samples = Number(canvas.dataset.samples || 0);
    return samples >= 5 && {
      samples, role: canvas.getAttribute('role'), label: canvas.getAttribute('aria-label'),
      painted: canvas.toDataURL() !== Object.assign(document.createElement('canvas'), { width: canvas.width, height: canvas.height }).toDataURL(),
    };
  }), { timeout: 20000, what: 'the drift chart to have readings' });
  assert.equal(chart.role, 'img');
  assert.match(chart.label, /^Your drift from the room over the last minute: \d+ readings, at most \d+ ms, latest -?\d+ ms$/);
  assert.ok(chart.painted, 'the chart is drawn');
  await listeners[0].locator('#health').evaluate((d) => { d.open = true; });
  await screenshot(listeners[0], 'sync-health-listener');
  await screenshot(host, 'sync-health-host');

  // A listener leaves: its stream closes, it stops counting, and the host's page follows.
  await listeners[1].context().close();
  const after = await hostShows(host, roomId, 2);
  console.log(`# after one left, host shows "${after}"`);

  for (const page of [host, listeners[0]]) assert.deepEqual(page.errors, []);
});

test('a listener whose media stalls is named to the host as behind; the room plays on', { timeout: 90000 }, async () => {
  const { host, roomId } = await hostPlaying('Who is behind', { media_url: '/media/tone.wav' });

  // Lee's network never delivers the file: its media element waits for data forever.
  const lee = await openPage(browser);
  let held = 0;
  await lee.route('**/media/tone.wav', () => { held += 1; });
  await joinAsListener(lee, server.url, roomId, 'Lee');
  const mo = await openPage(browser);
  await joinAsListener(mo, server.url, roomId, 'Mo');

  // The server lists Lee as buffering, by name; the host's page says so.
  const behind = await waitFor(async () => {
    const s = await serverSync(roomId);
    const entry = s.behind.find((b) => b.name === 'Lee');
    return entry && entry.buffering && s;
  }, { timeout: 20000, what: 'the summary to list Lee as buffering' });
  assert.ok(held >= 1, 'Lee asked for the file');
  assert.ok(behind.in_sync < behind.reporting, 'a buffering listener is not in sync');
  const shown = await waitFor(() => host.evaluate(() => {
    const banner = document.getElementById('behind-banner');
    return !banner.hidden && document.getElementById('behind-text').textContent;
  }), { timeout: 20000, what: 'the host to see who is behind' });
  console.log(`# host sees "${shown}"`);
  assert.match(shown, /^Behind: .*Lee \(buffering\)/);
  await screenshot(host, 'sync-health-behind');
  // A listener does not get the host's list, only the count.
  assert.equal(await mo.evaluate(() => document.getElementById('behind-banner').hidden), true);

  // The room never waits for Lee: it plays on, and Mo plays with it.
  const room = (await api(server.url, 'GET', `/api/rooms/${roomId}`)).body;
  assert.equal(room.state.paused, false);
  await waitFor(() => mo.evaluate(() => {
    const c = window.syncroom.client;
    return c.playerPosition() > 1 && Math.abs(c.playerPosition() - c.roomPosition()) < 0.25;
  }), { timeout: 20000, what: 'Mo to play in step while Lee stalls' });
  for (const page of [host, mo]) assert.deepEqual(page.errors, []);
});
