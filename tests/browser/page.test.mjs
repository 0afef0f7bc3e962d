// The page on a phone and the notices it shows:
// no sideways scrolling at 390×844, friendly titles for unnamed rooms, a collapsed
// Sync card with chat close by, a "Slow down" notice that goes when its wait is
// over, and a host's sync indicator that does not count a deliberate seek as drift.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startServer, launchBrowser, openPage, screenshot, waitFor, joinAsListener, api } from './helpers.mjs';

const PHONE = { viewport: { width: 390, height: 844 }, mobile: true };

let server;
let browser;

before(async () => {
  // One chat message a second, no burst: the second message in a row is refused with Retry-After.
  server = await startServer('page', ['--chat-per-minute', '60', '--chat-burst', '1']);
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
});

/**
 * How many CSS pixels the page is wider than the phone's screen (0 when it is not).
 * Not `innerWidth`: a mobile browser widens its layout viewport to fit a page that
 * overflows (and zooms out), so that would hide the overflow it should show.
 */
const overflowX = (page) => page.evaluate((width) => Math.max(0,
  document.documentElement.scrollWidth - width, document.body.scrollWidth - width), PHONE.viewport.width);

test('on a phone, the home page lists unnamed and long-named rooms without scrolling sideways', { timeout: 60000 }, async () => {
  const unnamed = await api(server.url, 'POST', '/api/rooms', { visibility: 'public' });
  assert.equal(unnamed.status, 201);
  const long = await api(server.url, 'POST', '/api/rooms', { name: `A${'very'.repeat(15)}longroomnamewithoutanyspaces`, visibility: 'public' });
  assert.equal(long.status, 201);
  for (const colorScheme of ['dark', 'light']) {
    const page = await openPage(browser, PHONE);
    await page.emulateMedia({ colorScheme });
    await page.goto(`${server.url}/?player=sim`);
    await waitFor(() => page.locator('#room-list .room-name').count().then((n) => n >= 2), { what: 'the room list' });
    const titles = await page.locator('#room-list .room-name').allTextContents();
    assert.ok(!titles.includes(unnamed.body.room_id), `an unnamed room is not shown by its hex id: ${titles}`);
    assert.ok(titles.every((x) => !/^[0-9a-f]{16,}$/.test(x)), `friendly titles: ${titles}`);
    assert.equal(await overflowX(page), 0, `home page (${colorScheme}) scrolls sideways`);
    await screenshot(page, `phone-home-rooms-${colorScheme}`);
    await page.context().close();
  }

  // The unnamed room's own page: the same friendly title, no hex id, no sideways scroll.
  const page = await openPage(browser, PHONE);
  await page.goto(`${server.url}/r/${unnamed.body.room_id}?player=sim`);
  // The dialog says "Join the room" until the room's own title has arrived.
  await waitFor(() => page.locator('#join-title').textContent().then((x) => /^Join “.+”$/.test(x)), { what: "the join dialog with the room's title" });
  const joinTitle = await page.locator('#join-title').textContent();
  assert.ok(!joinTitle.includes(unnamed.body.room_id), joinTitle);
  assert.equal(await overflowX(page), 0, 'join dialog scrolls sideways');
  await page.getByRole('textbox', { name: 'Your name' }).fill('Pat');
  await page.getByRole('button', { name: 'Join & watch' }).click();
  await waitFor(() => page.evaluate(() => window.syncroom.connected), { what: 'the phone to connect' });
  assert.equal(await page.locator('#room-title').textContent(), joinTitle.replace(/^Join “(.*)”$/, '$1'));
  assert.equal(await overflowX(page), 0, 'room page scrolls sideways');
  await page.context().close();
});

test('on a phone the Sync card is collapsed and the chat comes right after the player; on a desktop it is open', { timeout: 60000 }, async () => {
  const created = await api(server.url, 'POST', '/api/rooms', { name: 'Phone room', video_id: 'dQw4w9WgXcQ' });
  const roomId = created.body.room_id;
  const phone = await openPage(browser, PHONE);
  await joinAsListener(phone, server.url, roomId, 'Pat');
  assert.equal(await phone.locator('#health').evaluate((d) => d.open), false, 'Sync card collapsed on a phone');
  const top = (sel) => phone.locator(sel).evaluate((n) => n.getBoundingClientRect().top + window.scrollY);
  const chat = await top('#chat-input');
  assert.ok(chat < await top('#queue-heading'), 'chat above the queue');
  assert.ok(chat < await top('#health'), 'chat above the Sync card');
  assert.ok(chat < await top('#share-link'), 'chat above the invite link');
  // Within reach: after the player and its transport, not a screenful or two further down.
  assert.ok(chat < 1.5 * PHONE.viewport.height, `chat input at ${Math.round(chat)} px`);
  assert.equal(await overflowX(phone), 0);
  // Every card spans the column, as the player's controls do.
  const width = (sel) => phone.locator(sel).evaluate((n) => Math.round(n.getBoundingClientRect().width));
  const full = await width('#transport');
  for (const sel of ['.chat-panel', '#queue-heading >> xpath=..', '.share-card', '#health']) {
    assert.equal(await width(sel), full, `${sel} as wide as the transport`);
  }
  await screenshot(phone, 'phone-room-chat');
  // The card still opens on a tap.
  await phone.locator('#health summary').click();
  assert.equal(await phone.locator('#health').evaluate((d) => d.open), true);

  const desktop = await openPage(browser);
  await joinAsListener(desktop, server.url, roomId, 'Dee');
  assert.equal(await desktop.locator('#health').evaluate((d) => d.open), true, 'Sync card open on a desktop');
  await phone.context().close();
  await desktop.context().close();
});

test('the "Slow down" notice goes once its Retry-After wait is over', { timeout: 60000 }, async () => {
  const created = await api(server.url, 'POST', '/api/rooms', { name: 'Chatty' });
  const page = await openPage(browser);
  await joinAsListener(page, server.url, created.body.room_id, 'Chatty Cat');
  const say = async (text) => {
    await page.locator('#chat-input').fill(text);
    await page.locator('#chat-send').click();
  };
  // Send until refused (the first may spend the one token of the bucket).
  let notice = '';
  for (let i = 0; i < 5 && !notice.startsWith('Slow down'); i += 1) {
    await say(`hello ${i}`);
    notice = await waitFor(async () => {
      const text = await page.locator('#chat-error').textContent();
      const sent = (await page.locator('#chat-input').inputValue()) === '';
      return text || (sent ? 'sent' : '');
    }, { what: 'the chat to answer' });
    if (notice === 'sent') notice = '';
  }
  assert.match(notice, /^Slow down — try again in \d+ s\.$/);
  // Gone once the wait is over (Retry-After is a second or two here), with no click.
  await waitFor(async () => (await page.locator('#chat-error').textContent()) === '', { timeout: 10000, what: 'the notice to go' });
  await page.context().close();
});

test("a host's deliberate seek does not show as drift on the host's sync indicator", { timeout: 60000 }, async () => {
  const page = await openPage(browser);
  await page.goto(`${server.url}/?player=sim`);
  await page.locator('#create-name').fill('Seeker');
  await page.locator('#create-you').fill('Host');
  await page.locator('#create-video').fill('dQw4w9WgXcQ');
  await page.locator('#create-btn').click();
  await waitFor(() => page.evaluate(() => window.syncroom && window.syncroom.connected && window.syncroom.isHost && window.syncroom.playerKind),
    { what: 'the host page' });
  await waitFor(() => page.evaluate(() => window.syncroom.state() && window.syncroom.state().video_id), { what: 'the video' });
  const paused = await page.evaluate(() => window.syncroom.state().paused);
  if (paused) await page.locator('#btn-play').click();
  await waitFor(() => page.evaluate(() => document.getElementById('health-dot').dataset.quality === 'good'),
    { what: 'the indicator to settle green' });
  for (const step of ['#btn-fwd', '#btn-fwd', '#btn-back']) {
    const version = await page.evaluate(() => window.syncroom.version());
    await page.locator(step).click();
    await waitFor(() => page.evaluate((v) => window.syncroom.version() > v, version), { what: 'the seek to come back' });
    // For the next two seconds the indicator never turns orange or red.
    const until = Date.now() + 2000;
    const seen = new Set();
    while (Date.now() < until) {
      seen.add(await page.evaluate(() => `${document.getElementById('health-dot').dataset.quality} ${document.getElementById('health-summary').textContent}`));
      await new Promise((r) => setTimeout(r, 50));
    }
    const bad = [...seen].filter((x) => /^(ok|bad) /.test(x));
    assert.deepEqual(bad, [], `after ${step}: ${[...seen].join(', ')}`);
  }
  await page.context().close();
});
