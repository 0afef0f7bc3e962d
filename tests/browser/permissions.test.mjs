// Who may do what, on the page, in real headless Chromium against the real server: each
// page shows only the controls the room's permissions give it (host, co-host link, or
// anyone), follows permission changes live, lets the host hand out groups and co-host
// links and revoke them, and lets moderators delete chat messages on every page.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startServer, launchBrowser, openPage, waitFor, joinAsListener, api, screenshot } from './helpers.mjs';

let server;
let browser;

before(async () => {
  server = await startServer('permissions');
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
});

const VIDEO = 'dQw4w9WgXcQ';

async function createRoom(name) {
  const created = await api(server.url, 'POST', '/api/rooms', { name, video_id: VIDEO });
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

const roomState = async (roomId) => (await api(server.url, 'GET', `/api/rooms/${roomId}`)).body;
const playButton = (page) => page.locator('#btn-play');
const queueTitles = (page) => page.evaluate(() => [...document.querySelectorAll('#queue-list .queue-title')].map((n) => n.textContent));
const chatTexts = (page) => page.evaluate(() => [...document.querySelectorAll('#chat-list .chat-text')].map((n) => n.textContent));

test('a listener adds to the queue of a room that gives queue_add to anyone, and the host sees it', { timeout: 60000 }, async () => {
  const { roomId, hostToken } = await createRoom('Everyone adds');
  const set = await api(server.url, 'POST', `/api/rooms/${roomId}/commands`, { type: 'permissions', permissions: { queue_add: 'anyone' } }, hostToken);
  assert.equal(set.status, 200);
  assert.equal(set.body.room.control, 'custom');
  const host = await openHost(roomId, hostToken, 'Host');
  const listener = await openPage(browser);
  await joinAsListener(listener, server.url, roomId, 'Lee');

  // The listener may add, and nothing else: "Add to queue" without "Play now", no transport, no queue editing.
  assert.equal(await listener.locator('#queue-add-btn').isVisible(), true);
  assert.equal(await listener.locator('#load-btn').isVisible(), false);
  assert.equal(await playButton(listener).isVisible(), false);
  assert.equal(await listener.locator('#btn-next').isVisible(), false);
  assert.equal(await listener.locator('#queue-mode').isVisible(), false);
  assert.equal(await listener.locator('#host-tools').isVisible(), false);
  await listener.locator('#load-input').fill('https://youtu.be/9bZkp7q19f0');
  await listener.locator('#queue-add-btn').click();
  await waitFor(async () => (await queueTitles(host)).includes('9bZkp7q19f0'), { what: "the listener's song in the host's queue" });
  assert.deepEqual((await roomState(roomId)).queue.map((i) => [i.video_id, i.added_by]), [['9bZkp7q19f0', 'Lee']]);
  // Only the host may edit the queue here: the host's row has its tools, the listener's has none.
  assert.equal(await host.getByRole('button', { name: 'Remove 9bZkp7q19f0' }).isVisible(), true);
  assert.equal(await listener.locator('#queue-list .queue-tools').count(), 0);

  // Moderation: the host deletes a listener's message, and it goes from every page.
  await listener.locator('#chat-input').fill('spam spam');
  await listener.locator('#chat-send').click();
  await waitFor(async () => (await chatTexts(host)).includes('spam spam'), { what: 'the message on the host page' });
  assert.equal(await listener.locator('#chat-list .chat-delete').first().isVisible(), false, 'no delete button for a listener');
  await host.getByRole('button', { name: "Delete Lee's message" }).click();
  await waitFor(async () => !(await chatTexts(listener)).includes('spam spam') && !(await chatTexts(host)).includes('spam spam'),
    { what: 'the message to go from both pages' });
  assert.ok(!(await roomState(roomId)).chat.some((m) => m.text === 'spam spam'), 'gone from the snapshot');
  // Deleted while a page was away, and back with a fresh snapshot (not a replay): gone there too.
  await listener.locator('#chat-input').fill('more spam');
  await listener.locator('#chat-send').click();
  await listener.locator('#chat-input').fill('fine words');
  await listener.locator('#chat-send').click();
  await waitFor(async () => (await chatTexts(listener)).includes('fine words'), { what: 'both messages on the listener page' });
  await listener.evaluate(() => window.syncroom.client._es.close());
  const spam = (await roomState(roomId)).chat.find((m) => m.text === 'more spam');
  assert.equal((await api(server.url, 'POST', `/api/rooms/${roomId}/commands`, { type: 'delete_chat', chat_version: spam.version }, hostToken)).status, 200);
  await listener.evaluate(() => window.syncroom.client._resync(false));
  await waitFor(async () => !(await chatTexts(listener)).includes('more spam'), { what: 'the message deleted meanwhile to go' });
  assert.deepEqual(await chatTexts(listener), ['fine words']);
  assert.deepEqual([...host.errors, ...listener.errors], []);
  await host.context().close();
  await listener.context().close();
});

test('a listener sees no playback controls in a host room, and gets them when the host gives playback to anyone', { timeout: 60000 }, async () => {
  const { roomId, hostToken } = await createRoom('Hands off');
  const host = await openHost(roomId, hostToken, 'Host');
  const listener = await openPage(browser);
  await joinAsListener(listener, server.url, roomId, 'Mo');
  for (const id of ['#btn-play', '#btn-back', '#btn-fwd', '#rate-select', '#seek-input', '#btn-next', '#load-form', '#paste-form']) {
    assert.equal(await listener.locator(id).isVisible(), false, `${id} hidden from a listener`);
  }
  assert.match(await listener.locator('#control-note').textContent(), /The host controls playback/);
  assert.equal(await playButton(host).isVisible(), true);

  // The host's permissions panel: playback to everyone; the listener's page follows without a reload.
  await host.getByRole('combobox', { name: 'Play, pause, seek' }).selectOption('anyone');
  await waitFor(() => playButton(listener).isVisible(), { what: "the listener's play button" });
  assert.equal((await roomState(roomId)).permissions.playback, 'anyone');
  assert.equal(await listener.locator('#control-note').isVisible(), false);
  assert.equal(await listener.locator('#load-btn').isVisible(), true, '"Play now" comes with playback');
  assert.equal(await listener.locator('#queue-add-btn').isVisible(), false, 'adding is still the host\'s');
  await playButton(listener).click();
  await waitFor(async () => (await roomState(roomId)).state.paused === false, { what: "the listener's play to reach the room" });
  await waitFor(() => host.evaluate(() => window.syncroom.state() && !window.syncroom.state().paused), { what: 'the host page to play' });
  await screenshot(listener, 'permissions-listener-playback');

  // And back: the controls go again.
  await host.getByRole('combobox', { name: 'Play, pause, seek' }).selectOption('host');
  await waitFor(async () => !(await playButton(listener).isVisible()), { what: "the listener's play button to go" });
  assert.deepEqual([...host.errors, ...listener.errors], []);
  await host.context().close();
  await listener.context().close();
});

test('a co-host link controls playback until the host revokes it', { timeout: 90000 }, async () => {
  const { roomId, hostToken } = await createRoom('Shared controls');
  const host = await openHost(roomId, hostToken, 'Host');
  await host.getByRole('combobox', { name: 'Play, pause, seek' }).selectOption('cohost');
  await waitFor(async () => (await roomState(roomId)).permissions.playback === 'cohost', { what: 'playback for co-hosts' });

  // The host adds a co-host on the page and gets the link to send.
  await host.getByRole('textbox', { name: "Co-host's name" }).fill('Bo');
  await host.getByRole('button', { name: 'Add co-host' }).click();
  await host.locator('#cohost-new:not([hidden])').waitFor();
  const link = new URL(await host.locator('#cohost-link').inputValue());
  assert.equal(link.pathname, `/r/${roomId}`);
  const token = new URLSearchParams(link.hash.slice(1)).get('cohost');
  assert.match(token, /^[0-9a-f]{64}$/);
  await waitFor(() => host.getByRole('button', { name: 'Revoke Bo' }).isVisible(), { what: 'Bo in the co-host list' });

  // A second co-host, made over the API, opens a bare link (the token alone, no id).
  const second = await api(server.url, 'POST', `/api/rooms/${roomId}/cohosts`, { name: 'Cy' }, hostToken);
  assert.equal(second.status, 201);
  await waitFor(() => host.getByRole('button', { name: 'Revoke Cy' }).isVisible(), { what: 'Cy in the list, from the cohosts event' });

  const bo = await openPage(browser);
  const requested = [];
  bo.on('request', (request) => requested.push(request.url()));
  await joinAsListener(bo, server.url, roomId, 'Bo', { query: `?player=sim${link.hash}` });
  assert.equal(await bo.evaluate(() => window.syncroom.role), 'cohost');
  assert.equal(await bo.evaluate(() => location.hash), '', 'the token left the address bar');
  assert.ok(requested.every((u) => !u.split('#')[0].includes(token)), 'the token is in no URL sent');
  assert.equal(await bo.locator('#role-pill').textContent(), 'Co-host');
  assert.equal(await bo.locator('#host-tools').isVisible(), false, 'host-only settings stay the host\'s');
  const cy = await openPage(browser);
  await joinAsListener(cy, server.url, roomId, 'Cy', { query: `?player=sim#cohost=${second.body.cohost_token}` });

  // The co-host plays and seeks: the room and the host's page follow.
  await playButton(bo).click();
  await waitFor(async () => (await roomState(roomId)).state.paused === false, { what: "the co-host's play" });
  await bo.locator('#seek-input').fill('2:00');
  await bo.locator('#seek-btn').click();
  await waitFor(async () => (await roomState(roomId)).state.position >= 119, { what: "the co-host's seek" });
  await waitFor(() => host.evaluate(() => window.syncroom.roomPosition() >= 119), { what: 'the host page at 2:00' });
  await playButton(cy).click();
  await waitFor(async () => (await roomState(roomId)).state.paused === true, { what: "the other co-host's pause" });

  // Revoked: Bo's page (its link named its id) drops the controls at once.
  await host.getByRole('button', { name: 'Revoke Bo' }).click();
  await waitFor(async () => !(await playButton(bo).isVisible()), { what: "Bo's controls to go" });
  await waitFor(async () => !(await host.locator('#cohost-link').isVisible()), { what: "Bo's link to be offered no more" });
  assert.match(await bo.locator('#control-note').textContent(), /revoked your co-host link/);
  assert.equal(await bo.evaluate(() => window.syncroom.role), 'anyone');
  // Cy's bare link learns it from the refusal, says so, and the controls go.
  await host.getByRole('button', { name: 'Revoke Cy' }).click();
  await waitFor(async () => (await roomState(roomId)).cohosts.length === 0, { what: 'no co-hosts left' });
  await playButton(cy).click();
  await waitFor(() => cy.locator('#toasts').textContent().then((t) => t.includes('revoked your co-host link')), { what: "Cy's refusal shown" });
  await waitFor(async () => !(await playButton(cy).isVisible()), { what: "Cy's controls to go" });
  assert.equal((await roomState(roomId)).state.paused, true, 'the refused play changed nothing');
  assert.equal(await cy.evaluate((id) => localStorage.getItem(`syncroom:cohost:${id}`), roomId), null, 'the dead token is forgotten');
  await screenshot(host, 'permissions-host-tools');
  // The refused command logs a failed request in the console; nothing else may.
  assert.deepEqual([...host.errors, ...bo.errors], []);
  for (const page of [host, bo, cy]) await page.context().close();
});
