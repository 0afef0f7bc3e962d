// An accessibility audit with axe-core in every engine: the home page, the join
// dialog and a room (host and listener, vote skip on), on a desktop and a 390×844
// phone, in the dark and the light colour scheme. Any serious or critical violation
// fails the test (it was colour contrast: white on the primary purple, the green
// "Live" text, the join dialog's eyebrow). Firefox's phone is the phone's size and pixel ratio only
// (see firefox.mjs).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

import {
  startServer, launchBrowser, waitFor, api, ARTIFACTS, Engine, ENGINES,
} from './helpers.mjs';

const require = createRequire(import.meta.url);
const AXE_SOURCE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

const VIEWPORTS = {
  desktop: { viewport: { width: 1280, height: 860 } },
  phone: { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true },
};

/** Firefox audits each size and each scheme once: a scheme costs it a browser launch of its own. */
const FIREFOX_AUDITS = new Set(['desktop dark', 'phone light']);

let server;
let browser;
let roomId;
let hostToken;
const report = [];

before(async () => {
  server = await startServer('a11y');
  const created = await api(server.url, 'POST', '/api/rooms', { name: 'Audit room', video_id: 'dQw4w9WgXcQ', visibility: 'public' });
  assert.equal(created.status, 201);
  ({ room_id: roomId, host_token: hostToken } = created.body);
  await api(server.url, 'POST', `/api/rooms/${roomId}/chat`, { name: 'Ann', text: 'hello' });
  // Vote skip on: the listener's vote button and count are part of the audit.
  const voteSkip = await api(server.url, 'POST', `/api/rooms/${roomId}/commands`, { type: 'vote_skip', ratio: 0.5, min_votes: 1 }, hostToken);
  assert.equal(voteSkip.status, 200);
});

after(async () => {
  fs.writeFileSync(path.join(ARTIFACTS, 'axe.json'), `${JSON.stringify(report, null, 2)}\n`);
  if (browser) await browser.close();
  if (server) await server.stop();
});

/** A page of its own; axe is injected by evaluation, so the page keeps its CSP. */
async function open(kind, colorScheme) {
  const context = await browser.newContext({ ...VIEWPORTS[kind], colorScheme });
  await context.route(/youtube\.com|ytimg\.com|googlevideo\.com/, (route) => route.abort());
  return context.newPage();
}

/** Runs axe on the page as it is; returns the serious and critical violations. */
async function audit(page, label) {
  await page.evaluate(AXE_SOURCE);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  const grave = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  report.push({
    page: label,
    violations: result.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(' ')) })),
  });
  return grave.map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => `${n.target.join(' ')} — ${n.failureSummary}`).join('; ')}`);
}

for (const engine of ENGINES) {
  describe(`in ${engine}`, () => {
    before(async () => {
      browser = await launchBrowser(engine);
    });

    after(async () => {
      if (browser) await browser.close();
      browser = null;
    });

    for (const kind of Object.keys(VIEWPORTS)) {
      for (const colorScheme of ['dark', 'light']) {
        if (engine !== Engine.CHROMIUM && !FIREFOX_AUDITS.has(`${kind} ${colorScheme}`)) continue;
        test(`no serious or critical axe violation: ${kind}, ${colorScheme}`, { timeout: 90000 }, async () => {
          const found = [];

          const home = await open(kind, colorScheme);
          await home.goto(`${server.url}/?player=sim`);
          await waitFor(() => home.locator('#room-list .room-name').count(), { what: 'the room list' });
          // A selected toggle (white on the primary colour) is part of the audit.
          await home.locator('label[for="control-open"]').click();
          found.push(...(await audit(home, `home ${engine} ${kind} ${colorScheme}`)).map((x) => `home: ${x}`));
          await home.context().close();

          const join = await open(kind, colorScheme);
          await join.goto(`${server.url}/r/${roomId}?player=sim`);
          await join.locator('#join-modal:not([hidden])').waitFor();
          found.push(...(await audit(join, `join ${engine} ${kind} ${colorScheme}`)).map((x) => `join dialog: ${x}`));

          // Joined as a listener: the room with the "Live" pill, chat and queue.
          await join.locator('#join-name').fill('Auditor');
          await join.locator('#join-btn').click();
          await waitFor(() => join.evaluate(() => window.syncroom.connected && window.syncroom.playerKind), { what: 'the listener to connect' });
          await waitFor(() => join.locator('#conn-text').textContent().then((t) => t === 'Live'), { what: 'Live' });
          await join.locator('#chat-input').fill('hi');
          await join.locator('#btn-vote').waitFor();
          found.push(...(await audit(join, `room ${engine} ${kind} ${colorScheme}`)).map((x) => `room: ${x}`));
          await join.context().close();

          // The host's room: enabled controls (white on the primary colour), host tools.
          const host = await open(kind, colorScheme);
          await host.goto(`${server.url}/?player=sim`);
          await host.evaluate(([id, token]) => localStorage.setItem(`syncroom:host:${id}`, token), [roomId, hostToken]);
          await host.goto(`${server.url}/r/${roomId}?player=sim`);
          await host.locator('#join-name').fill('Host');
          await host.locator('#join-btn').click();
          await waitFor(() => host.evaluate(() => window.syncroom.connected && window.syncroom.isHost), { what: 'the host to connect' });
          await host.locator('#chat-input').fill('hello');
          found.push(...(await audit(host, `host room ${engine} ${kind} ${colorScheme}`)).map((x) => `host room: ${x}`));
          await host.context().close();

          assert.deepEqual(found, [], found.join('\n'));
        });
      }
    }
  });
}
