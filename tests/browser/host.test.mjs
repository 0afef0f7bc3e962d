// The host's room settings on the page, in every engine: a room made on the page is
// unlisted unless the host lists it, the host can list it later, a host link opens
// the host role on another device without the token ever reaching the server, and
// "Reset host token" makes old host links useless.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import {
  startServer, launchBrowser, openPage, waitFor, joinAsListener, api, ENGINES,
} from './helpers.mjs';

let server;
let browser;

const listedIds = async () => (await api(server.url, 'GET', '/api/rooms')).body.rooms.map((r) => r.room_id);

/** Creates a room on the home page with the given visibility choice; gives its id. */
async function createOnPage(page, name, visibilityLabel) {
  await page.goto(`${server.url}/?player=sim`);
  await page.locator('#create-name').fill(name);
  await page.locator('#create-you').fill('Host');
  if (visibilityLabel) await page.getByText(visibilityLabel, { exact: true }).click();
  await page.locator('#create-btn').click();
  await waitFor(() => page.evaluate(() => window.syncroom && window.syncroom.connected && window.syncroom.isHost),
    { what: `the host page of ${name}` });
  return page.evaluate(() => window.syncroom.roomId);
}

for (const engine of ENGINES) {
  describe(`in ${engine}`, () => {
    // A server of its own: the first test counts every listed room.
    before(async () => {
      server = await startServer(`host-${engine}`);
      browser = await launchBrowser(engine);
    });

    after(async () => {
      if (browser) await browser.close();
      if (server) await server.stop();
    });

    test('a room made on the page is unlisted unless the host lists it, then or later', { timeout: 60000 }, async () => {
      const page = await openPage(browser);
      const listed = await createOnPage(page, 'Listed party', 'Listed here');
      assert.equal((await api(server.url, 'GET', `/api/rooms/${listed}`)).body.visibility, 'public');

      const secret = await createOnPage(page, 'Secret party', null);
      assert.equal((await api(server.url, 'GET', `/api/rooms/${secret}`)).body.visibility, 'unlisted');
      assert.deepEqual(await listedIds(), [listed]);

      // The host lists it from the room page; the switch follows the room.
      await page.locator('#public-room').check();
      await waitFor(async () => (await listedIds()).includes(secret), { what: 'the room to be listed' });
      await page.locator('#public-room').uncheck();
      await waitFor(async () => !(await listedIds()).includes(secret), { what: 'the room to be unlisted' });
      await page.context().close();
    });

    test('a host link opens the host role on another device; resetting the token makes it useless', { timeout: 60000 }, async () => {
      const first = await openPage(browser);
      const roomId = await createOnPage(first, 'Two devices', null);
      const link = await first.locator('#host-link').inputValue();
      const url = new URL(link);
      assert.equal(url.pathname, `/r/${roomId}`);
      const token = new URLSearchParams(url.hash.slice(1)).get('host');
      assert.match(token, /^[0-9a-f]{64}$/, `a host token in the fragment: ${link}`);

      // Another device: a fresh browser context with nothing stored.
      const second = await openPage(browser);
      const requested = [];
      second.on('request', (request) => requested.push(request.url()));
      await joinAsListener(second, server.url, roomId, 'Phone', { query: `?player=sim${url.hash}` });
      assert.equal(await second.evaluate(() => window.syncroom.isHost), true, 'the host role on the second device');
      assert.equal(await second.evaluate(() => location.hash), '', 'the token left the address bar');
      assert.equal(await second.evaluate((id) => localStorage.getItem(`syncroom:host:${id}`), roomId), token);
      // Without the fragment: no request sends it (Firefox reports a navigation's URL with it).
      assert.ok(requested.every((u) => !u.split('#')[0].includes(token)), `the token went to the server: ${requested.join(' ')}`);
      assert.equal((await api(server.url, 'POST', `/api/rooms/${roomId}/commands`, { type: 'seek', position: 5 }, token)).status, 200);

      // Reset on the first device: a new link, the old token (and link) refused everywhere.
      first.once('dialog', (dialog) => dialog.accept());
      await first.getByRole('button', { name: 'Reset host token' }).click();
      await waitFor(async () => (await first.locator('#host-link').inputValue()) !== link, { what: 'a new host link' });
      const fresh = new URLSearchParams(new URL(await first.locator('#host-link').inputValue()).hash.slice(1)).get('host');
      assert.notEqual(fresh, token);
      assert.equal(await first.evaluate((id) => localStorage.getItem(`syncroom:host:${id}`), roomId), fresh);
      assert.equal((await api(server.url, 'POST', `/api/rooms/${roomId}/commands`, { type: 'seek', position: 6 }, token)).status, 403);
      assert.equal((await api(server.url, 'POST', `/api/rooms/${roomId}/commands`, { type: 'seek', position: 7 }, fresh)).status, 200);
      // The first device still controls the room with the new token.
      await first.locator('#open-control').check();
      await waitFor(async () => (await api(server.url, 'GET', `/api/rooms/${roomId}`)).body.control === 'open',
        { what: 'the first device to control the room' });
      await first.context().close();
      await second.context().close();
    });
  });
}
