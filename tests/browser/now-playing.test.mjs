// The now-playing card, in real headless Chromium against the real server: an audio item
// (a /media/ file) shows its title, artist, who added it and its cover art, read by the
// server from the file's own tag (fixtures/tagged-media.mjs), instead of an empty video
// box; a file without art shows the card without a picture; a video item shows no card.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';

import { startServer, launchBrowser, openPage, waitFor, joinAsListener, api, screenshot } from './helpers.mjs';
import { mediaDir } from './fixtures/media.mjs';
import { writeTaggedWav, solidPng } from './fixtures/tagged-media.mjs';

const require = createRequire(import.meta.url);
const AXE_SOURCE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const ART_SIZE = 24; // px, the cover picture in the tag

let server;
let browser;
let media;

before(async () => {
  media = mediaDir({ 'plain.wav': { seconds: 30, freq: 440 } });
  writeTaggedWav(media.dir, 'albums/night drive.wav', { seconds: 30, freq: 550 },
    { title: 'Night Drive', artist: 'The Testers', picture: solidPng(ART_SIZE) });
  server = await startServer('now-playing', ['--media-dir', media.dir]);
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
  if (media) media.remove();
});

async function hostRoom(name) {
  const created = await api(server.url, 'POST', '/api/rooms', { name });
  assert.equal(created.status, 201);
  const { room_id: roomId, host_token: hostToken } = created.body;
  const command = async (body) => {
    const res = await api(server.url, 'POST', `/api/rooms/${roomId}/commands`, body, hostToken);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body;
  };
  return { roomId, command };
}

/** A listener page that records the status of every cover-art request. */
async function listen(roomId) {
  const page = await openPage(browser);
  page.art = [];
  page.on('response', (res) => { if (res.url().includes('/api/media/art/')) page.art.push(`${res.status()} ${new URL(res.url()).pathname}`); });
  await joinAsListener(page, server.url, roomId, 'Bo');
  return page;
}

/** What the card shows now (`null` while it is hidden). */
function card(page) {
  return page.evaluate(() => {
    const $ = (id) => document.getElementById(id);
    if ($('now-playing').hidden) return null;
    const img = $('np-art');
    return {
      title: $('np-title').textContent,
      artist: $('np-artist').hidden ? null : $('np-artist').textContent,
      by: $('np-by').hidden ? null : $('np-by').textContent,
      art: img.hidden ? null : img.naturalWidth,
    };
  });
}

async function seriousAxeViolations(page) {
  await page.evaluate(AXE_SOURCE);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  return result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join('; ')}`);
}

test('an audio file without tags shows the card with its file name and no picture; a video shows none', { timeout: 60000 }, async () => {
  const { roomId, command } = await hostRoom('Plain audio');
  await command({ type: 'load', media_url: '/media/plain.wav' });
  const page = await listen(roomId);

  await waitFor(async () => JSON.stringify(await card(page)) === JSON.stringify({ title: 'plain.wav', artist: null, by: null, art: null }),
    { what: 'the card with the file name and no art' });
  await waitFor(() => page.art.length > 0, { what: 'the cover art asked for' });
  assert.deepEqual(page.art, ['404 /api/media/art/plain.wav'], 'asked once; a file without art is a 404');
  assert.deepEqual(await seriousAxeViolations(page), [], 'the card passes the accessibility audit');

  await command({ type: 'load', video_id: 'dQw4w9WgXcQ' });
  await waitFor(async () => (await card(page)) === null, { what: 'no card for a video' });
  assert.deepEqual(page.errors, [], 'the documented 404 of a file without art is no page error');
  await page.context().close();
});

test("a tagged audio file shows its title, artist, who added it and its cover art", { timeout: 60000 }, async () => {
  const { roomId, command } = await hostRoom('Tagged audio');
  const page = await listen(roomId);
  // Queued by Ann without a title: the server reads title and artist from the file's tag.
  await command({ type: 'queue_add', media_url: '/media/albums/night%20drive.wav', name: 'Ann' });
  await command({ type: 'next' });

  await waitFor(async () => JSON.stringify(await card(page))
    === JSON.stringify({ title: 'Night Drive', artist: 'The Testers', by: 'Added by Ann', art: ART_SIZE }),
  { what: 'the card with the tag, the adder and the cover art', timeout: 15000 });
  assert.deepEqual(page.art, ['200 /api/media/art/albums/night%20drive.wav']);
  const state = await page.evaluate(() => window.syncroom.state());
  assert.equal(state.added_by, 'Ann');
  assert.equal(typeof state.item_id, 'string', 'the state names the queue item it loaded');
  await screenshot(page, 'now-playing');
  assert.deepEqual(page.errors, []);
  await page.context().close();
});
