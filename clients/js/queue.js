/**
 * queue.js — a room's queue on the client: the changes a `queue` event carries,
 * applied in version order on top of the snapshot's queue, and the pure helpers a
 * page needs around it (total time, pasted links, batches of `queue_add`).
 *
 * A `queue` event says what changed, never the whole queue (a queue of 500 items
 * would otherwise cost every listener the whole list on each change):
 * - `op: "add"`: `items` appended (at `index` when the server names one);
 * - `op: "remove"`: `item_ids` dropped;
 * - `op: "move"`: `item_id` moved to `index` (past the end: to the end);
 * - `op: "update"`: `items` with metadata that arrived later (title, duration, ...).
 *
 * The functions here never mutate their input: they answer a new array, so a page
 * that kept the previous one can compare.
 *
 * @module queue
 */

import { parseYouTube } from './sync-core.js';
import { MAX_ITEMS_PER_ADD } from './limits.js';

/** What happens to the queue as items finish (the `queue_mode` command). */
export const QueueMode = Object.freeze({
  /** Each item plays once. */
  NORMAL: 'normal',
  /** A finished item goes to the end of the queue again. */
  LOOP: 'loop',
  /** `next` and auto-advance pick a random queued item. */
  SHUFFLE: 'shuffle',
});

/** The kinds of change a `queue` event carries. */
export const QueueOp = Object.freeze({ ADD: 'add', REMOVE: 'remove', MOVE: 'move', UPDATE: 'update' });

/** The most items one `queue_add` may carry (`items`), from the server's limits. */
export { MAX_ITEMS_PER_ADD };

/** The metadata fields an `update` may change on a queued item (never its id or what it plays). */
const UPDATABLE = Object.freeze(['title', 'artist', 'duration', 'added_by']);

/**
 * The queue after one `queue` event, or `null` when the event cannot be applied
 * (an op this client does not know): the caller then needs a fresh snapshot.
 *
 * An event of a server that still sends the whole queue (`queue` instead of `op`)
 * replaces it, so a page keeps working against either during a rolling upgrade.
 * Ids the queue does not hold are ignored (an `update` of an item removed meanwhile),
 * and an `add` of an id already held adds nothing, so a replayed event is harmless.
 *
 * @param {object[]} queue the queue before (not changed)
 * @param {object} event the `queue` event's data
 * @returns {object[]|null}
 */
export function applyQueueEvent(queue, event) {
  const before = Array.isArray(queue) ? queue : [];
  if (!event || typeof event !== 'object') return null;
  if (event.op === undefined && Array.isArray(event.queue)) return event.queue.slice();
  switch (event.op) {
    case QueueOp.ADD: return addItems(before, event.items, event.index);
    case QueueOp.REMOVE: return removeItems(before, event.item_ids);
    case QueueOp.MOVE: return moveItem(before, event.item_id, event.index);
    case QueueOp.UPDATE: return updateItems(before, event.items);
    default: return null;
  }
}

function addItems(queue, items, index) {
  if (!Array.isArray(items)) return null;
  const held = new Set(queue.map((item) => item.item_id));
  const fresh = items.filter((item) => item && typeof item.item_id === 'string' && !held.has(item.item_id));
  const at = Number.isInteger(index) ? clamp(index, 0, queue.length) : queue.length;
  return [...queue.slice(0, at), ...fresh, ...queue.slice(at)];
}

function removeItems(queue, ids) {
  if (!Array.isArray(ids)) return null;
  const gone = new Set(ids);
  return queue.filter((item) => !gone.has(item.item_id));
}

function moveItem(queue, id, index) {
  if (typeof id !== 'string' || !Number.isInteger(index)) return null;
  const from = queue.findIndex((item) => item.item_id === id);
  if (from < 0) return queue.slice();
  const rest = queue.filter((_, i) => i !== from);
  // The index is where the item ends up, counted in the queue without it; past the end is the end.
  const to = clamp(index, 0, rest.length);
  return [...rest.slice(0, to), queue[from], ...rest.slice(to)];
}

function updateItems(queue, items) {
  if (!Array.isArray(items)) return null;
  const changes = new Map();
  for (const item of items) {
    if (item && typeof item.item_id === 'string') changes.set(item.item_id, item);
  }
  return queue.map((item) => {
    const change = changes.get(item.item_id);
    if (!change) return item;
    const next = { ...item };
    for (const field of UPDATABLE) {
      if (field in change) next[field] = change[field];
    }
    return next;
  });
}

function clamp(n, lo, hi) {
  return Math.min(hi, Math.max(lo, n));
}

/**
 * The queue's total length: `seconds` over the items whose `duration` is known,
 * and how many items are `unknown` (no duration yet).
 * @param {object[]} queue
 * @returns {{seconds:number, unknown:number}}
 */
export function queueDuration(queue) {
  let seconds = 0;
  let unknown = 0;
  for (const item of Array.isArray(queue) ? queue : []) {
    const d = item ? item.duration : null;
    if (typeof d === 'number' && Number.isFinite(d) && d > 0) seconds += d;
    else unknown += 1;
  }
  return { seconds, unknown };
}

/**
 * One pasted line as a queue item: a YouTube link or id (`{video_id}`), a YouTube
 * playlist link (`{playlist_id}`), a `/media/...` path or an http(s) link to a media
 * file (`{media_url}`); `null` for anything else. The server checks each item again.
 * @param {string} line
 * @returns {{video_id:string}|{media_url:string}|{playlist_id:string}|null}
 */
export function parseQueueLine(line) {
  const text = typeof line === 'string' ? line.trim() : '';
  if (!text) return null;
  if (text.startsWith('/media/')) return { media_url: text };
  const video = parseYouTube(text);
  if (video) return { video_id: video.videoId };
  let url = null;
  try { url = new URL(text); } catch { return null; }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return null;
  const list = url.searchParams.get('list');
  if (list && /(^|\.)youtube\.com$/i.test(url.hostname) && /^[A-Za-z0-9_-]{2,64}$/.test(list)) {
    return { playlist_id: list };
  }
  return { media_url: url.href };
}

/**
 * Pasted text, one link per line: the `items` to add (each with the 1-based `line`
 * it came from, which is not sent) and the `rejected` lines. Blank lines and lines
 * starting with `#` are skipped.
 * @param {string} text
 * @returns {{items:{line:number, item:object}[], rejected:{line:number, text:string}[]}}
 */
export function parseQueueLines(text) {
  const items = [];
  const rejected = [];
  String(text ?? '').split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const item = parseQueueLine(line);
    if (item) items.push({ line: i + 1, item });
    else rejected.push({ line: i + 1, text: line });
  });
  return { items, rejected };
}

/**
 * `list` cut into consecutive batches of at most `size` (default {@link MAX_ITEMS_PER_ADD}).
 * @template T
 * @param {T[]} list
 * @param {number} [size]
 * @returns {T[][]}
 */
export function chunk(list, size = MAX_ITEMS_PER_ADD) {
  if (!(Number.isInteger(size) && size > 0)) throw new RangeError('chunk size must be a positive integer');
  const out = [];
  for (let i = 0; i < list.length; i += size) out.push(list.slice(i, i + size));
  return out;
}
