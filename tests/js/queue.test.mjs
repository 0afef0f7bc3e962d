// Unit tests of the client's queue (clients/js/queue.js): `queue` events applied
// by `op` on top of a snapshot's queue, the total time, pasted links and batches.
// Run: node --test tests/js/*.test.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  applyQueueEvent, queueDuration, parseQueueLine, parseQueueLines, chunk, QueueMode, QueueOp, MAX_ITEMS_PER_ADD,
} from '../../clients/js/queue.js';

const item = (id, extra = {}) => ({
  item_id: id, video_id: 'dQw4w9WgXcQ', media_url: null, title: null, artist: null, duration: null, added_by: null, ...extra,
});
const ids = (queue) => queue.map((i) => i.item_id);
const Q = () => [item('q1'), item('q2'), item('q3')];

// Each case: the event's data (version and server_time left out: the order is the caller's),
// and the ids the queue holds after it (or null: the event cannot be applied).
const CASES = [
  ['add appends one item', { op: 'add', items: [item('q4')] }, ['q1', 'q2', 'q3', 'q4']],
  ['add appends many items in their order', { op: 'add', items: [item('q4'), item('q5'), item('q6')] }, ['q1', 'q2', 'q3', 'q4', 'q5', 'q6']],
  ['add at an index inserts there', { op: 'add', items: [item('q4')], index: 1 }, ['q1', 'q4', 'q2', 'q3']],
  ['add at an index past the end appends', { op: 'add', items: [item('q4')], index: 99 }, ['q1', 'q2', 'q3', 'q4']],
  ['add of an id already held adds nothing (a replay)', { op: 'add', items: [item('q2')] }, ['q1', 'q2', 'q3']],
  ['add of no items changes nothing', { op: 'add', items: [] }, ['q1', 'q2', 'q3']],
  ['remove drops one item', { op: 'remove', item_ids: ['q2'] }, ['q1', 'q3']],
  ['remove drops several items', { op: 'remove', item_ids: ['q3', 'q1'] }, ['q2']],
  ['remove of an unknown id is ignored', { op: 'remove', item_ids: ['q9'] }, ['q1', 'q2', 'q3']],
  ['move forward', { op: 'move', item_id: 'q1', index: 2 }, ['q2', 'q3', 'q1']],
  ['move backward', { op: 'move', item_id: 'q3', index: 0 }, ['q3', 'q1', 'q2']],
  ['move to where it is', { op: 'move', item_id: 'q2', index: 1 }, ['q1', 'q2', 'q3']],
  ['move past the end goes to the end', { op: 'move', item_id: 'q1', index: 50 }, ['q2', 'q3', 'q1']],
  ['move below zero goes to the start', { op: 'move', item_id: 'q3', index: -4 }, ['q3', 'q1', 'q2']],
  ['move of an unknown id is ignored', { op: 'move', item_id: 'q9', index: 0 }, ['q1', 'q2', 'q3']],
  ['update of an unknown id is ignored', { op: 'update', items: [item('q9', { title: 'x' })] }, ['q1', 'q2', 'q3']],
  ['an unknown op cannot be applied', { op: 'shuffle', items: [] }, null],
  ['add without items cannot be applied', { op: 'add' }, null],
  ['remove without ids cannot be applied', { op: 'remove' }, null],
  ['move without an integer index cannot be applied', { op: 'move', item_id: 'q1', index: 1.5 }, null],
  ['a whole queue (an older server) replaces it', { queue: [item('q7'), item('q8')] }, ['q7', 'q8']],
  ['neither op nor queue cannot be applied', {}, null],
];

for (const [name, event, want] of CASES) {
  test(`queue event: ${name}`, () => {
    const before = Q();
    const frozen = JSON.stringify(before);
    const after = applyQueueEvent(before, event);
    assert.equal(JSON.stringify(before), frozen, 'the queue before is not changed');
    assert.deepEqual(after === null ? null : ids(after), want);
  });
}

test('update changes the metadata of the items it names, and nothing else', () => {
  const before = Q();
  const after = applyQueueEvent(before, {
    op: QueueOp.UPDATE,
    items: [
      // What it plays and its id stay; a field the event leaves out stays too.
      { item_id: 'q2', video_id: 'AAAAAAAAAAA', title: 'Song two', duration: 212.5 },
      { item_id: 'q3', artist: 'Band', added_by: 'Ann' },
    ],
  });
  assert.deepEqual(after[0], before[0]);
  assert.deepEqual(after[1], { ...before[1], title: 'Song two', duration: 212.5 });
  assert.deepEqual(after[2], { ...before[2], artist: 'Band', added_by: 'Ann' });
  assert.equal(before[1].title, null);
});

test('events applied in version order rebuild the queue the server holds', () => {
  // A snapshot at version 10, then versions 11..15, as a listener receives them.
  let queue = [item('q1')];
  const events = [
    { version: 11, op: 'add', items: [item('q2'), item('q3')] },
    { version: 12, op: 'move', item_id: 'q3', index: 0 },
    { version: 13, op: 'update', items: [{ item_id: 'q2', duration: 60 }] },
    { version: 14, op: 'remove', item_ids: ['q1'] },
    { version: 15, op: 'add', items: [item('q4', { duration: 30 })] },
  ];
  for (const e of events) queue = applyQueueEvent(queue, e);
  assert.deepEqual(ids(queue), ['q3', 'q2', 'q4']);
  assert.deepEqual(queueDuration(queue), { seconds: 90, unknown: 1 });
});

test('the total time counts known durations and says how many are unknown', () => {
  assert.deepEqual(queueDuration([]), { seconds: 0, unknown: 0 });
  assert.deepEqual(queueDuration([item('a', { duration: 61.5 }), item('b', { duration: 120 })]), { seconds: 181.5, unknown: 0 });
  assert.deepEqual(queueDuration([item('a', { duration: 10 }), item('b'), item('c', { duration: 0 })]), { seconds: 10, unknown: 2 });
  assert.deepEqual(queueDuration(null), { seconds: 0, unknown: 0 });
});

test('a pasted line becomes a video, a playlist or a media item, or nothing', () => {
  const cases = [
    ['dQw4w9WgXcQ', { video_id: 'dQw4w9WgXcQ' }],
    ['  https://youtu.be/dQw4w9WgXcQ?t=42  ', { video_id: 'dQw4w9WgXcQ' }],
    ['https://www.youtube.com/watch?v=9bZkp7q19f0&list=PLx', { video_id: '9bZkp7q19f0' }],
    ['https://www.youtube.com/playlist?list=PLrAXtmErZgOeiKm4sgNOknGvNjby9efdf', { playlist_id: 'PLrAXtmErZgOeiKm4sgNOknGvNjby9efdf' }],
    ['/media/albums/one%20two.mp3', { media_url: '/media/albums/one%20two.mp3' }],
    ['https://example.com/song.mp3', { media_url: 'https://example.com/song.mp3' }],
    ['http://example.com/a b.ogg', { media_url: 'http://example.com/a%20b.ogg' }],
    ['ftp://example.com/song.mp3', null],
    ['javascript:alert(1)', null],
    ['not a link', null],
    ['', null],
  ];
  for (const [line, want] of cases) assert.deepEqual(parseQueueLine(line), want, line);
});

test('pasted text: one item per line with its line number, blank and # lines skipped, the rest rejected', () => {
  const text = 'dQw4w9WgXcQ\n\n# a comment\n/media/a.wav\r\nnonsense\nhttps://example.com/b.flac\n';
  assert.deepEqual(parseQueueLines(text), {
    items: [
      { line: 1, item: { video_id: 'dQw4w9WgXcQ' } },
      { line: 4, item: { media_url: '/media/a.wav' } },
      { line: 6, item: { media_url: 'https://example.com/b.flac' } },
    ],
    rejected: [{ line: 5, text: 'nonsense' }],
  });
});

test('a long list goes in batches of at most the most items one queue_add takes', () => {
  assert.equal(MAX_ITEMS_PER_ADD, 100);
  const list = Array.from({ length: 250 }, (_, i) => i);
  const batches = chunk(list);
  assert.deepEqual(batches.map((b) => b.length), [100, 100, 50]);
  assert.deepEqual(batches.flat(), list);
  assert.deepEqual(chunk([], 3), []);
  assert.deepEqual(chunk([1, 2, 3], 3), [[1, 2, 3]]);
  assert.throws(() => chunk([1], 0), RangeError);
});

test('queue modes are a frozen enum of the three the server takes', () => {
  assert.deepEqual(Object.values(QueueMode), ['normal', 'loop', 'shuffle']);
  assert.ok(Object.isFrozen(QueueMode));
});
