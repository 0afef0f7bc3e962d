// SyncRoom (clients/js/room.js) following a room's queue: the snapshot's queue, then
// `queue` events applied by `op` in version order; `queue_mode` and `persistent`; and a
// gap or an op it cannot apply makes it reconnect at once rather than go on with a
// queue that differs from the room's. The stream is a scripted EventSource (the class
// SyncRoom takes as an option), so each case says exactly what the server sent.
// Run: node --test tests/js/*.test.mjs
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';

import { SyncRoom } from '../../clients/js/room.js';

/** An EventSource whose events the test sends; every one made is kept in `opened`. */
class ScriptedEventSource {
  static opened = [];

  constructor(url) {
    this.url = new URL(url);
    this.readyState = 1;
    this.listeners = new Map();
    this.onopen = null;
    this.onerror = null;
    ScriptedEventSource.opened.push(this);
  }

  addEventListener(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, []);
    this.listeners.get(type).push(fn);
  }

  close() { this.readyState = 2; }

  /** One SSE event as the browser delivers it: `data` as text, `lastEventId` as a string. */
  send(type, id, data) {
    if (this.readyState === 2) return;
    for (const fn of this.listeners.get(type) || []) fn({ data: JSON.stringify(data), lastEventId: id === null ? '' : String(id) });
  }
}

const rooms = [];
afterEach(() => {
  for (const room of rooms.splice(0)) room.stop();
  ScriptedEventSource.opened = [];
});

const item = (id, extra = {}) => ({
  item_id: id, video_id: 'dQw4w9WgXcQ', media_url: null, title: null, artist: null, duration: null, added_by: null, ...extra,
});
const ids = (queue) => queue.map((i) => i.item_id);
const state = { video_id: null, media_url: null, position: 0, paused: true, rate: 1, duration: null, updated_at: 0 };

/** A SyncRoom on a scripted stream, past its snapshot at `version` with `queue`. */
function followed(version, queue, extra = {}) {
  const room = new SyncRoom({ roomId: 'r1', baseUrl: 'http://127.0.0.1:9', EventSource: ScriptedEventSource, reportSync: false });
  rooms.push(room);
  const seen = [];
  room.addEventListener('queue', (e) => seen.push(e.detail));
  // Opening the stream is all this test needs of start() (no clock, no timers).
  room._connect();
  const es = ScriptedEventSource.opened.at(-1);
  es.send('snapshot', version, { room_id: 'r1', control: 'host', version, state, queue, listeners: 1, ...extra });
  return { room, es, seen };
}

test('queue events are applied in version order on top of the snapshot, and each says the whole queue after it', () => {
  const { room, es, seen } = followed(10, [item('q1'), item('q2')]);
  es.send('queue', 11, { version: 11, op: 'add', items: [item('q3', { added_by: 'Ann', duration: 61 })], server_time: 1 });
  es.send('queue', 12, { version: 12, op: 'move', item_id: 'q3', index: 0, server_time: 2 });
  es.send('queue', 13, { version: 13, op: 'update', items: [{ item_id: 'q1', title: 'One', duration: 30 }], server_time: 3 });
  es.send('queue', 14, { version: 14, op: 'remove', item_ids: ['q2'], server_time: 4 });

  assert.deepEqual(ids(room.queue), ['q3', 'q1']);
  assert.deepEqual(room.queue[1], item('q1', { title: 'One', duration: 30 }));
  assert.equal(room.room.version, 14);
  assert.deepEqual(seen.map((d) => [d.version, d.op, ids(d.queue)]), [
    [11, 'add', ['q1', 'q2', 'q3']],
    [12, 'move', ['q3', 'q1', 'q2']],
    [13, 'update', ['q3', 'q1', 'q2']],
    [14, 'remove', ['q3', 'q1']],
  ]);
  // A replayed event (after a reconnection) is dropped by its id, not applied twice.
  es.send('queue', 12, { version: 12, op: 'move', item_id: 'q3', index: 1, server_time: 2 });
  assert.deepEqual(ids(room.queue), ['q3', 'q1']);
  assert.equal(room.stats.duplicates, 1);
  assert.equal(ScriptedEventSource.opened.length, 1, 'no reconnection');
});

test('queue_mode and persistent follow their events (normal and not kept by default)', () => {
  const { room, es } = followed(5, []);
  assert.equal(room.queueMode, 'normal');
  assert.equal(room.persistent, false);
  es.send('queue_mode', 6, { version: 6, queue_mode: 'shuffle', server_time: 1 });
  es.send('persistent', 7, { version: 7, persistent: true, server_time: 2 });
  assert.equal(room.queueMode, 'shuffle');
  assert.equal(room.persistent, true);
  assert.equal(room.room.version, 7);
  // A later snapshot says what the room holds now.
  es.send('snapshot', 8, { room_id: 'r1', control: 'host', version: 8, state, queue: [], queue_mode: 'loop', persistent: false, listeners: 1 });
  assert.equal(room.queueMode, 'loop');
  assert.equal(room.persistent, false);
});

test('a gap: the event is not applied, the stream reopens from the last id applied, and the replay fills it', () => {
  const { room, es, seen } = followed(10, [item('q1')]);
  es.send('queue', 12, { version: 12, op: 'remove', item_ids: ['q2'], server_time: 2 });

  assert.equal(room.stats.gaps, 1);
  assert.equal(room.stats.resyncs, 1);
  assert.equal(room.lastEventId, 10, 'the event past the gap was not taken');
  assert.deepEqual(seen, []);
  assert.equal(es.readyState, 2, 'the old stream is closed');
  const again = ScriptedEventSource.opened.at(-1);
  assert.notEqual(again, es);
  assert.equal(again.url.searchParams.get('last_event_id'), '10');

  again.send('queue', 11, { version: 11, op: 'add', items: [item('q2')], server_time: 1 });
  again.send('queue', 12, { version: 12, op: 'remove', item_ids: ['q2'], server_time: 2 });
  assert.deepEqual(ids(room.queue), ['q1']);
  assert.deepEqual(seen.map((d) => d.version), [11, 12]);
});

test('the same gap again from the same id is believed, not chased forever', () => {
  const { room } = followed(10, [item('q1')]);
  ScriptedEventSource.opened.at(-1).send('queue', 12, { version: 12, op: 'add', items: [item('q3')], server_time: 2 });
  const again = ScriptedEventSource.opened.at(-1);
  again.send('queue', 12, { version: 12, op: 'add', items: [item('q3')], server_time: 2 });
  assert.equal(ScriptedEventSource.opened.length, 2, 'one reconnection only');
  assert.deepEqual(ids(room.queue), ['q1', 'q3']);
  assert.equal(room.stats.gaps, 2);
});

test('an op this client does not know: a fresh stream (a snapshot), not a guessed queue', () => {
  const { room, es, seen } = followed(10, [item('q1')]);
  es.send('queue', 11, { version: 11, op: 'reverse', server_time: 1 });
  assert.equal(room.stats.resyncs, 1);
  assert.deepEqual(seen, []);
  const fresh = ScriptedEventSource.opened.at(-1);
  assert.notEqual(fresh, es);
  assert.equal(fresh.url.searchParams.get('last_event_id'), null, 'no last id: the server starts with a snapshot');
  fresh.send('snapshot', 11, { room_id: 'r1', control: 'host', version: 11, state, queue: [item('q2'), item('q1')], listeners: 1 });
  assert.deepEqual(ids(room.queue), ['q2', 'q1']);
});

test("an older server's whole-queue events are still taken", () => {
  const { room, es, seen } = followed(3, [item('q1')]);
  es.send('queue', 4, { version: 4, queue: [item('q1'), item('q2')], server_time: 1 });
  assert.deepEqual(ids(room.queue), ['q1', 'q2']);
  assert.deepEqual(ids(seen[0].queue), ['q1', 'q2']);
  assert.equal(room.stats.resyncs, 0);
});
