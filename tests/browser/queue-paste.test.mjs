// The queue on the page, in real headless Chromium against the real server: the host
// pastes links into "Add many" and they go as one `queue_add` with `items`; every page
// shows each item with its length and who added it, and the queue's total time; a bad
// line is named before anything is sent, and the server's refusal is named by its line;
// the queue-mode switch and "keep this room" reach the room.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startServer, launchBrowser, openPage, waitFor, joinAsListener, api, screenshot } from './helpers.mjs';
import { mediaDir } from './fixtures/media.mjs';

let server;
let browser;
let media;

before(async () => {
  media = mediaDir({ 'a.wav': { seconds: 20, freq: 440 }, 'b.wav': { seconds: 30, freq: 660 } });
  server = await startServer('queue-paste', ['--media-dir', media.dir]);
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
  if (media) media.remove();
});

async function createRoom(name) {
  const created = await api(server.url, 'POST', '/api/rooms', { name });
  assert.equal(created.status, 201);
  return { roomId: created.body.room_id, hostToken: created.body.host_token };
}

/** The host's page: the token in localStorage as the page keeps it, then join as `name`. */
async function openHost(roomId, hostToken, name) {
  const page = await openPage(browser);
  await page.goto(`${server.url}/?player=sim`);
  await page.evaluate(([id, token]) => localStorage.setItem(`syncroom:host:${id}`, token), [roomId, hostToken]);
  await page.goto(`${server.url}/r/${roomId}?player=sim`);
  await page.getByRole('textbox', { name: 'Your name' }).fill(name);
  await page.getByRole('button', { name: 'Join & watch' }).click();
  await waitFor(() => page.evaluate(() => window.syncroom.connected && window.syncroom.isHost), { what: 'the host to connect' });
  return page;
}

/** What the page's queue shows: per row its title, length and "added by", and the total line. */
function shownQueue(page) {
  return page.evaluate(() => ({
    rows: [...document.querySelectorAll('#queue-list .queue-item')].map((li) => ({
      title: li.querySelector('.queue-title').textContent,
      duration: li.querySelector('.queue-duration').textContent,
      by: li.querySelector('.queue-by') ? li.querySelector('.queue-by').textContent : null,
    })),
    total: document.getElementById('queue-total').hidden ? null : document.getElementById('queue-total').textContent,
  }));
}

/** Records the `queue` events a page's client receives (what changed, as the server sent it). */
function recordQueueEvents(page) {
  return page.evaluate(() => {
    window.__queueEvents = [];
    window.syncroom.client.addEventListener('queue', (e) => {
      const { op, items, item_ids: ids } = e.detail;
      window.__queueEvents.push({ op, items: items ? items.length : null, ids: ids ? ids.length : null });
    });
  });
}

async function paste(page, text) {
  await page.getByRole('textbox', { name: /Add many/ }).fill(text);
  await page.getByRole('button', { name: 'Queue all' }).click();
}

test('three pasted links are queued in one command; every page shows who added each, its length and the total', { timeout: 60000 }, async () => {
  const { roomId, hostToken } = await createRoom('Paste party');
  const host = await openHost(roomId, hostToken, 'Ann');
  const listener = await openPage(browser);
  await joinAsListener(listener, server.url, roomId, 'Bo');
  await recordQueueEvents(listener);

  await paste(host, '/media/a.wav\n\nhttps://youtu.be/dQw4w9WgXcQ\n/media/b.wav\n');

  // The server reads the two files' lengths; the YouTube video's stays unknown (no API key).
  const want = {
    rows: [
      { title: 'a.wav', duration: '0:20', by: 'added by Ann' },
      { title: 'dQw4w9WgXcQ', duration: '–:––length unknown', by: 'added by Ann' },
      { title: 'b.wav', duration: '0:30', by: 'added by Ann' },
    ],
    total: 'Total 0:50 + 1 of unknown length',
  };
  for (const page of [listener, host]) {
    await waitFor(async () => JSON.stringify(await shownQueue(page)) === JSON.stringify(want),
      { what: 'the three items with their lengths, who added them and the total', timeout: 10000 });
  }
  assert.deepEqual(await listener.evaluate(() => window.__queueEvents), [{ op: 'add', items: 3, ids: null }],
    'one queue event, an add of the three items');
  assert.equal(await host.locator('#paste-input').inputValue(), '', 'the box is emptied once they are queued');
  assert.match(await host.locator('#paste-status').textContent(), /Queued 3 items/);

  // A removal reaches the listener as what changed, and the total follows.
  const queued = (await api(server.url, 'GET', `/api/rooms/${roomId}`)).body.queue;
  assert.equal((await api(server.url, 'POST', `/api/rooms/${roomId}/commands`, { type: 'queue_remove', item_id: queued[2].item_id }, hostToken)).status, 200);
  await waitFor(async () => (await shownQueue(listener)).total === 'Total 0:20 + 1 of unknown length', { what: 'the total after a removal' });
  assert.deepEqual((await listener.evaluate(() => window.__queueEvents)).at(-1), { op: 'remove', items: null, ids: 1 });

  await screenshot(host, 'queue-paste-host');
  for (const page of [host, listener]) assert.deepEqual(page.errors, []);
  await host.context().close();
  await listener.context().close();
});

test('a line that names nothing is refused before anything is sent; the server refusing an item names its line', { timeout: 60000 }, async () => {
  const { roomId, hostToken } = await createRoom('Paste errors');
  const host = await openHost(roomId, hostToken, 'Ann');

  await paste(host, '/media/a.wav\nnot a link at all');
  await waitFor(() => host.locator('#paste-error').textContent().then((t) => t.includes('line 2')), { what: 'the bad line named' });
  assert.match(await host.locator('#paste-error').textContent(), /^Nothing was added: line 2 \(“not a link at all”\)/);

  // A user name in a media link: the page lets it through, the server refuses it (items[1]).
  await paste(host, '/media/a.wav\nhttps://user:secret@example.com/song.mp3\n/media/b.wav');
  await waitFor(() => host.locator('#paste-error').textContent().then((t) => t.startsWith('Nothing was added. Line 2: ')),
    { what: "the server's refusal, named by its line" });
  assert.match(await host.locator('#paste-error').textContent(), /items\[1\]/, "the server's own message is shown");
  assert.equal(await host.locator('#paste-input').inputValue(), '/media/a.wav\nhttps://user:secret@example.com/song.mp3\n/media/b.wav',
    'the box keeps the links to fix them');
  assert.deepEqual((await api(server.url, 'GET', `/api/rooms/${roomId}`)).body.queue, [], 'all or nothing: nothing was added');
  // The refusal this test provokes is logged by the browser as a failed load: no error of the page.
  const unexpected = host.errors.filter((e) => !/status of 400/.test(e));
  assert.deepEqual(unexpected, []);
  await host.context().close();
});

test('whoever may edit the queue switches its mode, everyone sees it; the host keeps the room', { timeout: 60000 }, async () => {
  const { roomId, hostToken } = await createRoom('Modes');
  const host = await openHost(roomId, hostToken, 'Ann');
  const listener = await openPage(browser);
  await joinAsListener(listener, server.url, roomId, 'Bo');
  assert.equal(await listener.locator('#queue-mode').isHidden(), true, 'a listener of a host room has no switch');
  assert.equal(await listener.locator('#paste-form').isHidden(), true, 'nor the paste box');

  // The radios are drawn by their labels (the input sits under them): click as a person would.
  await host.locator('label[for="queue-mode-loop"]').click();
  await waitFor(async () => (await api(server.url, 'GET', `/api/rooms/${roomId}`)).body.queue_mode === 'loop', { what: 'the room in loop mode' });
  await waitFor(() => listener.locator('#queue-mode-note').textContent().then((t) => t.startsWith('Loop is on')), { what: 'the listener told' });

  // Keyboard: the radio group moves with the arrow keys, as radios do.
  await host.getByRole('radio', { name: 'Loop' }).focus();
  await host.keyboard.press('ArrowRight');
  await waitFor(async () => (await api(server.url, 'GET', `/api/rooms/${roomId}`)).body.queue_mode === 'shuffle', { what: 'shuffle by keyboard' });
  await waitFor(() => listener.locator('#queue-mode-note').textContent().then((t) => t.startsWith('Shuffle is on')), { what: 'the listener told of shuffle' });

  // In an open room anyone may edit the queue: the listener gets the switch.
  assert.equal((await api(server.url, 'POST', `/api/rooms/${roomId}/commands`, { type: 'control', control: 'open' }, hostToken)).status, 200);
  await listener.locator('#queue-mode').waitFor({ state: 'visible' });
  assert.equal(await listener.getByRole('radio', { name: 'Shuffle' }).isChecked(), true);

  await host.getByRole('checkbox', { name: /Keep this room/ }).check();
  await waitFor(async () => (await api(server.url, 'GET', `/api/rooms/${roomId}`)).body.persistent === true, { what: 'the room kept' });
  assert.equal(await listener.locator('#persistent-room').isVisible(), false, 'only the host has the toggle');

  for (const page of [host, listener]) assert.deepEqual(page.errors, []);
  await host.context().close();
  await listener.context().close();
});
