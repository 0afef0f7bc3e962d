// Vote skip on the page, in real headless Chromium against the real server: the host turns
// it on from the settings panel, every page then shows a "Vote to skip" button (once per
// item) and how the votes stand, enough votes skip to the next queued item on every page
// with a notice, and with vote skip off neither the button nor the count shows. Also who's
// here (the named listeners, the count of the others) and a moderator removing a page.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startServer, launchBrowser, openPage, waitFor, joinAsListener, api, screenshot } from './helpers.mjs';

let server;
let browser;

before(async () => {
  server = await startServer('vote-skip');
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
});

const VIDEO = 'dQw4w9WgXcQ';
const QUEUED = ['9bZkp7q19f0', 'kJQP7kiw5Fk'];

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
const voteButton = (page) => page.locator('#btn-vote');
const voteCount = (page) => page.locator('#vote-count').textContent();
const playing = (page) => page.evaluate(() => window.syncroom.state() && window.syncroom.state().video_id);
const toasts = (page) => page.locator('#toasts').textContent();

test('two votes of four live pages skip to the next queued item on every page at ratio 0.5', { timeout: 90000 }, async () => {
  const created = await api(server.url, 'POST', '/api/rooms', { name: 'Skip it', video_id: VIDEO });
  assert.equal(created.status, 201);
  const { room_id: roomId, host_token: hostToken } = created.body;
  for (const video of QUEUED) {
    const added = await api(server.url, 'POST', `/api/rooms/${roomId}/commands`, { type: 'queue_add', video_id: video }, hostToken);
    assert.equal(added.status, 200);
  }
  const host = await openHost(roomId, hostToken, 'Host');
  const listeners = [];
  for (const name of ['Ann', 'Bo', 'Cy']) {
    const page = await openPage(browser);
    await joinAsListener(page, server.url, roomId, name);
    listeners.push(page);
  }
  const [ann, bo, cy] = listeners;
  const everyone = [host, ...listeners];

  // Off (the default): no button, no count.
  for (const page of everyone) {
    assert.equal(await voteButton(page).isVisible(), false, 'no vote button while vote skip is off');
    assert.equal(await page.locator('#vote-count').isVisible(), false, 'no count while vote skip is off');
  }
  assert.equal(await cy.locator('#vote-panel').isVisible(), false, 'the setting is the host\'s');

  // The host turns it on from the settings panel: half the live pages.
  await host.getByRole('combobox', { name: 'Votes that skip' }).selectOption('0.5');
  await waitFor(async () => (await roomState(roomId)).vote_skip.ratio === 0.5, { what: 'vote skip on in the room' });
  for (const page of listeners) {
    await waitFor(() => voteButton(page).isVisible(), { what: 'the vote button' });
    assert.equal(await voteButton(page).textContent(), 'Vote to skip');
    assert.equal(await voteButton(page).isEnabled(), true);
  }

  // One vote of four pages: every page hears it, and that page may not vote again on this item.
  await ann.getByRole('button', { name: 'Vote to skip' }).click();
  await waitFor(async () => (await voteButton(ann).textContent()) === 'Voted', { what: "Ann's button to say Voted" });
  assert.equal(await voteButton(ann).isDisabled(), true);
  for (const page of everyone) {
    await waitFor(async () => (await voteCount(page)) === 'skip votes: 1 of 2 needed', { what: 'the count of one vote' });
  }
  assert.equal((await roomState(roomId)).state.video_id, VIDEO, 'one vote skips nothing');

  // The second: the next queued item plays on every page, with the notice, and the buttons are back.
  await bo.getByRole('button', { name: 'Vote to skip' }).click();
  for (const page of everyone) {
    await waitFor(async () => (await playing(page)) === QUEUED[0], { what: 'the next item on every page' });
    await waitFor(async () => (await toasts(page)).includes('Skipped by vote'), { what: 'the notice' });
  }
  const room = await roomState(roomId);
  assert.equal(room.state.video_id, QUEUED[0]);
  assert.deepEqual(room.queue.map((i) => i.video_id), [QUEUED[1]]);
  for (const page of [ann, bo]) {
    await waitFor(async () => (await voteButton(page).textContent()) === 'Vote to skip' && (await voteButton(page).isEnabled()),
      { what: 'the vote button back for the new item' });
  }
  await screenshot(ann, 'vote-skip-listener');

  // The fewest votes, from the panel: one vote of the new item is now 1 of 3.
  await host.getByRole('spinbutton', { name: 'Fewest votes' }).fill('3');
  await host.getByRole('spinbutton', { name: 'Fewest votes' }).blur();
  await waitFor(async () => (await roomState(roomId)).vote_skip.min_votes === 3, { what: 'min_votes 3 in the room' });
  await cy.getByRole('button', { name: 'Vote to skip' }).click();
  for (const page of everyone) {
    await waitFor(async () => (await voteCount(page)) === 'skip votes: 1 of 3 needed', { what: 'the count of one vote of three' });
  }
  await screenshot(host, 'vote-skip-host');

  // And off again: the button and the count go from every page.
  await host.getByRole('combobox', { name: 'Votes that skip' }).selectOption('0');
  for (const page of everyone) {
    await waitFor(async () => !(await voteButton(page).isVisible()) && !(await page.locator('#vote-count').isVisible()),
      { what: 'the vote controls to go' });
  }
  assert.equal((await roomState(roomId)).vote_skip.ratio, 0);
  assert.deepEqual(everyone.flatMap((page) => page.errors), []);
  for (const page of everyone) await page.context().close();
});

test("who's here lists the named listeners, and a page the host removes says so and stays off", { timeout: 60000 }, async () => {
  const created = await api(server.url, 'POST', '/api/rooms', { name: 'Who is here', video_id: VIDEO });
  assert.equal(created.status, 201);
  const { room_id: roomId, host_token: hostToken } = created.body;
  const host = await openHost(roomId, hostToken, 'Host');
  const lee = await openPage(browser);
  await joinAsListener(lee, server.url, roomId, 'Lee');
  const mo = await openPage(browser);
  await joinAsListener(mo, server.url, roomId, 'Mo');
  // One more listener without a name: counted, not named.
  await mo.evaluate((id) => { window.unnamedStream = new EventSource(`/api/rooms/${id}/events`); }, roomId);

  const names = (page) => page.evaluate(() => [...document.querySelectorAll('#member-list .member-name')].map((n) => n.textContent));
  for (const page of [host, lee, mo]) {
    await waitFor(async () => (await names(page)).join() === 'Host,Lee,Mo', { what: "the named listeners in who's here" });
    await waitFor(async () => (await page.locator('#members-unnamed').textContent()) === 'And 1 listener without a name',
      { what: 'the unnamed listener counted' });
  }
  assert.equal(await host.locator('#members-count').textContent(), '4');
  // Only a moderator gets the buttons, and never for its own page.
  assert.equal(await lee.locator('#member-list button').count(), 0);
  assert.equal(await host.locator('#member-list button').count(), 2);

  await host.getByRole('button', { name: 'Remove Lee' }).click();
  await waitFor(async () => (await lee.locator('#closed-banner').textContent()) === 'You were removed from this room.'
    && (await lee.locator('#closed-banner').isVisible()), { what: 'the removed page to say so' });
  for (const page of [host, mo]) {
    await waitFor(async () => (await names(page)).join() === 'Host,Mo', { what: 'Lee to leave the list' });
  }
  // It stays off: no stream of its own after the server's `retry:` delay and the client's back-off.
  await new Promise((resolve) => { setTimeout(resolve, 4000); });
  assert.equal(await lee.evaluate(() => window.syncroom.kicked && window.syncroom.client.stats.opens), 1);
  assert.equal(await lee.locator('#conn-text').textContent(), 'Closed');
  assert.equal(await lee.locator('#chat-input').isDisabled(), true);
  assert.equal((await roomState(roomId)).listeners, 3, 'host, Mo and the unnamed stream');
  assert.deepEqual((await roomState(roomId)).members.map((m) => m.name), ['Host', 'Mo']);
  await screenshot(host, 'members-host');
  assert.deepEqual([host, lee, mo].flatMap((page) => page.errors), []);
  for (const page of [host, lee, mo]) await page.context().close();
});
