/**
 * app.js — the demo page: create or join a room, watch in sync, control, queue, chat.
 *
 * Routes: `/` (home) and `/r/{room_id}` (a room). `?player=sim` forces the
 * simulated player; otherwise the YouTube IFrame API is tried and, if it does
 * not load within a few seconds, the simulated player takes its place.
 * `?simskew=0.03` makes the simulated player's clock run 3 % fast, to watch the
 * drift correction at work. A media item (`media_url`: a file of this server's
 * `--media-dir` or any http(s) link) plays in a `<video>` element instead
 * (`window.syncroom.playerKind === 'media'`); the page switches players as the
 * room's item changes kind.
 *
 * The host token of a room created here is kept in localStorage under
 * `syncroom:host:{room_id}`. It appears in a URL only in a host link
 * (`/r/{room_id}#host={token}`): a fragment, which browsers never send to a
 * server; the page reading one stores the token the same way and removes the
 * fragment from the address bar at once. A co-host link
 * (`/r/{room_id}#cohost={token}&cohost_id={id}`) is kept the same way, under
 * `syncroom:cohost:{room_id}`: the page is then a co-host. What the page shows follows
 * the room's permissions and who the page is (host, co-host or anyone).
 *
 * For tests and embedders the live client is exposed as `window.syncroom`.
 */

import {
  SyncRoom, createRoom, listRooms, getRoom, ApiError, PlayerState, PlayerMode, parseYouTube, parseTimestamp, formatTime,
  itemKey, request, parseQueueLines, queueDuration, QueueMode, Group, Who, cohostLink,
} from '/client/index.js';
import { SimPlayer } from '/client/sim-player.js';
import { MediaPlayer, MEDIA_CORRECTION } from '/client/media-player.js';
import { YOUTUBE_CORRECTION } from '/client/youtube-player.js';
import {
  IN_SYNC_MS, MAX_CHAT_NAME_CHARS, MAX_CHAT_TEXT_CHARS, MAX_ROOM_ID_CHARS, MAX_ROOM_NAME_CHARS, MAX_TITLE_CHARS,
} from '/client/limits.js';
import { roomTitle } from './room-title.js';

const YT_TIMEOUT_MS = 3000;
/** How long reading a media file's duration (a metadata-only element) may take before sending without it. */
const MEDIA_PROBE_TIMEOUT_MS = 8000;
const params = new URLSearchParams(location.search);
const forcedPlayer = params.get('player'); // 'sim' | 'youtube' | null

const $ = (id) => document.getElementById(id);
const store = {
  get(key) { try { return localStorage.getItem(key); } catch { return null; } },
  set(key, value) { try { localStorage.setItem(key, value); } catch { /* private mode: keep in memory only */ } },
  remove(key) { try { localStorage.removeItem(key); } catch { /* nothing to remove */ } },
};
const hostKey = (roomId) => `syncroom:host:${roomId}`;
/** A host link: the room's page with the host token in the fragment (never sent to a server). */
const hostLink = (roomId, token) => `${location.origin}${roomPath(roomId)}#host=${encodeURIComponent(token)}`;

const cohostKey = (roomId) => `syncroom:cohost:${roomId}`;
const TOKEN = /^[0-9a-f]{64}$/;
const COHOST_ID = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * Takes the token out of a host link's (`#host=…`) or a co-host link's (`#cohost=…`)
 * fragment into storage, and the fragment out of the address bar (and so out of
 * history and bookmarks).
 */
function adoptLink(roomId) {
  if (!location.hash.startsWith('#host=') && !location.hash.startsWith('#cohost=')) return;
  const fragment = new URLSearchParams(location.hash.slice(1));
  history.replaceState(history.state, '', `${location.pathname}${location.search}`);
  const host = fragment.get('host');
  if (host && TOKEN.test(host)) store.set(hostKey(roomId), host);
  const token = fragment.get('cohost');
  if (!token || !TOKEN.test(token)) return;
  const id = fragment.get('cohost_id');
  store.set(cohostKey(roomId), JSON.stringify({ token, id: id && COHOST_ID.test(id) ? id : null }));
}

/** The co-host token (and id, when the link had it) kept for this room, or null. */
function storedCohost(roomId) {
  try {
    const kept = JSON.parse(store.get(cohostKey(roomId)) || 'null');
    return kept && typeof kept.token === 'string' && TOKEN.test(kept.token) ? kept : null;
  } catch {
    return null;
  }
}

/* ------------------------------------------------------------------ toasts */

function toast(message, kind = 'info') {
  const node = document.createElement('div');
  node.className = `toast toast-${kind}`;
  node.textContent = message;
  $('toasts').append(node);
  setTimeout(() => node.classList.add('leaving'), 3800);
  setTimeout(() => node.remove(), 4300);
}

/** What each permission group lets one do, as a refusal names it. */
const GROUP_WORDS = {
  playback: 'Controlling playback', queue_add: 'Adding to the queue', queue_edit: 'Editing the queue',
  skip: 'Skipping', moderate: 'Deleting chat messages', chat: 'Chat',
};
/** Who a group is given to, in words. */
const WHO_WORDS = { host: 'the host', cohost: 'the host and co-hosts', anyone: 'everyone' };

function describeError(err) {
  if (err instanceof ApiError) {
    if (err.code === 'rate_limited') return `Slow down — try again in ${err.retryAfter ?? 'a few'} s.`;
    if (err.code === 'unauthorized' || err.code === 'forbidden') return refusalText(err);
    return err.message;
  }
  return 'Could not reach the server.';
}

/**
 * A 401/403 in words: the group and who may, as the server names them ("queue_edit is for
 * the host"); a co-host's token refused outright means the host revoked it.
 */
function refusalText(err) {
  // "queue_edit is for the host", and without a token "…: send `Authorization: …`".
  const named = /^(\w+) is for ([^:]+)/.exec(err.message || '');
  if (named && GROUP_WORDS[named[1]]) return `${GROUP_WORDS[named[1]]} is for ${named[2]}.`;
  if (err.code === 'forbidden' && ui.room && ui.room.role === Who.COHOST) {
    forgetCohost();
    return REVOKED_TEXT;
  }
  return 'Only the host can do that.';
}

const REVOKED_TEXT = 'The host revoked your co-host link — you follow along now.';

/** This page's co-host token no longer works: it is forgotten, and the page shows what anyone may do. */
function forgetCohost() {
  const room = ui.room;
  if (!room || !room.cohostToken) return;
  room.cohostToken = null;
  store.remove(cohostKey(room.roomId));
  ui.revoked = true;
  $('role-pill').hidden = true;
  renderControl();
}

/**
 * Shows an error under a form. A "Slow down" (429 with Retry-After) counts down and
 * goes once the wait is over, so nobody waits for a notice that no longer holds.
 */
function showError(node, err) {
  clearInterval(node.retryTimer);
  node.textContent = describeError(err);
  if (!(err instanceof ApiError) || err.code !== 'rate_limited' || !(err.retryAfter > 0)) return;
  const until = Date.now() + err.retryAfter * 1000;
  const tick = () => {
    const left = Math.ceil((until - Date.now()) / 1000);
    if (left <= 0) {
      clearInterval(node.retryTimer);
      node.textContent = '';
      return;
    }
    node.textContent = `Slow down — try again in ${left} s.`;
  };
  node.retryTimer = setInterval(tick, 250);
  tick();
}

/** Clears a form's error (and its countdown). */
function clearError(node) {
  clearInterval(node.retryTimer);
  node.textContent = '';
}

/* ------------------------------------------------------------------ routing */

function show(view) {
  for (const id of ['view-home', 'view-room', 'view-missing']) $(id).hidden = id !== view;
}

/** A room id as the server takes it, alone and as a room page's path. */
const ROOM_ID = new RegExp(`^[A-Za-z0-9_-]{1,${MAX_ROOM_ID_CHARS}}$`);
const ROOM_PATH = new RegExp(`^/r/([A-Za-z0-9_-]{1,${MAX_ROOM_ID_CHARS}})/?$`);

function roomIdFromPath(pathname) {
  const m = ROOM_PATH.exec(pathname);
  return m ? m[1] : null;
}

/** Keeps `?player=` across in-page navigation (useful for testing), nothing else. */
function roomPath(roomId) {
  return `/r/${encodeURIComponent(roomId)}${forcedPlayer ? `?player=${encodeURIComponent(forcedPlayer)}` : ''}`;
}

/* ------------------------------------------------------------------ home */

function initHome() {
  show('view-home');
  document.title = 'syncroom — watch together, in sync';
  const savedName = store.get('syncroom:name');
  if (savedName) $('create-you').value = savedName;

  $('create-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const err = $('create-error');
    err.textContent = '';
    const you = $('create-you').value.trim();
    const videoText = $('create-video').value.trim();
    const fields = {
      control: document.querySelector('input[name="control"]:checked').value,
      visibility: document.querySelector('input[name="visibility"]:checked').value,
    };
    const name = $('create-name').value.trim();
    if (name) fields.name = name;
    let start = null;
    if (videoText) {
      const parsed = parseYouTube(videoText);
      if (!parsed) { err.textContent = 'That does not look like a YouTube link or video id.'; return; }
      fields.video_id = parsed.videoId;
      start = parsed.start;
    }
    $('create-btn').disabled = true;
    try {
      const created = await createRoom(fields);
      store.set(hostKey(created.room_id), created.host_token);
      store.set('syncroom:name', you);
      history.pushState({}, '', roomPath(created.room_id));
      // The click on "Create" already counts as the interaction autoplay needs.
      await enterRoom(created.room_id, { autoJoinAs: you, initialRoom: created.room, startAt: start });
    } catch (ex) {
      showError(err, ex);
    } finally {
      $('create-btn').disabled = false;
    }
  });

  $('join-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const text = $('join-link').value.trim();
    let id = null;
    try { id = roomIdFromPath(new URL(text, location.origin).pathname); } catch { id = null; }
    if (!id && ROOM_ID.test(text)) id = text;
    if (!id) { $('join-error').textContent = 'Paste a room link (…/r/name) or a room id.'; return; }
    location.assign(roomPath(id));
  });

  listRooms().then(({ rooms }) => {
    const list = $('room-list');
    list.textContent = '';
    if (!rooms || rooms.length === 0) {
      const li = document.createElement('li');
      li.className = 'empty';
      li.textContent = 'No public rooms yet — create one, or join with a link.';
      list.append(li);
      return;
    }
    for (const r of rooms.slice(0, 8)) {
      const li = document.createElement('li');
      const a = document.createElement('a');
      a.href = roomPath(r.room_id);
      const title = document.createElement('span');
      title.className = 'room-name';
      title.textContent = roomTitle(r);
      a.title = title.textContent;
      const count = document.createElement('span');
      count.className = 'room-count';
      count.textContent = `${r.listeners} watching`;
      a.append(title, count);
      li.append(a);
      list.append(li);
    }
  }).catch(() => {
    $('room-list').textContent = '';
  });
}

/* ------------------------------------------------------------------ players */

let ytApiPromise = null;

/** Loads the YouTube IFrame API, or rejects within `timeoutMs`. */
function loadYouTubeApi(timeoutMs) {
  if (ytApiPromise) return ytApiPromise;
  ytApiPromise = new Promise((resolve, reject) => {
    if (window.YT && window.YT.Player) { resolve(window.YT); return; }
    const timer = setTimeout(() => reject(new Error('YouTube API timed out')), timeoutMs);
    const previous = window.onYouTubeIframeAPIReady;
    window.onYouTubeIframeAPIReady = () => {
      clearTimeout(timer);
      if (typeof previous === 'function') previous();
      resolve(window.YT);
    };
    const script = document.createElement('script');
    script.src = 'https://www.youtube.com/iframe_api';
    script.async = true;
    script.onerror = () => { clearTimeout(timer); reject(new Error('YouTube API failed to load')); };
    document.head.append(script);
  });
  return ytApiPromise;
}

/** The element each kind of player draws into (made once): `video` (YouTube or simulated) or `media`. */
function playerSlot(kind) {
  const id = `player-slot-${kind}`;
  let slot = $(id);
  if (!slot) {
    slot = document.createElement('div');
    slot.id = id;
    slot.className = 'player-slot';
    slot.hidden = kind !== 'video';
    $('player').append(slot);
  }
  return slot;
}

/** The kind of player an item needs: a `media_url` plays in the media element. */
function playerFor(state) {
  if (!state || !itemKey(state)) return null;
  return state.media_url ? 'media' : 'video';
}

/** A ready MediaPlayer in its own slot, made the first time a media item plays. */
function mediaPlayerReady() {
  if (!ui.mediaPlayer) {
    const slot = playerSlot('media');
    const host = document.createElement('div');
    host.id = 'player-media';
    slot.append(host);
    ui.mediaPlayer = new Promise((resolve) => {
      const p = new MediaPlayer(host, { events: { onReady: () => resolve(p) } });
      p.addEventListener('onError', () => toast('The browser could not play this media (a missing file, an unsupported format, or plain http on an https page).', 'warn'));
    });
  }
  return ui.mediaPlayer;
}

/**
 * Attaches the player the room's item needs (YouTube/simulated or the media element),
 * pausing and hiding the other: one room can switch between both kinds.
 */
function choosePlayer(room) {
  // With nothing loaded, keep whichever is attached (or the video player at first).
  const want = playerFor(room.state) || ui.attached || 'video';
  if (want === ui.attached || want === ui.attaching) return;
  ui.attaching = want;
  const ready = want === 'media' ? mediaPlayerReady().then((player) => ({ player, kind: 'media' })) : ui.videoPlayer;
  ready.then(({ player, kind }) => {
    if (ui.attaching !== want) return; // the item changed kind again meanwhile
    ui.attaching = null;
    const previous = ui.player;
    playerSlot('video').hidden = want !== 'video';
    playerSlot('media').hidden = want !== 'media';
    ui.player = player;
    ui.playerKind = kind;
    ui.attached = want;
    $('h-player').textContent = { youtube: 'YouTube', sim: 'Simulated', media: 'Media element' }[kind] || kind;
    const own = { media: MEDIA_CORRECTION, youtube: YOUTUBE_CORRECTION }[kind];
    const correction = own ? { ...(room.options.correction || {}), ...own } : room.options.correction;
    // YouTube plays only its listed rates: bursts at those from the start, no probing nudge.
    room.attachPlayer(player, {
      kind,
      correction,
      listedRatesOnly: kind === 'youtube',
      // Until the other kind's player is attached, this one leaves the other's items alone.
      accepts: (st) => playerFor(st) === want,
    });
    // Only now, with its corrector detached: the old player's pause is not a person's.
    if (previous && previous !== player) previous.pauseVideo();
  }).catch(() => {
    if (ui.attaching === want) ui.attaching = null;
  });
}

/** Resolves to `{player, kind}`: a ready YT.Player, or a SimPlayer when YouTube is unavailable. */
async function createPlayer(container) {
  const host = document.createElement('div');
  host.id = 'player-inner';
  container.textContent = '';
  container.append(host);
  if (forcedPlayer !== 'sim') {
    try {
      const YT = await loadYouTubeApi(YT_TIMEOUT_MS);
      const player = await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('YouTube player timed out')), 8000);
        // eslint-disable-next-line no-new
        new YT.Player(host, {
          width: '100%', height: '100%',
          playerVars: { playsinline: 1, rel: 0, modestbranding: 1, origin: location.origin },
          events: { onReady: (e) => { clearTimeout(timer); resolve(e.target); } },
        });
      });
      return { player, kind: 'youtube' };
    } catch (err) {
      if (forcedPlayer === 'youtube') throw err;
      container.textContent = '';
      const fresh = document.createElement('div');
      fresh.id = 'player-inner';
      container.append(fresh);
      toast('YouTube is unreachable — using the simulated player.', 'warn');
      return { player: await readySim(fresh), kind: 'sim' };
    }
  }
  return { player: await readySim(host), kind: 'sim' };
}

/** `?simskew=0.03` makes the simulated player's clock run 3 % fast (a demo of drift correction). */
function readySim(element) {
  const skew = Number(params.get('simskew')) || 0;
  return new Promise((resolve) => {
    // The page draws its own transport: the simulated player shows none (one set of controls).
    const p = new SimPlayer(element, { skew, controls: false, events: { onReady: () => resolve(p) } });
  });
}

/* ------------------------------------------------------------------ room */

const ui = {
  room: null, // SyncRoom
  player: null,
  playerKind: null,
  /** The YouTube or simulated player (a promise of {player, kind}), made at once. */
  videoPlayer: null,
  /** The media element player (a promise of a MediaPlayer), made for the first media item. */
  mediaPlayer: null,
  /** Which of the two is attached: 'video' | 'media' | null; and the one being attached. */
  attached: null,
  attaching: null,
  joined: false,
  /** A moderator removed this page (`kicked`): it stays off. */
  kicked: false,
  name: '',
  chat: [], // {version, name, text}
  seeking: false,
  reportedDuration: null,
  /** Who is behind, as the host sees it ('' when nobody). */
  behind: '',
};

function exposeApi(roomId) {
  window.syncroom = {
    roomId,
    get client() { return ui.room; },
    get connected() { return Boolean(ui.room && ui.room.connected); },
    get isHost() { return Boolean(ui.room && ui.room.hostToken); },
    /** `host`, `cohost` or `anyone`. */
    get role() { return ui.room ? ui.room.role : null; },
    /** Whether this page may act in a permission group (`playback`, `queue_add`, ...). */
    can(group) { return Boolean(ui.room && ui.room.can(group)); },
    get joined() { return ui.joined; },
    /** Whether a moderator removed this page from the room (it stays off). */
    get kicked() { return Boolean(ui.kicked); },
    get playerKind() { return ui.playerKind; },
    // NaN until a player is attached: there is no local position to compare yet.
    playerPosition() { return ui.room && ui.player ? ui.room.playerPosition() : NaN; },
    roomPosition() { return ui.room ? ui.room.roomPosition() : 0; },
    clockOffset() { return ui.room ? ui.room.clockOffset() : 0; },
    state() { return ui.room && ui.room.state ? { ...ui.room.state } : null; },
    version() { return ui.room && ui.room.room ? ui.room.room.version : null; },
    health() { return ui.room ? ui.room.health() : null; },
    stats() { return ui.room ? { ...ui.room.stats, lastEventId: ui.room.lastEventId } : null; },
    chatMessages() { return ui.chat.map((m) => ({ ...m })); },
  };
}

async function enterRoom(roomId, { autoJoinAs = null, initialRoom = null, startAt = null } = {}) {
  exposeApi(roomId);
  let snapshot = initialRoom;
  if (!snapshot) {
    try {
      snapshot = await (await fetchRoom(roomId));
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        show('view-missing');
        return;
      }
      snapshot = null; // the stream will tell us more
    }
  }
  show('view-room');
  $('topbar-room').hidden = false;
  // The Sync card is for the curious: open beside the player on a wide screen,
  // collapsed on a phone, where it would push the chat out of reach.
  $('health').open = !window.matchMedia('(max-width: 640px)').matches;
  const displayName = roomTitle(snapshot || { room_id: roomId });
  $('room-title').textContent = displayName;
  document.title = `${displayName} — syncroom`;
  $('share-link').value = `${location.origin}/r/${encodeURIComponent(roomId)}`;
  const token = store.get(hostKey(roomId));
  // The host token wins: a host who opened a co-host link of their own room stays the host.
  const cohost = token ? null : storedCohost(roomId);
  $('role-pill').hidden = !token && !cohost;
  $('role-pill').textContent = token ? 'Host' : 'Co-host';
  if (snapshot) $('listeners-count').textContent = String(snapshot.listeners ?? 0);

  // Start loading the player right away; joining does not wait for YouTube.
  const playerReady = createPlayer(playerSlot('video'));

  const join = async (name) => {
    ui.name = name;
    store.set('syncroom:name', name);
    $('join-modal').hidden = true;
    await startRoom(roomId, name, { token, cohost }, playerReady, startAt);
  };

  if (autoJoinAs) {
    await join(autoJoinAs);
    return;
  }
  $('join-modal').hidden = false;
  $('join-title').textContent = `Join “${displayName}”`;
  if (token) {
    $('join-eyebrow').textContent = 'Welcome back, host';
    $('join-sub').textContent = 'You created this room, so you control playback.';
  } else if (cohost) {
    $('join-eyebrow').textContent = 'You are a co-host';
    $('join-sub').textContent = 'The host shares the controls with you.';
  }
  const nameInput = $('join-name');
  nameInput.value = store.get('syncroom:name') || '';
  nameInput.focus();
  $('join-room-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const name = nameInput.value.trim();
    if (!name) return;
    join(name);
  }, { once: true });
}

/** The room's current object, or an ApiError (404 when it does not exist). */
function fetchRoom(roomId) {
  return getRoom(roomId);
}

async function startRoom(roomId, name, { token, cohost }, playerReady, startAt) {
  // The page takes part in the ready gate: the room waits (a little) for its player.
  const room = new SyncRoom({
    roomId, name, hostToken: token, cohostToken: cohost ? cohost.token : null, readyGate: true,
  });
  ui.room = room;
  ui.cohostId = cohost ? cohost.id : null;
  wireRoomEvents(room);
  wireControls(room);
  wireQueueTools(room);
  wirePermissionTools(room);
  wireVoteSkip(room);
  wireMembers(room);
  $('chat-input').disabled = false;
  $('chat-send').disabled = false;
  const started = room.start();
  ui.joined = true;
  setInterval(refresh, 250);
  refresh();

  ui.videoPlayer = playerReady;
  playerReady.then(({ player }) => {
    if (player.addEventListener) {
      player.addEventListener('onError', (e) => toast(`The player could not play this video (error ${e.data}).`, 'warn'));
    }
  }).catch((err) => {
    toast(`No player: ${err.message}`, 'error');
  });
  room.addEventListener('state', () => choosePlayer(room));
  room.addEventListener('snapshot', () => choosePlayer(room));
  choosePlayer(room);

  await started;
  // A room created with a start time in its first link: jump there once.
  if (startAt && room.canControl) room.command({ type: 'seek', position: startAt }).catch(() => {});
}

/* ------------------------------------------------------------------ room events */

function wireRoomEvents(room) {
  room.addEventListener('connection', (e) => renderConnection(e.detail.status));
  room.addEventListener('snapshot', (e) => {
    renderQueue(e.detail.queue || []);
    renderControl();
    $('listeners-count').textContent = String(e.detail.listeners ?? 0);
    $('room-title').textContent = roomTitle(e.detail);
  });
  room.addEventListener('state', () => refresh());
  room.addEventListener('queue', (e) => renderQueue(e.detail.queue || []));
  room.addEventListener('control', () => renderControl());
  room.addEventListener('permissions', () => renderControl());
  room.addEventListener('cohosts', () => { checkCohost(room); renderControl(); });
  room.addEventListener('snapshot', (e) => { checkCohost(room); pruneChat(e.detail.chat); });
  room.addEventListener('chat_deleted', (e) => removeChat(e.detail.chat_version));
  room.addEventListener('visibility', () => renderControl());
  room.addEventListener('chat_enabled', () => renderControl());
  room.addEventListener('chat_cleared', () => clearChatList());

  room.addEventListener('presence', (e) => { $('listeners-count').textContent = String(e.detail.listeners); });
  room.addEventListener('sync', (e) => renderRoomSync(e.detail));
  room.addEventListener('gate', (e) => { ui.gate = e.detail; renderStart(room); });
  room.addEventListener('chat', (e) => addChat(e.detail));
  room.addEventListener('closed', (e) => {
    const why = { deleted: 'The host closed this room.', expired: 'This room expired after being idle.', not_found: 'This room no longer exists.' };
    const banner = $('closed-banner');
    banner.textContent = why[e.detail.reason] || 'This room was closed.';
    banner.hidden = false;
    setControlsEnabled(false);
    $('chat-input').disabled = true;
    $('chat-send').disabled = true;
    if (e.detail.reason !== 'not_found') store.remove(hostKey(room.roomId));
    // Nobody is watching a closed room: the old count would be a lie.
    $('listeners-count').textContent = '0';
    if (room.room) room.room.listeners = 0;
    if (ui.player) ui.player.pauseVideo();
  });
  room.addEventListener('localchange', (e) => onLocalChange(room, e.detail));
  room.addEventListener('hold', (e) => { $('hold-banner').hidden = !e.detail.held; });
  room.addEventListener('autoplayblocked', () => { $('click-to-join').hidden = false; });
}

/** The person used the player's own controls: if they may control the room, that is a command. */
function onLocalChange(room, change) {
  if (!room.canControl) return;
  let cmd = null;
  if (change.type === 'play') cmd = { type: 'play', position: change.position };
  else if (change.type === 'pause') cmd = { type: 'pause', position: change.position };
  else if (change.type === 'seek') cmd = { type: 'seek', position: change.position };
  else if (change.type === 'rate') cmd = { type: 'rate', rate: change.rate };
  if (cmd) send(cmd);
}

function renderConnection(status) {
  const pill = $('conn-pill');
  pill.dataset.status = status;
  $('conn-text').textContent = {
    connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…', closed: 'Closed',
  }[status] || status;
}

/** Whether this page is done with the room: it was closed, or a moderator removed this page. */
function ended(room) {
  return room.status === 'closed' || ui.kicked;
}

/** Whether this page may act in `group` now (nothing once the room is closed or this page removed). */
function may(group) {
  const room = ui.room;
  return Boolean(room && !ended(room) && room.can(group));
}

/** Shows each control only to whoever may use it, as the room's permissions and this page's role say. */
function renderControl() {
  const room = ui.room;
  if (!room) return;
  const play = may(Group.PLAYBACK);
  const add = may(Group.QUEUE_ADD);
  setControlsEnabled(play);
  renderBehind();
  // One box for a link: "Play now" for whoever controls playback, "Add to queue" for whoever may add.
  $('load-form').hidden = !play && !add;
  $('media-form').hidden = !play && !add;
  $('load-btn').hidden = !play;
  $('media-play-btn').hidden = !play;
  $('queue-add-btn').hidden = !add;
  $('media-queue-btn').hidden = !add;
  if (play || add) loadMediaList();
  $('host-tools').hidden = !room.hostToken;
  const control = room.room ? room.room.control : 'host';
  $('open-control').checked = control === 'open';
  $('open-control').indeterminate = control === 'custom';
  $('public-room').checked = Boolean(room.room && room.room.visibility === 'public');
  $('host-link').value = room.hostToken ? hostLink(room.roomId, room.hostToken) : '';
  renderChatControls(room);
  const note = $('control-note');
  note.hidden = play;
  note.textContent = ui.revoked ? REVOKED_TEXT
    : `${capitalized(WHO_WORDS[room.permissions.playback] || 'the host')} ${room.permissions.playback === Who.HOST ? 'controls' : 'control'} playback — you follow along.`;
  renderPermissionTools(room);
  renderQueue(room.room ? room.room.queue || [] : []);
}

function capitalized(text) {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** The chat box for whoever may chat (while chat is on), and each message's delete button for moderators. */
function renderChatControls(room) {
  const chatOn = !room.room || room.room.chat_enabled !== false;
  const mayChat = room.can(Group.CHAT);
  $('chat-enabled').checked = chatOn;
  $('chat-form').hidden = !mayChat;
  const off = $('chat-off-note');
  off.textContent = chatOn ? `Chat is for ${WHO_WORDS[room.permissions.chat]}.` : 'The host turned chat off.';
  off.hidden = chatOn && mayChat;
  $('chat-input').disabled = !chatOn || ended(room);
  $('chat-send').disabled = !chatOn || ended(room);
  const moderate = may(Group.MODERATE);
  for (const button of document.querySelectorAll('#chat-list .chat-delete')) button.hidden = !moderate;
}

/** Playback controls for whoever may use them; the others see where playback is, not buttons. */
function setControlsEnabled(enabled) {
  for (const id of ['btn-play', 'btn-back', 'btn-fwd', 'seek-range', 'seek-input', 'seek-btn', 'rate-select']) {
    $(id).disabled = !enabled;
  }
  $('transport').classList.toggle('readonly', !enabled);
  renderTransportExtra();
}

/** The second transport row goes when none of its controls is shown. */
function renderTransportExtra() {
  const readonly = $('transport').classList.contains('readonly');
  document.querySelector('.transport-extra').hidden = readonly && $('btn-next').hidden;
}

/** The periodic redraw of the transport: time, progress, play/pause, speed. */
/** Leads shorter than this (ms) start without a countdown: it would only flicker. */
const COUNTDOWN_FROM_MS = 1000;

/**
 * The pending start: a countdown when it is more than a second away, and while the
 * ready gate is open how many pages are ready ("waiting for 3 of 40, starting in 2 s")
 * with a "Start now" button for whoever controls the room (it sends `play`).
 */
function renderStart(room) {
  const raw = room.room ? room.room.state : null;
  const banner = $('start-banner');
  const left = raw && typeof raw.starts_at === 'number' ? raw.starts_at - room.serverNow() : 0;
  const gateOpen = Boolean(raw && typeof raw.ready_gate === 'number');
  if (!(left > 0) || (!gateOpen && left <= COUNTDOWN_FROM_MS)) {
    banner.hidden = true;
    return;
  }
  const secs = Math.ceil(left / 1000);
  const gate = ui.gate && gateOpen && ui.gate.ready_gate === raw.ready_gate ? ui.gate : null;
  const waiting = gate && gate.listeners > gate.ready ? `Waiting for ${gate.listeners - gate.ready} of ${gate.listeners}, ` : '';
  $('start-text').textContent = `${waiting}${waiting ? 'starting' : 'Starting'} in ${secs} s`;
  $('start-now').hidden = !(gateOpen && may(Group.PLAYBACK));
  banner.hidden = false;
}

function refresh() {
  const room = ui.room;
  if (!room) return;
  renderStart(room);
  renderNowPlaying(room);
  const st = room.state;
  const hasVideo = Boolean(itemKey(st));
  renderHealth(room.health());
  drawDriftChart(room);
  $('player-empty').hidden = hasVideo;
  $('player').classList.toggle('is-empty', !hasVideo);
  if (!hasVideo) {
    $('player-empty-text').textContent = may(Group.PLAYBACK) || may(Group.QUEUE_ADD)
      ? 'Nothing playing yet — paste a YouTube link or pick a media file below.'
      : 'Nothing playing yet — waiting for the host.';
  }
  const pos = ui.player ? room.playerPosition() : room.roomPosition();
  const duration = st && st.duration ? st.duration : (ui.player && hasVideo ? ui.player.getDuration() : 0);
  $('time-now').textContent = formatTime(pos);
  $('time-total').textContent = formatTime(duration || 0);
  const range = $('seek-range');
  range.max = String(duration || 0);
  if (!ui.seeking) range.value = String(Math.min(pos, duration || 0));
  range.setAttribute('aria-valuetext', `${formatTime(pos)} of ${formatTime(duration || 0)}`);
  const playing = Boolean(st && !st.paused && hasVideo && room.status !== 'closed');
  const btn = $('btn-play');
  btn.classList.toggle('is-playing', playing);
  btn.setAttribute('aria-label', playing ? 'Pause' : 'Play');
  if (st) {
    const sel = $('rate-select');
    if (document.activeElement !== sel) sel.value = String(st.rate);
  }
  // The host's player learns a video's length after loading it: tell the room once.
  if (room.canControl && hasVideo && st.duration == null && ui.player
      && ui.player.getPlayerState() !== PlayerState.UNSTARTED
      && ui.player.getVideoData().video_id === itemKey(st)) {
    const d = Number(ui.player.getDuration());
    const key = `${itemKey(st)}`;
    if (d > 0 && ui.reportedDuration !== key) {
      ui.reportedDuration = key;
      send({ type: 'duration', duration: d }, { quiet: true });
    }
  }
}

function renderHealth(h) {
  const fmt = (v, digits = 1) => (v === null || v === undefined ? '—' : `${v >= 0 ? '+' : ''}${v.toFixed(digits)} ms`);
  $('h-offset').textContent = fmt(h.offsetMs);
  $('h-rtt').textContent = h.rttMs === null ? '—' : `${h.rttMs.toFixed(1)} ms`;
  $('h-drift').textContent = fmt(h.driftMs);
  $('h-avg').textContent = h.driftAvgMs === null ? '—' : `${h.driftAvgMs.toFixed(1)} ms`;
  const modeText = {
    [PlayerMode.IN_SYNC]: 'none needed',
    [PlayerMode.NUDGING]: `nudging speed (${h.rate ? `${h.rate.toFixed(3)}×` : ''})`,
    [PlayerMode.SEEKING]: 'seeking',
    [PlayerMode.BUFFERING]: 'buffering',
    [PlayerMode.LOADING]: 'loading',
    [PlayerMode.STARTING]: 'starting',
    [PlayerMode.WAITING]: 'waiting',
    [PlayerMode.HOLD]: 'paused by you',
    [PlayerMode.BLOCKED]: 'needs a click',
    [PlayerMode.NO_PLAYER]: 'no player yet',
  };
  $('h-mode').textContent = modeText[h.mode] || h.mode;
  const avg = h.driftAvgMs;
  let quality = 'unknown';
  let summary = '—';
  if (h.status !== 'live') { quality = 'warn'; summary = h.status === 'closed' ? 'closed' : 'reconnecting'; }
  else if (avg === null || h.mode === PlayerMode.WAITING || h.mode === PlayerMode.LOADING) { quality = 'unknown'; summary = 'waiting'; }
  else if (avg < 40) { quality = 'good'; summary = `±${Math.max(1, Math.round(avg))} ms`; }
  else if (avg < 250) { quality = 'ok'; summary = `±${Math.round(avg)} ms`; }
  else { quality = 'bad'; summary = `±${(avg / 1000).toFixed(1)} s`; }
  $('health-dot').dataset.quality = quality;
  $('health-summary').textContent = summary;
}

/** The room's sync health, "37 of 40 in sync": from the snapshot, `sync` events and our reports. */
function renderRoomSync(sync) {
  const pill = $('sync-pill');
  pill.hidden = !sync || sync.reporting === 0;
  if (!sync) return;
  const text = `${sync.in_sync} of ${sync.reporting} in sync`;
  $('room-sync').textContent = text;
  $('h-room-sync').textContent = sync.reporting === 0 ? '—'
    : `${text}, p95 ${sync.drift_p95_ms === null ? '—' : `${Math.round(sync.drift_p95_ms)} ms`}`;
  ui.behind = behindText(sync);
  renderBehind();
}

/** Who is behind, from the summary: "Behind: Bo (buffering), Cy (300 ms) and 2 more"; '' when nobody. */
function behindText(sync) {
  const listed = Array.isArray(sync.behind) ? sync.behind : [];
  const out = Math.max(0, sync.reporting - sync.in_sync);
  if (out === 0 || listed.length === 0) return '';
  const names = listed.map((b) => `${b.name || 'a listener'} (${b.buffering ? 'buffering' : `${formatDrift(b.drift_p95_ms)}`})`);
  const more = out - listed.length;
  return `Behind: ${names.join(', ')}${more > 0 ? ` and ${more} more` : ''}`;
}

function formatDrift(ms) {
  return ms >= 1000 ? `${(ms / 1000).toFixed(1)} s off` : `${Math.round(ms)} ms off`;
}

/** Whoever controls the room sees who is behind (listeners see only "N of M in sync"). */
function renderBehind() {
  const show = Boolean(ui.behind && ui.room && ui.room.canControl);
  $('behind-text').textContent = show ? ui.behind : '';
  $('behind-banner').hidden = !show;
}

/** Drift of a reading above which the chart's scale grows (ms); the ±50 ms "in sync" band is drawn. */
const CHART_MIN_SCALE_MS = 60;

/** This page's own drift over the last minute, as a line around zero (the room). */
function drawDriftChart(room) {
  const canvas = $('drift-chart');
  if (!canvas || !canvas.getContext) return;
  const now = performance.now();
  const series = room.drift.series(now);
  const keep = room.drift.options.keepMs;
  const ctx = canvas.getContext('2d');
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  const scale = Math.max(CHART_MIN_SCALE_MS, ...series.map((s) => Math.abs(s.ms)));
  const y = (ms) => height / 2 - (ms / scale) * (height / 2 - 4);
  const styles = getComputedStyle(document.documentElement);
  ctx.fillStyle = 'rgba(120, 200, 140, 0.12)';
  ctx.fillRect(0, y(IN_SYNC_MS), width, y(-IN_SYNC_MS) - y(IN_SYNC_MS));
  ctx.strokeStyle = styles.getPropertyValue('--muted') || '#999';
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.moveTo(0, y(0));
  ctx.lineTo(width, y(0));
  ctx.stroke();
  ctx.strokeStyle = styles.getPropertyValue('--accent-2') || '#9b83ff';
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  series.forEach((s, i) => {
    const x = width - ((now - s.at) / keep) * width;
    if (i === 0) ctx.moveTo(x, y(s.ms)); else ctx.lineTo(x, y(s.ms));
  });
  ctx.stroke();
  const worst = series.reduce((m, s) => Math.max(m, Math.abs(s.ms)), 0);
  const label = series.length === 0
    ? 'Your drift from the room over the last minute: no readings yet'
    : `Your drift from the room over the last minute: ${series.length} readings, at most ${Math.round(worst)} ms, latest ${Math.round(series[series.length - 1].ms)} ms`;
  if (canvas.getAttribute('aria-label') !== label) canvas.setAttribute('aria-label', label);
  canvas.dataset.samples = String(series.length);
}

/* ------------------------------------------------------------------ queue */

function renderQueue(queue) {
  const list = $('queue-list');
  list.textContent = '';
  $('queue-count').textContent = String(queue.length);
  $('queue-empty').hidden = queue.length > 0;
  const edit = may(Group.QUEUE_EDIT);
  // "Play now" loads the item and takes it off the queue: playback and queue_edit both.
  const playNow = edit && may(Group.PLAYBACK);
  queue.forEach((item, index) => {
    const li = document.createElement('li');
    li.className = 'queue-item';
    li.dataset.itemId = item.item_id;
    const dot = document.createElement('span');
    dot.className = 'queue-dot';
    dot.style.setProperty('--hue', String(hue(itemKey(item) || '')));
    dot.setAttribute('aria-hidden', 'true');
    const label = document.createElement('span');
    label.className = item.title ? 'queue-title' : 'queue-title is-id';
    label.textContent = item.title || itemLabel(item);
    li.append(dot, queueRowText(label, item));
    if (edit) {
      const tools = document.createElement('span');
      tools.className = 'queue-tools';
      const who = item.title || itemLabel(item);
      if (playNow) tools.append(iconButton('▶', `Play ${who} now`, () => playQueued(item)));
      tools.append(
        iconButton('↑', `Move ${who} up`, () => send({ type: 'queue_move', item_id: item.item_id, index: index - 1 }), index === 0),
        iconButton('↓', `Move ${who} down`, () => send({ type: 'queue_move', item_id: item.item_id, index: index + 1 }), index === queue.length - 1),
        iconButton('✕', `Remove ${who}`, () => send({ type: 'queue_remove', item_id: item.item_id })),
      );
      li.append(tools);
    }
    list.append(li);
  });
  $('btn-next').hidden = !may(Group.SKIP);
  $('btn-next').disabled = queue.length === 0;
  renderTransportExtra();
  renderQueueTotal(queue);
}

/** What a queue row shows for an untitled item: the video id, or the media file's name. */
function itemLabel(item) {
  if (!item.media_url) return item.video_id;
  const last = item.media_url.split(/[?#]/)[0].split('/').filter(Boolean).pop() || item.media_url;
  try { return decodeURIComponent(last); } catch { return last; }
}

async function playQueued(item) {
  try {
    const source = item.media_url ? { media_url: item.media_url } : { video_id: item.video_id };
    // The queued item's known length travels with it: auto-advance needs it.
    if (typeof item.duration === 'number' && item.duration > 0) source.duration = item.duration;
    // Its title and artist too, for the now-playing card (a server that knows them takes them).
    if (serverTakesQueueFields(ui.room)) {
      if (item.title) source.title = item.title;
      if (item.artist) source.artist = item.artist;
    }
    await ui.room.command({ type: 'load', ...source });
    await ui.room.command({ type: 'queue_remove', item_id: item.item_id });
  } catch (err) {
    toast(describeError(err), 'error');
  }
}

function iconButton(text, label, onClick, disabled = false) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = 'btn btn-icon btn-tiny';
  b.textContent = text;
  b.setAttribute('aria-label', label);
  b.title = label;
  b.disabled = disabled;
  b.addEventListener('click', onClick);
  return b;
}

function hue(text) {
  let h = 0;
  for (let i = 0; i < text.length; i += 1) h = (h * 31 + text.charCodeAt(i)) % 360;
  return h;
}

/* ------------------------------------------------------------------ queue tools */
// The queue's details (length, who added what, the total), the box to paste many links
// into, the queue mode, keeping the room, and the now-playing card of an audio item.

/** Extensions of audio files: such an item shows the now-playing card until its element knows better. */
const AUDIO_EXTENSIONS = new Set(['mp3', 'ogg', 'oga', 'opus', 'wav', 'flac', 'm4a', 'aac', 'weba']);
/** HTMLMediaElement.readyState HAVE_METADATA: from then on the element knows whether the item has a picture. */
const HAVE_METADATA = 1;
/** How many refused lines a paste error names before "and N more". */
const PASTE_ERRORS_SHOWN = 3;
/** Characters of a refused line quoted in a paste error. */
const PASTE_QUOTE_CHARS = 40;

/**
 * Whether the server knows the queue's newer fields (`name`, `duration` on `queue_add`):
 * its room view then carries `queue_mode`. An older one refuses unknown fields, so they
 * are sent only to a server that says it takes them.
 */
function serverTakesQueueFields(room) {
  return Boolean(room.room && typeof room.room.queue_mode === 'string');
}

/** The fields a single `queue_add` from this page adds to its item: who added it. */
function attribution(room) {
  return serverTakesQueueFields(room) && ui.name ? { name: ui.name } : {};
}

/** A queue row's text: the title, then a line with its length, artist and who added it. */
function queueRowText(label, item) {
  const main = document.createElement('span');
  main.className = 'queue-main';
  const parts = [queueRowDuration(item)];
  if (item.artist) parts.push(textSpan('queue-artist', item.artist));
  if (item.added_by) parts.push(textSpan('queue-by', `added by ${item.added_by}`));
  const meta = document.createElement('span');
  meta.className = 'queue-meta';
  parts.forEach((part, i) => meta.append(...(i ? [' · ', part] : [part])));
  main.append(label, meta);
  return main;
}

/** A queue row's length (m:ss), or a dash read out as "length unknown". */
function queueRowDuration(item) {
  const node = document.createElement('span');
  node.className = 'queue-duration';
  if (typeof item.duration === 'number' && item.duration > 0) {
    node.textContent = formatTime(item.duration);
  } else {
    const dash = textSpan('', '–:––');
    dash.setAttribute('aria-hidden', 'true');
    node.append(dash, textSpan('sr-only', 'length unknown'));
  }
  return node;
}

function textSpan(className, text) {
  const span = document.createElement('span');
  if (className) span.className = className;
  span.textContent = text; // text, never HTML
  return span;
}

/** "Total 12:34", and how many items have no known length yet. */
function renderQueueTotal(queue) {
  const node = $('queue-total');
  const { seconds, unknown } = queueDuration(queue);
  node.hidden = queue.length === 0;
  node.dataset.seconds = String(seconds);
  node.textContent = `Total ${formatTime(seconds)}${unknown ? ` + ${unknown} of unknown length` : ''}`;
}

function wireQueueTools(room) {
  for (const input of document.querySelectorAll('input[name="queue-mode"]')) {
    input.addEventListener('change', async () => {
      if (!input.checked) return;
      try {
        await room.setQueueMode(input.value);
      } catch (err) {
        toast(describeError(err), 'error');
        renderQueueTools(room);
      }
    });
  }
  $('persistent-room').addEventListener('change', async (e) => {
    const keep = e.target.checked;
    try {
      await room.setPersistent(keep);
      toast(keep ? 'This room stays until you close it.' : 'This room expires again when nobody uses it.', 'info');
    } catch (err) {
      toast(describeError(err), 'error');
      renderQueueTools(room);
    }
  });
  $('paste-form').addEventListener('submit', (e) => { e.preventDefault(); addPasted(room); });
  // Ctrl+Enter (⌘+Enter) in the box sends it; Enter alone starts the next line.
  $('paste-input').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); $('paste-form').requestSubmit(); }
  });
  const art = $('np-art');
  // No cover art in the file (404), or none readable: the card goes on without it.
  art.addEventListener('load', () => { art.hidden = false; });
  art.addEventListener('error', () => { art.hidden = true; });
  for (const type of ['snapshot', 'control', 'permissions', 'cohosts', 'queue_mode', 'persistent', 'closed']) {
    room.addEventListener(type, () => renderQueueTools(room));
  }
  renderQueueTools(room);
}

/** Who may add sees the paste box; who may edit the queue, the mode switch; the host, the "keep" toggle. */
function renderQueueTools(room) {
  const can = may(Group.QUEUE_EDIT);
  $('paste-form').hidden = !may(Group.QUEUE_ADD);
  $('queue-mode').hidden = !can;
  const mode = room.queueMode;
  for (const input of document.querySelectorAll('input[name="queue-mode"]')) input.checked = input.value === mode;
  const note = $('queue-mode-note');
  note.textContent = {
    [QueueMode.LOOP]: 'Loop is on: a finished item goes to the end of the queue.',
    [QueueMode.SHUFFLE]: 'Shuffle is on: the next item is picked at random.',
  }[mode] || '';
  note.hidden = can || !note.textContent;
  $('persistent-room').checked = room.persistent;
}

/**
 * Sends the pasted links: every line is checked first (nothing is sent while one names
 * no item), then the items go in `queue_add` batches of at most MAX_ITEMS_PER_ADD, and
 * each playlist link as its own `queue_add`. The server's refusal is shown with the
 * line it is about.
 */
async function addPasted(room) {
  const input = $('paste-input');
  const error = $('paste-error');
  const status = $('paste-status');
  clearError(error);
  status.textContent = '';
  const { items, rejected } = parseQueueLines(input.value);
  if (rejected.length) {
    error.textContent = rejectedLinesText(rejected);
    return;
  }
  if (items.length === 0) {
    error.textContent = 'Paste one link per line first.';
    return;
  }
  const singles = items.filter((x) => !x.item.playlist_id);
  const playlists = items.filter((x) => x.item.playlist_id);
  $('paste-btn').disabled = true;
  let added = 0;
  let at = null; // the line the refused command starts at
  try {
    if (singles.length) {
      try {
        ({ added } = await room.queueAddAll(singles.map((x) => x.item), { name: ui.name }));
      } catch (err) {
        added = err.added || 0;
        at = { lines: singles.map((x) => x.line), start: err.batchStart || 0 };
        throw err;
      }
    }
    for (const p of playlists) {
      at = { lines: [p.line], start: 0 };
      await room.queueAdd({ playlist_id: p.item.playlist_id, ...(ui.name ? { name: ui.name } : {}) });
    }
    input.value = '';
    status.textContent = `Queued ${added} item${added === 1 ? '' : 's'}${playlists.length ? ` and ${playlists.length} playlist${playlists.length === 1 ? '' : 's'}` : ''}.`;
  } catch (err) {
    showError(error, err);
    if (!(err instanceof ApiError) || err.code === 'rate_limited') return;
    error.textContent = refusedBatchText(err, at, added);
  } finally {
    $('paste-btn').disabled = false;
  }
}

/** "Line 3 ("foo") is not a link to add." for up to PASTE_ERRORS_SHOWN lines. */
function rejectedLinesText(rejected) {
  const quote = (text) => (text.length > PASTE_QUOTE_CHARS ? `${text.slice(0, PASTE_QUOTE_CHARS)}…` : text);
  const named = rejected.slice(0, PASTE_ERRORS_SHOWN).map((r) => `line ${r.line} (“${quote(r.text)}”)`);
  const more = rejected.length - named.length;
  const which = `${named.join(', ')}${more > 0 ? ` and ${more} more` : ''}`;
  return `Nothing was added: ${which} ${rejected.length === 1 ? 'is' : 'are'} not a YouTube link or id, a /media/ path or an http(s) link to a media file.`;
}

/**
 * The server's refusal of a batch, said with its line: its message names the item by its
 * index in the batch (`items[3]: ...`), which is shown as the line it came from.
 */
function refusedBatchText(err, at, added) {
  const done = added > 0 ? `Queued ${added}; the rest was not added. ` : 'Nothing was added. ';
  if (!at) return `${done}${describeError(err)}`;
  const index = /\bitems\[(\d+)\]/.exec(err.message || '');
  const line = at.lines[at.start + (index ? Number(index[1]) : 0)];
  const where = index && line !== undefined ? `Line ${line}` : `From line ${at.lines[at.start]} on`;
  return `${done}${where}: ${describeError(err)}`;
}

/** Whether the loaded item is audio: once its element has metadata, whether it has a picture; before, its file type. */
function isAudioItem(st) {
  if (!st || !st.media_url) return false;
  const el = ui.playerKind === 'media' && ui.player ? ui.player.element : null;
  if (el && el.readyState >= HAVE_METADATA && ui.player.getVideoData().video_id === st.media_url) return el.videoWidth === 0;
  const name = st.media_url.split(/[?#]/)[0].split('/').pop() || '';
  const dot = name.lastIndexOf('.');
  return dot > 0 && AUDIO_EXTENSIONS.has(name.slice(dot + 1).toLowerCase());
}

/** Where a file of this server keeps its cover art (`null` for other items). */
function artUrl(mediaUrl) {
  if (!mediaUrl.startsWith('/media/')) return null;
  const path = mediaUrl.slice('/media/'.length).split(/[?#]/)[0];
  return path ? `/api/media/art/${path}` : null;
}

/** An audio item shows what plays (title, artist, who added it, cover art) instead of an empty video box. */
function renderNowPlaying(room) {
  const st = room.state;
  const audio = isAudioItem(st);
  $('now-playing').hidden = !audio;
  if (!audio) return;
  $('np-title').textContent = st.title || itemLabel(st);
  const artist = $('np-artist');
  artist.textContent = st.artist || '';
  artist.hidden = !st.artist;
  const by = $('np-by');
  by.textContent = st.added_by ? `Added by ${st.added_by}` : '';
  by.hidden = !st.added_by;
  // The art is asked for once per item (the card is redrawn a few times a second).
  const key = `${st.item_id ?? ''} ${st.media_url}`;
  if (ui.nowPlayingKey === key) return;
  ui.nowPlayingKey = key;
  const img = $('np-art');
  img.hidden = true;
  const src = artUrl(st.media_url);
  if (src) img.src = src;
  else img.removeAttribute('src');
}

/* ------------------------------------------------------------------ chat */

/** The host cleared the chat: forget what is shown. */
function clearChatList() {
  ui.chat = [];
  $('chat-list').textContent = '';
}

function addChat(msg) {
  // The client already drops repeats; a page shows each message once regardless.
  const last = ui.chat[ui.chat.length - 1];
  if (last && msg.version <= last.version) return;
  ui.chat.push({ version: msg.version, name: msg.name, text: msg.text, server_time: msg.server_time });
  const list = $('chat-list');
  const li = document.createElement('li');
  li.className = 'chat-msg';
  if (msg.history) li.classList.add('history');
  if (msg.name === ui.name) li.classList.add('mine');
  li.dataset.version = String(msg.version);
  const head = document.createElement('div');
  head.className = 'chat-head';
  const who = document.createElement('strong');
  who.className = 'chat-name';
  who.textContent = msg.name; // text, never HTML
  who.style.setProperty('--hue', String(hue(msg.name)));
  const when = document.createElement('time');
  const at = new Date(msg.server_time || Date.now());
  when.dateTime = at.toISOString();
  when.textContent = at.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  const tools = document.createElement('span');
  tools.className = 'chat-tools';
  const remove = iconButton('✕', `Delete ${msg.name}'s message`, () => deleteChat(msg.version));
  remove.classList.add('chat-delete');
  remove.hidden = !may(Group.MODERATE);
  tools.append(when, remove);
  head.append(who, tools);
  const body = document.createElement('p');
  body.className = 'chat-text';
  body.textContent = msg.text; // text, never HTML
  li.append(head, body);
  const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 60;
  list.append(li);
  while (list.children.length > 300) list.firstElementChild.remove();
  if (nearBottom) list.scrollTop = list.scrollHeight;
}

/** A moderator deletes one message for everyone; `chat_deleted` takes it off every page. */
async function deleteChat(version) {
  try {
    await ui.room.deleteChat(version);
  } catch (err) {
    // Gone already (another moderator was quicker): take it off here too.
    if (err instanceof ApiError && err.status === 404) removeChat(version);
    else toast(describeError(err), 'error');
  }
}

/**
 * A fresh snapshot (after a drop too long to replay) says what chat the room keeps: what is
 * shown here up to its newest message is replaced by it, so that a message deleted meanwhile
 * goes (as may one too old to be kept any more). Without kept messages there is nothing to go by.
 */
function pruneChat(kept) {
  if (!Array.isArray(kept) || kept.length === 0) return;
  const versions = new Set(kept.map((m) => m.version));
  const newest = Math.max(...versions);
  for (const m of ui.chat.slice()) {
    if (m.version < newest && !versions.has(m.version)) removeChat(m.version);
  }
}

function removeChat(version) {
  ui.chat = ui.chat.filter((m) => m.version !== version);
  const li = $('chat-list').querySelector(`li[data-version="${Number(version)}"]`);
  if (li) li.remove();
}

/* ------------------------------------------------------------------ controls */

async function send(cmd, { quiet = false } = {}) {
  try {
    return await ui.room.command(cmd);
  } catch (err) {
    if (!quiet) toast(describeError(err), 'error');
    return null;
  }
}

function currentPosition() {
  return ui.player ? ui.room.playerPosition() : ui.room.roomPosition();
}

function wireControls(room) {
  // The host stops waiting for the ready gate: `play` on a pending start starts it a lead from now.
  $('start-now').addEventListener('click', () => send({ type: 'play' }));
  $('btn-play').addEventListener('click', () => {
    const st = room.state;
    if (!st || !itemKey(st)) { toast('Load a video first.', 'info'); return; }
    if (st.paused) send({ type: 'play' });
    else send({ type: 'pause', position: currentPosition() });
  });
  const jump = (delta) => {
    const st = room.state;
    if (!st || !itemKey(st)) return;
    let target = Math.max(0, room.roomPosition() + delta);
    if (st.duration) target = Math.min(target, st.duration);
    send({ type: 'seek', position: target });
  };
  $('btn-back').addEventListener('click', () => jump(-10));
  $('btn-fwd').addEventListener('click', () => jump(10));

  const range = $('seek-range');
  range.addEventListener('input', () => {
    ui.seeking = true;
    $('time-now').textContent = formatTime(Number(range.value));
  });
  range.addEventListener('change', () => {
    ui.seeking = false;
    send({ type: 'seek', position: Number(range.value) });
  });
  range.addEventListener('blur', () => { ui.seeking = false; });

  $('seek-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const secs = parseTimestamp($('seek-input').value);
    if (secs === null) { toast('Type a time like 90, 1:30 or 1m30s.', 'info'); return; }
    send({ type: 'seek', position: secs });
    $('seek-input').value = '';
  });

  $('rate-select').addEventListener('change', (e) => send({ type: 'rate', rate: Number(e.target.value) }));
  $('btn-next').addEventListener('click', () => send({ type: 'next' }));

  const readVideo = () => {
    const err = $('load-error');
    err.textContent = '';
    const parsed = parseYouTube($('load-input').value);
    if (!parsed) { err.textContent = 'That does not look like a YouTube link or video id.'; return null; }
    return parsed;
  };
  $('load-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    // Enter in the box: whoever may only add to the queue adds.
    if (!may(Group.PLAYBACK)) { $('queue-add-btn').click(); return; }
    const parsed = readVideo();
    if (!parsed) return;
    const res = await send({ type: 'load', video_id: parsed.videoId, position: parsed.start ?? 0 });
    if (res) $('load-input').value = '';
  });
  $('queue-add-btn').addEventListener('click', async () => {
    const parsed = readVideo();
    if (!parsed) return;
    const res = await send({ type: 'queue_add', video_id: parsed.videoId, ...attribution(room) });
    if (res) { $('load-input').value = ''; toast('Added to the queue.', 'info'); }
  });

  wireMediaForm();

  $('open-control').addEventListener('change', (e) => {
    send({ type: 'control', control: e.target.checked ? 'open' : 'host' });
  });
  $('public-room').addEventListener('change', (e) => {
    send({ type: 'visibility', visibility: e.target.checked ? 'public' : 'unlisted' });
  });
  $('chat-enabled').addEventListener('change', (e) => {
    send({ type: 'chat_enabled', chat_enabled: e.target.checked });
  });
  $('clear-chat').addEventListener('click', () => {
    if (!window.confirm('Clear the chat for everyone?')) return;
    send({ type: 'clear_chat' });
  });
  $('copy-host-link').addEventListener('click', async () => {
    const input = $('host-link');
    try {
      await navigator.clipboard.writeText(input.value);
      toast('Host link copied — open it on your other device. Anyone with it can control the room.', 'info');
    } catch {
      input.select();
      document.execCommand('copy');
    }
  });
  $('reset-host-token').addEventListener('click', async () => {
    if (!window.confirm('Reset the host token? Host links shared before stop working.')) return;
    try {
      const { host_token: token } = await room.resetHostToken();
      store.set(hostKey(room.roomId), token);
      renderControl();
      toast('Host token reset: old host links no longer work.', 'info');
    } catch (err) {
      toast(describeError(err), 'error');
    }
  });
  $('close-room').addEventListener('click', async () => {
    if (!window.confirm('Close this room for everyone?')) return;
    try { await room.close(); } catch (err) { toast(describeError(err), 'error'); }
  });
  $('copy-link').addEventListener('click', async () => {
    const input = $('share-link');
    try {
      await navigator.clipboard.writeText(input.value);
      toast('Link copied — send it to your friends.', 'info');
    } catch {
      input.select();
      document.execCommand('copy');
    }
  });

  $('chat-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const input = $('chat-input');
    const text = input.value.trim();
    if (!text) return;
    clearError($('chat-error'));
    // Clear at once so the next message can be typed while this one is in flight; give the
    // text back only if it failed and nothing new was typed meanwhile.
    input.value = '';
    try {
      await room.chat(ui.name, text);
    } catch (err) {
      if (!input.value) input.value = text;
      showError($('chat-error'), err);
    }
  });

  $('hold-resume').addEventListener('click', () => { room.resume(); $('hold-banner').hidden = true; });
  $('click-to-join-btn').addEventListener('click', () => { $('click-to-join').hidden = true; room.resume(); });

  // Keyboard shortcuts for whoever controls (not while typing): Space/K play-pause, J/L ∓10 s.
  document.addEventListener('keydown', (e) => {
    if (!may(Group.PLAYBACK) || e.altKey || e.ctrlKey || e.metaKey) return;
    const t = e.target;
    if (t instanceof HTMLElement && (t.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT', 'BUTTON'].includes(t.tagName))) return;
    if (e.key === ' ' || e.key === 'k') { e.preventDefault(); $('btn-play').click(); }
    else if (e.key === 'j') jump(-10);
    else if (e.key === 'l') jump(10);
  });
}

/* ------------------------------------------------------------------ permissions and co-hosts */
// The host's panel of who may do what (a select per group, the `permissions` command) and
// co-host management (add by name: a link to send them; the list, to revoke).

function wirePermissionTools(room) {
  for (const select of document.querySelectorAll('#perm-panel select')) {
    select.addEventListener('change', async () => {
      try {
        await room.setPermissions({ [select.dataset.group]: select.value });
      } catch (err) {
        toast(describeError(err), 'error');
        renderPermissionTools(room);
      }
    });
  }
  $('cohost-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const error = $('cohost-error');
    clearError(error);
    const name = $('cohost-name').value.trim();
    if (!name) { error.textContent = 'Give the co-host a name.'; return; }
    $('cohost-add').disabled = true;
    try {
      const added = await room.addCohost(name);
      $('cohost-name').value = '';
      $('cohost-new-name').textContent = added.name;
      $('cohost-link').value = cohostLink(location.origin, room.roomId, added.cohost_token, added.cohost_id);
      $('cohost-new').hidden = false;
      $('cohost-new').dataset.cohostId = added.cohost_id;
    } catch (err) {
      showError(error, err);
    } finally {
      $('cohost-add').disabled = false;
    }
  });
  $('copy-cohost-link').addEventListener('click', async () => {
    const input = $('cohost-link');
    try {
      await navigator.clipboard.writeText(input.value);
      toast('Co-host link copied — send it to them only.', 'info');
    } catch {
      input.select();
      document.execCommand('copy');
    }
  });
}

/** The panel follows the room: each group's select, and the co-hosts with a revoke button each. */
function renderPermissionTools(room) {
  renderVoteSettings(room);
  // A server without permissions has neither: its room view says only `control`.
  const supported = Boolean(room.hostToken && room.room && room.room.permissions);
  $('perm-panel').hidden = !supported;
  $('cohosts-panel').hidden = !supported;
  if (!supported) return;
  const permissions = room.permissions;
  for (const select of document.querySelectorAll('#perm-panel select')) select.value = permissions[select.dataset.group];
  const list = $('cohost-list');
  const cohosts = Array.isArray(room.room.cohosts) ? room.room.cohosts : [];
  // The link of a co-host revoked since is no use to anyone.
  const fresh = $('cohost-new');
  if (!fresh.hidden && !cohosts.some((c) => c.cohost_id === fresh.dataset.cohostId)) fresh.hidden = true;
  const shown = Array.from(list.children, (li) => li.dataset.cohostId).join(' ');
  if (shown === cohosts.map((c) => c.cohost_id).join(' ')) return;
  list.textContent = '';
  for (const cohost of cohosts) {
    const li = document.createElement('li');
    li.dataset.cohostId = cohost.cohost_id;
    const name = textSpan('cohost-name', cohost.name);
    const revoke = document.createElement('button');
    revoke.type = 'button';
    revoke.className = 'btn btn-small btn-ghost-danger';
    revoke.textContent = 'Revoke';
    revoke.setAttribute('aria-label', `Revoke ${cohost.name}`);
    revoke.addEventListener('click', async () => {
      revoke.disabled = true;
      try {
        await room.revokeCohost(cohost.cohost_id);
      } catch (err) {
        toast(describeError(err), 'error');
        revoke.disabled = false;
      }
    });
    li.append(name, revoke);
    list.append(li);
  }
}

/**
 * A co-host page whose link named its id sees at once, from the room's `cohosts`, that the
 * host revoked it (a link without the id learns it from its next refused command).
 */
function checkCohost(room) {
  if (room.role !== Who.COHOST || !ui.cohostId || !room.room || !Array.isArray(room.room.cohosts)) return;
  if (room.room.cohosts.some((c) => c.cohost_id === ui.cohostId)) return;
  forgetCohost();
  toast(REVOKED_TEXT, 'warn');
}

/* ------------------------------------------------------------------ vote skip */
// While the host has vote skip on, every page may vote once per item to skip what plays
// and sees how the votes stand; the host sets the share of listeners (and the fewest votes)
// that skip. What is "enough" is the server's to say: the page shows its `needed`.

/** State causes that put a new item in place: its votes start from none. */
const NEW_ITEM_CAUSES = Object.freeze(new Set(['load', 'next', 'ended', 'vote_skip']));

/**
 * This page's view of the votes on the loaded item: `item` counts the items seen (an answer
 * that comes back after the item changed is about the old one), `voted` whether this page's
 * stream voted on it, `progress` the newest `{skip, needed}` heard (null: none yet).
 */
const votes = { item: 0, key: null, stream: null, voted: false, sending: false, progress: null };

/** The room's vote skip setting, or null from a server without vote skip. */
function voteSkipOf(room) {
  const setting = room.room && room.room.vote_skip;
  return setting && typeof setting.ratio === 'number' ? setting : null;
}

/** What names the loaded item here: its queue id and its video or media (a `load` has no id). */
function voteItemKey(room) {
  const st = room.room ? room.room.state : null;
  return st && itemKey(st) ? `${st.item_id ?? ''} ${itemKey(st)}` : null;
}

/** A new item (by its cause, or a snapshot showing another one) starts with no votes. */
function followVoteItem(room, cause = null) {
  const key = voteItemKey(room);
  if (key === votes.key && !NEW_ITEM_CAUSES.has(cause)) return;
  votes.key = key;
  votes.item += 1;
  votes.voted = false;
  votes.progress = null;
}

function wireVoteSkip(room) {
  $('btn-vote').addEventListener('click', () => voteToSkip(room));
  room.addEventListener('snapshot', () => { followVoteItem(room); renderVotes(room); });
  room.addEventListener('state', (e) => {
    followVoteItem(room, e.detail.cause);
    if (e.detail.cause === 'vote_skip') toast('Skipped by vote', 'info');
    renderVotes(room);
  });
  room.addEventListener('votes', (e) => { votes.progress = e.detail; renderVotes(room); });
  room.addEventListener('vote_skip', () => { renderVotes(room); renderVoteSettings(room); });
  // A new stream (a reconnect) is a new voter: the old one's vote went with it.
  room.addEventListener('hello', (e) => {
    if (votes.stream !== null && e.detail.stream !== votes.stream) votes.voted = false;
    votes.stream = e.detail.stream;
    renderVotes(room);
  });
  room.addEventListener('closed', () => renderVotes(room));
  const send = () => sendVoteSkip(room);
  $('vote-ratio').addEventListener('change', send);
  $('vote-min').addEventListener('change', send);
  renderVotes(room);
}

/** One vote per item: the button says "Voted" once the server has this page's vote. */
async function voteToSkip(room) {
  const item = votes.item;
  votes.sending = true;
  renderVotes(room);
  try {
    const answer = await room.voteSkip();
    // Enough votes may have skipped the item before the answer came: it was about the old one.
    if (votes.item === item) {
      votes.voted = true;
      votes.progress = answer;
    }
  } catch (err) {
    toast(describeError(err), 'error');
  } finally {
    votes.sending = false;
    renderVotes(room);
  }
}

/** The vote button and "skip votes: 2 of 3 needed", only while vote skip is on. */
function renderVotes(room) {
  const setting = voteSkipOf(room);
  const on = Boolean(setting && setting.ratio > 0 && !ended(room));
  $('vote-row').hidden = !on;
  if (!on) return;
  const loaded = votes.key !== null;
  const button = $('btn-vote');
  button.disabled = !loaded || votes.voted || votes.sending;
  button.textContent = votes.voted ? 'Voted' : 'Vote to skip';
  const p = votes.progress;
  $('vote-count').textContent = !loaded ? 'Nothing to skip'
    : p ? `skip votes: ${p.skip} of ${p.needed} needed` : 'No skip votes yet';
}

/** The host's vote skip setting as the room has it (a share set elsewhere gets its own option). */
function renderVoteSettings(room) {
  const setting = voteSkipOf(room);
  $('vote-panel').hidden = !(room.hostToken && setting);
  if (!room.hostToken || !setting) return;
  const select = $('vote-ratio');
  const value = String(setting.ratio);
  if (![...select.options].some((o) => Number(o.value) === setting.ratio)) {
    const option = document.createElement('option');
    option.value = value;
    option.textContent = `${Math.round(setting.ratio * 1000) / 10} % of listeners`;
    select.append(option);
  }
  select.value = [...select.options].find((o) => Number(o.value) === setting.ratio).value;
  const min = $('vote-min');
  if (document.activeElement !== min) min.value = String(setting.min_votes);
}

/** Sends the host's choice (`vote_skip`); the room's `vote_skip` event shows it on every page. */
async function sendVoteSkip(room) {
  const error = $('vote-error');
  clearError(error);
  const ratio = Number($('vote-ratio').value);
  const minVotes = Number($('vote-min').value);
  if (!Number.isInteger(minVotes) || minVotes < 1) {
    error.textContent = 'The fewest votes is a whole number, 1 or more.';
    return;
  }
  try {
    await room.setVoteSkip(ratio, minVotes);
  } catch (err) {
    showError(error, err);
    renderVoteSettings(room);
  }
}

/* ------------------------------------------------------------------ who's here */
// The room's named listeners (the snapshot's `members`, then `members` events saying who
// joined and left), how many others listen, and for moderators a "Remove" button for each
// (`kick`). A removed page says so and stays off: it does not reconnect.

/** Who's here: stream id -> name, in the order they joined (null from a server without it), and the others' count. */
const members = { list: null, unnamed: 0 };

function wireMembers(room) {
  room.addEventListener('snapshot', (e) => setMembers(room, e.detail));
  room.addEventListener('members', (e) => applyMembers(room, e.detail));
  // A changed count alone comes as `presence`: the others are the listeners not shown.
  room.addEventListener('presence', (e) => {
    if (!members.list || typeof e.detail.listeners !== 'number') return;
    members.unnamed = Math.max(0, e.detail.listeners - members.list.size);
    renderMembers(room);
  });
  // A stream resumed by replay gets no snapshot, and `members` events are never replayed: ask.
  let streams = 0;
  room.addEventListener('hello', () => {
    streams += 1;
    if (streams > 1) getRoom(room.roomId).then((view) => { if (!ui.kicked) setMembers(room, view); }).catch(() => {});
  });
  room.addEventListener('kicked', () => onKicked(room));
  for (const type of ['control', 'permissions', 'cohosts', 'closed']) room.addEventListener(type, () => renderMembers(room));
}

/** The list as a room view has it. */
function setMembers(room, view) {
  if (!view || !Array.isArray(view.members)) {
    members.list = null;
  } else {
    members.list = new Map();
    for (const m of view.members) {
      if (m && typeof m.stream === 'string' && typeof m.name === 'string') members.list.set(m.stream, m.name);
    }
    members.unnamed = typeof view.unnamed === 'number' ? view.unnamed : 0;
  }
  renderMembers(room);
}

/** A `members` event: `left` go, `joined` come at the end, `unnamed` is the others now. */
function applyMembers(room, change) {
  if (!members.list || !change) return;
  for (const stream of Array.isArray(change.left) ? change.left : []) members.list.delete(stream);
  for (const m of Array.isArray(change.joined) ? change.joined : []) {
    if (m && typeof m.stream === 'string' && typeof m.name === 'string') members.list.set(m.stream, m.name);
  }
  if (typeof change.unnamed === 'number') members.unnamed = change.unnamed;
  renderMembers(room);
}

function renderMembers(room) {
  const show = Boolean(members.list) && !ended(room);
  $('members-panel').hidden = !show;
  if (!show) return;
  const moderate = may(Group.MODERATE);
  const list = $('member-list');
  list.textContent = '';
  for (const [stream, name] of members.list) {
    const li = document.createElement('li');
    li.dataset.stream = stream;
    li.append(textSpan('member-name', name));
    if (stream === room.streamId) {
      li.append(textSpan('member-you', 'you'));
    } else if (moderate) {
      const remove = document.createElement('button');
      remove.type = 'button';
      remove.className = 'btn btn-small btn-ghost-danger';
      remove.textContent = 'Remove';
      remove.setAttribute('aria-label', `Remove ${name}`);
      remove.addEventListener('click', () => kick(room, stream, name, remove));
      li.append(remove);
    }
    list.append(li);
  }
  $('members-count').textContent = String(members.list.size + members.unnamed);
  const others = $('members-unnamed');
  others.hidden = members.unnamed === 0;
  others.textContent = `${members.list.size ? 'And ' : ''}${members.unnamed} listener${members.unnamed === 1 ? '' : 's'} without a name`;
}

/** A moderator removes a listener's page: its stream ends, and its `members` event takes it off every list. */
async function kick(room, stream, name, button) {
  button.disabled = true;
  try {
    await room.command({ type: 'kick', stream });
    toast(`${name} was removed from the room.`, 'info');
  } catch (err) {
    toast(describeError(err), 'error');
    button.disabled = false;
  }
}

/** A moderator removed this page: it says so and stops (the kick is soft: a reload joins again). */
function onKicked(room) {
  ui.kicked = true;
  // Before the server ends the stream: the EventSource must not reconnect by itself.
  room.stop();
  const banner = $('closed-banner');
  banner.textContent = 'You were removed from this room.';
  banner.hidden = false;
  renderConnection('closed');
  if (ui.player) ui.player.pauseVideo();
  renderControl();
  renderVotes(room);
  renderMembers(room);
}

/* ------------------------------------------------------------------ media */

let mediaListLoaded = false;

/** Fills the file picker from `GET /api/media` (once; `{"files": []}` without `--media-dir`). */
async function loadMediaList() {
  if (mediaListLoaded) return;
  mediaListLoaded = true;
  let files = [];
  try {
    const body = await request('', 'GET', '/api/media');
    files = Array.isArray(body && body.files) ? body.files : [];
  } catch {
    mediaListLoaded = false; // try again on the next render
    return;
  }
  const select = $('media-select');
  select.textContent = '';
  const first = document.createElement('option');
  first.value = '';
  first.textContent = files.length ? 'Pick a file from this server…' : 'No files on this server';
  select.append(first);
  for (const f of files) {
    if (!f || typeof f.path !== 'string') continue;
    const opt = document.createElement('option');
    opt.value = f.path;
    opt.textContent = typeof f.name === 'string' && f.name ? f.name : f.path;
    select.append(opt);
  }
  select.disabled = files.length === 0;
}

/**
 * A media URL's length in seconds, read by a metadata-only element (nothing is played),
 * or `null` when the browser cannot tell in time: the room needs it to auto-advance.
 */
function probeDuration(url) {
  return new Promise((resolve) => {
    const probe = document.createElement('video');
    probe.preload = 'metadata';
    probe.muted = true;
    let timer = null;
    const done = (value) => {
      clearTimeout(timer);
      probe.removeAttribute('src');
      probe.load();
      resolve(value);
    };
    timer = setTimeout(() => done(null), MEDIA_PROBE_TIMEOUT_MS);
    probe.addEventListener('loadedmetadata', () => done(Number.isFinite(probe.duration) && probe.duration > 0 ? probe.duration : null), { once: true });
    probe.addEventListener('error', () => done(null), { once: true });
    probe.src = url;
  });
}

/** The media URL the host chose (a pasted link wins over the picker), or null with an error shown. */
function readMediaUrl() {
  const err = $('media-error');
  err.textContent = '';
  const typed = $('media-url').value.trim();
  const picked = $('media-select').value;
  if (!typed) {
    if (picked) return picked;
    err.textContent = 'Pick a file or paste a link to an audio or video file.';
    return null;
  }
  let url;
  try { url = new URL(typed); } catch { url = null; }
  if (!url || !['http:', 'https:'].includes(url.protocol)) {
    err.textContent = 'A media link starts with https:// (or http://).';
    return null;
  }
  if (url.protocol === 'http:' && location.protocol === 'https:') {
    err.textContent = 'This page is served over HTTPS, so the browser blocks plain http:// media as mixed content: use an https:// link.';
    return null;
  }
  return url.href;
}

/** The name a media item is shown by: the picked file's, or the URL's last path segment. */
function mediaTitle(url) {
  const picked = $('media-select').selectedOptions[0];
  if (picked && picked.value === url) return picked.textContent;
  return itemLabel({ media_url: url });
}

function wireMediaForm() {
  const submit = async (type) => {
    const mediaUrl = readMediaUrl();
    if (!mediaUrl) return;
    $('media-play-btn').disabled = true;
    $('media-queue-btn').disabled = true;
    try {
      const cmd = { type, media_url: mediaUrl };
      // A queued link shows its name (the link's last part); a file of this server gets
      // its title from its own tags, which the server reads when no title is given.
      if (type === 'queue_add' && !mediaUrl.startsWith('/media/')) {
        cmd.title = Array.from(mediaTitle(mediaUrl)).slice(0, MAX_TITLE_CHARS).join('');
      }
      // The room auto-advances only past an item whose length it knows: read it first
      // (`load` and `queue_add` carry it; the server also reads its own files' lengths).
      const duration = await probeDuration(mediaUrl);
      if (duration !== null && (type === 'load' || serverTakesQueueFields(ui.room))) cmd.duration = duration;
      if (type === 'queue_add') Object.assign(cmd, attribution(ui.room));
      if (duration === null) toast('Could not read the length of this media (is it audio or video the browser plays?).', 'warn');
      const res = await send(cmd);
      if (res) {
        $('media-url').value = '';
        if (type === 'queue_add') toast('Added to the queue.', 'info');
      }
    } finally {
      $('media-play-btn').disabled = false;
      $('media-queue-btn').disabled = false;
    }
  };
  $('media-form').addEventListener('submit', (e) => { e.preventDefault(); submit(may(Group.PLAYBACK) ? 'load' : 'queue_add'); });
  $('media-queue-btn').addEventListener('click', () => submit('queue_add'));
}

/* ------------------------------------------------------------------ boot */

/** The inputs' lengths and the sync pill's threshold, as the server's limits say. */
function applyLimits() {
  $('create-name').maxLength = MAX_ROOM_NAME_CHARS;
  for (const id of ['create-you', 'join-name', 'cohost-name']) $(id).maxLength = MAX_CHAT_NAME_CHARS;
  $('chat-input').maxLength = MAX_CHAT_TEXT_CHARS;
  $('sync-pill').title = `Listeners whose drift p95 is within ${IN_SYNC_MS} ms of the room, of those reporting`;
}

function boot() {
  applyLimits();
  const roomId = roomIdFromPath(location.pathname);
  if (roomId) adoptLink(roomId);
  if (roomId) enterRoom(roomId);
  else initHome();
}

window.addEventListener('popstate', () => location.reload());
boot();
