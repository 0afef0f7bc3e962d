// HTTPS with HTTP/2: one page opens ten rooms' event streams against the TLS
// server and all ten stay live. Over HTTP/1.1 a browser holds at most six
// connections per host, so the seventh stream would wait; over HTTP/2 they are
// streams of one connection. The certificate is made here with openssl.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { startServer, launchBrowser, openPage, screenshot, waitFor } from './helpers.mjs';

const ROOMS = 10;

let server;
let browser;
let certDir;

before(async () => {
  certDir = fs.mkdtempSync(path.join(os.tmpdir(), 'syncroom-tls-'));
  const cert = path.join(certDir, 'cert.pem');
  const key = path.join(certDir, 'key.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  // Ten rooms from one address: more than the default creation burst.
  server = await startServer('tls', ['--keepalive', '2', '--rooms-burst', '20'], { tls: { cert, key } });
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
  if (certDir) fs.rmSync(certDir, { recursive: true, force: true });
});

test('one page holds ten rooms\' event streams over HTTP/2, all live', { timeout: 90000 }, async () => {
  assert.match(server.url, /^https:/);
  const page = await openPage(browser, { ignoreHTTPSErrors: true });
  // A light same-origin document: the streams are the page's only other traffic.
  const navigation = await page.goto(`${server.url}/healthz`);
  assert.equal(navigation.status(), 200);

  const rooms = await page.evaluate(async (count) => {
    window.__streams = [];
    const rooms = [];
    for (let i = 0; i < count; i += 1) {
      const res = await fetch('/api/rooms', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ name: `Room ${i}`, video_id: 'dQw4w9WgXcQ' }),
      });
      if (res.status !== 201) throw new Error(`create room ${i}: ${res.status}`);
      const { room_id: id, host_token: token } = await res.json();
      rooms.push({ id, token });
      const stream = { id, snapshot: false, causes: [], errors: 0 };
      const source = new EventSource(`/api/rooms/${id}/events?name=tab${i}`);
      source.addEventListener('snapshot', () => { stream.snapshot = true; });
      source.addEventListener('state', (e) => { stream.causes.push(JSON.parse(e.data).cause); });
      source.addEventListener('error', () => { stream.errors += 1; });
      stream.source = source;
      window.__streams.push(stream);
    }
    return rooms;
  }, ROOMS);
  assert.equal(rooms.length, ROOMS);

  // Every one of the ten is open at once: each got its snapshot.
  await waitFor(() => page.evaluate(() => window.__streams.every((s) => s.snapshot)),
    { timeout: 20000, what: 'a snapshot on all ten streams' });
  // The server counts one listener in each room, at the same time.
  const listeners = await page.evaluate(async (ids) => Promise.all(ids.map(async (id) => {
    const res = await fetch(`/api/rooms/${id}`);
    return (await res.json()).listeners;
  })), rooms.map((r) => r.id));
  assert.deepEqual(listeners, Array(ROOMS).fill(1), 'one live listener in each room');

  // A command in each room reaches that room's stream: all ten are live.
  await page.evaluate(async (all) => {
    for (const { id, token } of all) {
      const res = await fetch(`/api/rooms/${id}/commands`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
        body: JSON.stringify({ type: 'play' }),
      });
      if (res.status !== 200) throw new Error(`play in ${id}: ${res.status}`);
    }
  }, rooms);
  await waitFor(() => page.evaluate(() => window.__streams.every((s) => s.causes.includes('play'))),
    { timeout: 20000, what: 'the play event on all ten streams' });
  const errors = await page.evaluate(() => window.__streams.map((s) => s.errors));
  assert.deepEqual(errors, Array(ROOMS).fill(0), 'no stream dropped or waited for a reconnect');

  // The protocol was HTTP/2: the document and every request of the page.
  const protocols = await page.evaluate(() => ({
    navigation: performance.getEntriesByType('navigation')[0].nextHopProtocol,
    // The API requests the page made (the browser's own favicon fetch has no timing).
    resources: performance.getEntriesByType('resource')
      .filter((e) => new URL(e.name).pathname.startsWith('/api/'))
      .map((e) => [e.name, e.nextHopProtocol]),
  }));
  assert.equal(protocols.navigation, 'h2', JSON.stringify(protocols));
  assert.ok(protocols.resources.length >= 2 * ROOMS, JSON.stringify(protocols));
  for (const [name, protocol] of protocols.resources) assert.equal(protocol, 'h2', `${name}: ${protocol}`);

  await screenshot(page, 'tls-ten-rooms');
  await page.evaluate(() => window.__streams.forEach((s) => s.source.close()));
  assert.deepEqual(page.errors, []);
});
