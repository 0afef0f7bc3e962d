// Who may do what, as the client reads it (clients/js/permissions.js and SyncRoom): the
// room's `permissions` per group and this client's role (host token, co-host token or
// none), following `permissions`, `control`, `cohosts` and `chat_deleted` events; a server
// without permissions is read from its `control`. The co-host and permission calls are
// checked against a small HTTP server on a real socket that records what it was sent.
// Run: node --test tests/js/*.test.mjs
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';

import { SyncRoom } from '../../clients/js/room.js';
import { roomPermissions, admits, deriveControl, Who } from '../../clients/js/permissions.js';
import {
  addCohost, listCohosts, revokeCohost, setPermissions, deleteChat, kick, sendChat, cohostLink,
} from '../../clients/js/api.js';

/** An EventSource whose events the test sends. */
class ScriptedEventSource {
  static opened = [];

  constructor(url) {
    this.url = new URL(url);
    this.readyState = 1;
    this.listeners = new Map();
    ScriptedEventSource.opened.push(this);
  }

  addEventListener(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, []);
    this.listeners.get(type).push(fn);
  }

  close() { this.readyState = 2; }

  send(type, id, data) {
    for (const fn of this.listeners.get(type) || []) fn({ data: JSON.stringify(data), lastEventId: String(id) });
  }
}

const rooms = [];
after(() => { for (const room of rooms) room.stop(); });

const HOST = 'a'.repeat(64);
const COHOST = 'b'.repeat(64);
const state = { video_id: null, media_url: null, position: 0, paused: true, rate: 1, duration: null, updated_at: 0 };
const custom = { playback: 'cohost', queue_add: 'anyone', queue_edit: 'host', skip: 'cohost', moderate: 'cohost', chat: 'anyone' };

/** Three clients of one room (host, co-host, anyone), each past the same snapshot. */
function followers(snapshot) {
  return [{ hostToken: HOST }, { cohostToken: COHOST }, {}].map((tokens) => {
    const room = new SyncRoom({ roomId: 'r1', baseUrl: 'http://127.0.0.1:9', EventSource: ScriptedEventSource, reportSync: false, ...tokens });
    rooms.push(room);
    room._connect();
    const es = ScriptedEventSource.opened.at(-1);
    es.send('snapshot', snapshot.version, snapshot);
    return { room, es };
  });
}

const groups = ['playback', 'queue_add', 'queue_edit', 'skip', 'moderate', 'chat'];
const allowed = (room) => groups.filter((g) => room.can(g));

test('each role may act in the groups the room gives it; the host in all', () => {
  const [host, cohost, anyone] = followers({ room_id: 'r1', version: 3, control: 'custom', permissions: custom, cohosts: [], state, queue: [], listeners: 3 });
  assert.deepEqual([host.room.role, cohost.room.role, anyone.room.role], ['host', 'cohost', 'anyone']);
  assert.equal(cohost.room.token, COHOST);
  assert.equal(anyone.room.token, null);
  assert.deepEqual(allowed(host.room), groups);
  assert.deepEqual(allowed(cohost.room), ['playback', 'queue_add', 'skip', 'moderate', 'chat']);
  assert.deepEqual(allowed(anyone.room), ['queue_add', 'chat']);
  assert.equal(cohost.room.canControl, true);
  assert.equal(anyone.room.canControl, false);
});

test('a permissions event changes who may, at once; a control event too', () => {
  const [, cohost, anyone] = followers({ room_id: 'r1', version: 3, control: 'host', permissions: roomPermissions({ control: 'host' }), cohosts: [], state, queue: [], listeners: 3 });
  assert.deepEqual(allowed(anyone.room), ['chat']);
  assert.deepEqual(allowed(cohost.room), ['chat']);
  const seen = [];
  anyone.room.addEventListener('permissions', (e) => seen.push(e.detail.control));
  const playbackForAll = { ...roomPermissions({ control: 'host' }), playback: 'anyone' };
  for (const { es } of [cohost, anyone]) es.send('permissions', 4, { version: 4, permissions: playbackForAll, control: 'custom', server_time: 1 });
  assert.deepEqual(seen, ['custom']);
  assert.equal(anyone.room.room.control, 'custom');
  assert.deepEqual(allowed(anyone.room), ['playback', 'chat']);
  assert.deepEqual(allowed(cohost.room), ['playback', 'chat']);
  const open = roomPermissions({ control: 'open' });
  anyone.es.send('control', 5, { version: 5, control: 'open', permissions: open, server_time: 2 });
  assert.deepEqual(allowed(anyone.room), ['playback', 'queue_add', 'queue_edit', 'skip', 'chat']);
  assert.equal(anyone.room.room.version, 5);
});

test('a server without permissions: the groups follow its control', () => {
  const [host, cohost, anyone] = followers({ room_id: 'r1', version: 1, control: 'host', state, queue: [], listeners: 1 });
  assert.deepEqual(allowed(host.room), groups);
  assert.deepEqual(allowed(cohost.room), ['chat']);
  assert.deepEqual(allowed(anyone.room), ['chat']);
  anyone.es.send('control', 2, { version: 2, control: 'open', server_time: 1 });
  assert.deepEqual(allowed(anyone.room), ['playback', 'queue_add', 'queue_edit', 'skip', 'chat']);
  assert.deepEqual(roomPermissions(null), { playback: 'host', queue_add: 'host', queue_edit: 'host', skip: 'host', moderate: 'host', chat: 'anyone' });
});

test('admits and deriveControl say what the server says', () => {
  assert.equal(admits('host', Who.COHOST), false);
  assert.equal(admits('cohost', Who.COHOST), true);
  assert.equal(admits('cohost', Who.ANYONE), false);
  assert.equal(admits('host', Who.HOST), true);
  assert.equal(deriveControl(roomPermissions({ control: 'host' })), 'host');
  assert.equal(deriveControl({ ...roomPermissions({ control: 'open' }), moderate: 'cohost', chat: 'host' }), 'open');
  assert.equal(deriveControl(custom), 'custom');
});

test('cohosts and chat_deleted events update the room and reach listeners', () => {
  const [host] = followers({
    room_id: 'r1', version: 7, control: 'host', permissions: custom, cohosts: [], state, queue: [], listeners: 1,
    chat: [{ version: 5, name: 'Ann', text: 'one' }, { version: 6, name: 'Bo', text: 'two' }],
  });
  const deleted = [];
  host.room.addEventListener('chat_deleted', (e) => deleted.push(e.detail.chat_version));
  host.es.send('cohosts', 8, { version: 8, cohosts: [{ cohost_id: 'c1', name: 'Bo' }], server_time: 1 });
  host.es.send('chat_deleted', 9, { version: 9, chat_version: 5, server_time: 2 });
  assert.deepEqual(host.room.room.cohosts, [{ cohost_id: 'c1', name: 'Bo' }]);
  assert.deepEqual(host.room.room.chat.map((m) => m.version), [6]);
  assert.deepEqual(deleted, [5]);
  assert.equal(host.room.room.version, 9);
});

test('a kicked room tells its listeners and stops: it does not reconnect by itself', () => {
  const [, , anyone] = followers({
    room_id: 'r1', version: 3, control: 'host', permissions: custom, cohosts: [], state, queue: [], listeners: 1, chat: [],
  });
  const kicked = [];
  anyone.room.addEventListener('kicked', (e) => kicked.push(e.detail.server_time));
  const opened = ScriptedEventSource.opened.length;
  anyone.es.send('kicked', '', { server_time: 42 });
  assert.deepEqual(kicked, [42]);
  assert.equal(anyone.es.readyState, 2, 'the stream is closed by the client');
  assert.equal(ScriptedEventSource.opened.length, opened, 'and not opened again');
});

test('the co-host, permission and chat calls send what the API names, with the token', async () => {
  const got = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => {
      got.push({ method: req.method, url: req.url, auth: req.headers.authorization || null, body: body ? JSON.parse(body) : null });
      if (req.method === 'DELETE') { res.writeHead(204); res.end(); return; }
      res.writeHead(req.url.endsWith('/cohosts') && req.method === 'POST' ? 201 : 200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(req.url.endsWith('/cohosts') && req.method === 'POST'
        ? { cohost_id: 'c1', cohost_token: COHOST, name: 'Bo' } : { version: 1, cohosts: [] }));
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${server.address().port}`;
  try {
    assert.deepEqual(await addCohost('r 1', 'Bo', HOST, base), { cohost_id: 'c1', cohost_token: COHOST, name: 'Bo' });
    await listCohosts('r 1', HOST, base);
    assert.equal(await revokeCohost('r 1', 'c1', HOST, base), null);
    await setPermissions('r 1', { playback: 'cohost' }, HOST, base);
    await deleteChat('r 1', 12, COHOST, base);
    await kick('r 1', 'f'.repeat(32), COHOST, base);
    await sendChat('r 1', 'Bo', 'hi', base, COHOST);
    await sendChat('r 1', 'Cy', 'yo', base);
  } finally {
    server.close();
  }
  const bearer = (t) => `Bearer ${t}`;
  assert.deepEqual(got, [
    { method: 'POST', url: '/api/rooms/r%201/cohosts', auth: bearer(HOST), body: { name: 'Bo' } },
    { method: 'GET', url: '/api/rooms/r%201/cohosts', auth: bearer(HOST), body: null },
    { method: 'DELETE', url: '/api/rooms/r%201/cohosts/c1', auth: bearer(HOST), body: null },
    { method: 'POST', url: '/api/rooms/r%201/commands', auth: bearer(HOST), body: { type: 'permissions', permissions: { playback: 'cohost' } } },
    { method: 'POST', url: '/api/rooms/r%201/commands', auth: bearer(COHOST), body: { type: 'delete_chat', chat_version: 12 } },
    { method: 'POST', url: '/api/rooms/r%201/commands', auth: bearer(COHOST), body: { type: 'kick', stream: 'f'.repeat(32) } },
    { method: 'POST', url: '/api/rooms/r%201/chat', auth: bearer(COHOST), body: { name: 'Bo', text: 'hi' } },
    { method: 'POST', url: '/api/rooms/r%201/chat', auth: null, body: { name: 'Cy', text: 'yo' } },
  ]);
});

test('a co-host link carries the token (and the id) in the fragment only', () => {
  const link = new URL(cohostLink('https://sync.example', 'friday', COHOST, 'c1'));
  assert.equal(link.pathname, '/r/friday');
  assert.equal(link.search, '');
  assert.equal(link.hash, `#cohost=${COHOST}&cohost_id=c1`);
  assert.equal(cohostLink('https://sync.example', 'friday', COHOST), `https://sync.example/r/friday#cohost=${COHOST}`);
});
