/**
 * api.js — the REST calls of the syncroom API, one function per route.
 *
 * Every function takes the server's origin last (`baseUrl`, empty for the
 * page's own) and resolves to the parsed JSON answer; an error answer rejects
 * with an {@link ApiError} carrying the server's `code`, `message` and, for
 * `429`/`503`, `retryAfter` in seconds.
 *
 * @module api
 */

import { chunk, MAX_ITEMS_PER_ADD } from './queue.js';

/** An error answered by the server: `status`, `code` and `message` from its JSON body. */
export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message || code || `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

/**
 * One JSON request: `body` is sent as JSON, `token` as `Authorization: Bearer`.
 * Resolves to the parsed answer (`null` for `204`); rejects with an {@link ApiError}.
 */
export async function request(baseUrl, method, path, { body, token } = {}) {
  const headers = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(`${baseUrl}${path}`, {
    method, headers, cache: 'no-store',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 204) return null;
  let json = null;
  try { json = await res.json(); } catch { /* a body that is not JSON: keep the status */ }
  if (!res.ok) {
    const err = json && json.error ? json.error : {};
    const retry = res.headers.get('Retry-After');
    throw new ApiError(res.status, err.code || 'http_error', err.message || `HTTP ${res.status}`,
      retry === null ? null : Number(retry));
  }
  return json;
}

/**
 * Creates a room. Resolves to `{room_id, host_token, room}`; keep `host_token`
 * private (it is shown once). Rooms are `unlisted` unless `visibility: 'public'`; a
 * `persistent: true` room is exempt from the server's idle expiry.
 * @param {{room_id?:string, name?:string, control?:'host'|'open', visibility?:'public'|'unlisted', video_id?:string, media_url?:string, persistent?:boolean}} [fields]
 * @param {string} [baseUrl=''] the server's origin, empty for the page's own
 */
export function createRoom(fields = {}, baseUrl = '') {
  return request(baseUrl, 'POST', '/api/rooms', { body: fields });
}

/** Lists the public rooms on the server: `{rooms: [{room_id, name, listeners, video_id}]}`. */
export function listRooms(baseUrl = '') {
  return request(baseUrl, 'GET', '/api/rooms');
}


/** One room: `{room_id, name, control, listeners, state, queue, ...}`. */
export function getRoom(roomId, baseUrl = '') {
  return request(baseUrl, 'GET', `/api/rooms/${encodeURIComponent(roomId)}`);
}

/**
 * Sends one command (see the API's command table). Resolves to `{version, room}`.
 * `hostToken` is needed unless the room's control is `open`.
 */
export function sendCommand(roomId, command, hostToken = null, baseUrl = '') {
  return request(baseUrl, 'POST', `/api/rooms/${encodeURIComponent(roomId)}/commands`,
    { body: command, token: hostToken });
}

/**
 * Adds to a room's queue (`queue_add`). `what` is the command's fields: one item
 * (`{video_id}` or `{media_url}`, with `title`, `artist` and `duration` optional),
 * `{items: [...]}` (1 to {@link MAX_ITEMS_PER_ADD} such items, added all or nothing: a
 * bad one is `400 invalid_value` whose message names it, `items[3]: ...`) or
 * `{playlist_id}` (a YouTube playlist; the server needs its YouTube API key). An optional
 * `name` says who added them (the items' `added_by`; an item's own `name` wins).
 * Resolves to `{version, room}`.
 */
export function queueAdd(roomId, what, hostToken = null, baseUrl = '') {
  return sendCommand(roomId, { ...what, type: 'queue_add' }, hostToken, baseUrl);
}

/**
 * Adds any number of items, in order, in `queue_add` commands of at most
 * {@link MAX_ITEMS_PER_ADD} items each. Each command is all or nothing, so on an error
 * the batches before it stay added: the {@link ApiError} it rejects with also carries
 * `added` (how many items were added) and `batchStart` (the index in `items` of the
 * refused batch's first item, which its message's `items[i]` counts from).
 * Resolves to `{added, version}` (`version` is `null` for no items).
 * @param {string} roomId
 * @param {object[]} items each `{video_id}` or `{media_url}`, with `title`, `artist`, `duration`, `name` optional
 * @param {{name?:string, hostToken?:string|null, baseUrl?:string}} [options] `name`: who added them
 */
export async function queueAddAll(roomId, items, { name, hostToken = null, baseUrl = '' } = {}) {
  let added = 0;
  let version = null;
  for (const batch of chunk(items, MAX_ITEMS_PER_ADD)) {
    const what = name ? { items: batch, name } : { items: batch };
    try {
      ({ version } = await queueAdd(roomId, what, hostToken, baseUrl));
    } catch (err) {
      if (err instanceof ApiError) Object.assign(err, { added, batchStart: added });
      throw err;
    }
    added += batch.length;
  }
  return { added, version };
}

/**
 * Sets what happens as items finish (`queue_mode`): `normal`, `loop` (a finished item goes
 * to the end of the queue again) or `shuffle` (the next item is picked at random).
 * Resolves to `{version, room}`.
 */
export function setQueueMode(roomId, queueMode, hostToken = null, baseUrl = '') {
  return sendCommand(roomId, { type: 'queue_mode', queue_mode: queueMode }, hostToken, baseUrl);
}

/**
 * Keeps the room (`persistent: true`: exempt from the server's idle expiry) or lets it
 * expire again; the host token is needed. Resolves to `{version, room}`.
 */
export function setPersistent(roomId, persistent, hostToken, baseUrl = '') {
  return sendCommand(roomId, { type: 'persistent', persistent }, hostToken, baseUrl);
}

/**
 * Sets the room's vote skip: an item is skipped when `max(minVotes, ceil(ratio × listeners))`
 * live streams voted; `ratio` 0 turns it off. The host token is needed. Resolves to `{version, room}`.
 */
export function setVoteSkip(roomId, ratio, minVotes, hostToken, baseUrl = '') {
  return sendCommand(roomId, { type: 'vote_skip', ratio, min_votes: minVotes }, hostToken, baseUrl);
}

/**
 * A vote to skip the loaded item: `streamToken` (from the stream's `hello`) binds it to
 * this page's live stream, once per item. Resolves to `{skip, needed, listeners, counted}`.
 */
export function sendVote(roomId, streamToken, baseUrl = '') {
  return request(baseUrl, 'POST', `/api/rooms/${encodeURIComponent(roomId)}/vote`, {
    body: { stream_token: streamToken, vote: 'skip' },
  });
}

/**
 * Says something in a room's chat. Resolves to `{version}`. `token` (the host's or a
 * co-host's) is needed only where the room's `chat` permission is `host` or `cohost`.
 */
export function sendChat(roomId, name, text, baseUrl = '', token = null) {
  return request(baseUrl, 'POST', `/api/rooms/${encodeURIComponent(roomId)}/chat`, { body: { name, text }, token });
}

/**
 * Sets who may do what (`permissions`, host only): any subset of the groups `playback`,
 * `queue_add`, `queue_edit`, `skip`, `moderate` and `chat`, each `host`, `cohost` or
 * `anyone` (`moderate` never `anyone`). Resolves to `{version, room}`.
 */
export function setPermissions(roomId, permissions, hostToken, baseUrl = '') {
  return sendCommand(roomId, { type: 'permissions', permissions }, hostToken, baseUrl);
}

/**
 * Removes one kept chat message (`delete_chat`, group `moderate`), named by the version it
 * was sent as. Resolves to `{version, room}`; a message the room does not keep is `404`.
 */
export function deleteChat(roomId, chatVersion, token, baseUrl = '') {
  return sendCommand(roomId, { type: 'delete_chat', chat_version: chatVersion }, token, baseUrl);
}

/**
 * Ends one listener's event stream (`kick`, group `moderate`), named by its stream id (from
 * its `hello`, or the room's `members`). Its token is refused from then on; a reload joins
 * again with a new stream. Resolves to `{version, room}` (the room does not change).
 */
export function kick(roomId, stream, token, baseUrl = '') {
  return sendCommand(roomId, { type: 'kick', stream }, token, baseUrl);
}

const cohostsPath = (roomId) => `/api/rooms/${encodeURIComponent(roomId)}/cohosts`;

/**
 * Makes a co-host (host token needed). Resolves to `{cohost_id, cohost_token, name}`: the
 * token is shown only here (a co-host link carries it: {@link cohostLink}).
 */
export function addCohost(roomId, name, hostToken, baseUrl = '') {
  return request(baseUrl, 'POST', cohostsPath(roomId), { body: { name }, token: hostToken });
}

/** The room's co-hosts, oldest first, never their tokens: `{cohosts: [{cohost_id, name}]}` (host token needed). */
export function listCohosts(roomId, hostToken, baseUrl = '') {
  return request(baseUrl, 'GET', cohostsPath(roomId), { token: hostToken });
}

/** Revokes a co-host at once (host token needed): their token is refused from then on. Resolves to `null`. */
export function revokeCohost(roomId, cohostId, hostToken, baseUrl = '') {
  return request(baseUrl, 'DELETE', `${cohostsPath(roomId)}/${encodeURIComponent(cohostId)}`, { token: hostToken });
}

/**
 * A co-host link: the room's page with the co-host token in the fragment, which browsers
 * never send to a server. `cohostId` (optional) lets the page see at once, from the room's
 * `cohosts`, that the host revoked it.
 */
export function cohostLink(origin, roomId, cohostToken, cohostId = null) {
  const fragment = new URLSearchParams({ cohost: cohostToken });
  if (cohostId) fragment.set('cohost_id', cohostId);
  return `${origin}/r/${encodeURIComponent(roomId)}#${fragment}`;
}

/**
 * Exchanges the host token for a new one (the current one is needed). Resolves to
 * `{host_token, version}`; the old token, and every host link made with it, stop working.
 */
export function resetHostToken(roomId, hostToken, baseUrl = '') {
  return request(baseUrl, 'POST', `/api/rooms/${encodeURIComponent(roomId)}/host-token`, { token: hostToken });
}

/**
 * Reports this page's drift to the room (sync health), bound to its event stream
 * by `stream_token` (from the stream's newest `hello`).
 * Resolves to `{sync: {reporting, in_sync, drift_p95_ms, behind}, report_every_ms}`.
 * @param {string} roomId
 * @param {{stream_token:string, drift_p50_ms:number, drift_p95_ms:number, player:'youtube'|'media'|'sim', buffering?:boolean, name?:string}} report
 */
export function reportSync(roomId, report, baseUrl = '') {
  return request(baseUrl, 'POST', `/api/rooms/${encodeURIComponent(roomId)}/sync`, { body: report });
}

/** Closes a room for everyone (host token needed). */
export function deleteRoom(roomId, hostToken, baseUrl = '') {
  return request(baseUrl, 'DELETE', `/api/rooms/${encodeURIComponent(roomId)}`, { token: hostToken });
}

/**
 * A readiness report for the room's ready gate: `streamToken` (from the stream's
 * `hello`) binds it to this page's live stream. Resolves to the gate's progress.
 */
export function sendReady(roomId, streamToken, readyGate, baseUrl = '') {
  return request(baseUrl, 'POST', `/api/rooms/${encodeURIComponent(roomId)}/ready`, {
    body: { stream_token: streamToken, ready_gate: readyGate },
  });
}

/**
 * Lists the server's media files (`--media-dir`): `{files: [{path, name, size,
 * content_type, duration, title, artist}]}`, where `duration` (seconds), `title`
 * and `artist` come from each file itself and are `null` when unknown.
 * `{files: []}` without a media directory.
 */
export function listMedia(baseUrl = '') {
  return request(baseUrl, 'GET', '/api/media');
}

/**
 * Where a media file's cover art is (`GET /api/media/art/{path}`), for a
 * `/media/…` item's `media_url`; `null` for any other URL (a YouTube item, a
 * file of another server). The art may still be missing: that URL answers 404.
 */
export function mediaArtUrl(mediaUrl, baseUrl = '') {
  if (typeof mediaUrl !== 'string' || !mediaUrl.startsWith('/media/')) return null;
  const path = mediaUrl.slice('/media/'.length).split(/[?#]/)[0];
  return path ? `${baseUrl}/api/media/art/${path}` : null;
}
