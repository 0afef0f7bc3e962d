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
 * private (it is shown once). Rooms are `unlisted` unless `visibility: 'public'`.
 * @param {{room_id?:string, name?:string, control?:'host'|'open', visibility?:'public'|'unlisted', video_id?:string}} [fields]
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

/** Says something in a room's chat. Resolves to `{version}`. */
export function sendChat(roomId, name, text, baseUrl = '') {
  return request(baseUrl, 'POST', `/api/rooms/${encodeURIComponent(roomId)}/chat`, { body: { name, text } });
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
