// Written by build.rs from limits.json (the server reads the same file); edit that file.
/**
 * limits.js — the limits the server enforces that the page and the client apply
 * too, so both sides always agree on them.
 *
 * @module limits
 */

/** The slowest playback rate the API takes (`rate` command), as the YouTube player allows. */
export const MIN_RATE = 0.25;

/** The fastest playback rate the API takes (`rate` command), as the YouTube player allows. */
export const MAX_RATE = 2.0;

/** The longest queue item `title`, in characters. */
export const MAX_TITLE_CHARS = 200;

/** The longest room name, in characters. */
export const MAX_ROOM_NAME_CHARS = 100;

/** The longest room id (`[A-Za-z0-9_-]`), in characters. */
export const MAX_ROOM_ID_CHARS = 64;

/** The longest chat author name, and name in a sync report, in characters. */
export const MAX_CHAT_NAME_CHARS = 64;

/** The longest chat message, in characters. */
export const MAX_CHAT_TEXT_CHARS = 500;

/** The most items one `queue_add` takes (`items`); the page sends longer lists in batches of this many. */
export const MAX_ITEMS_PER_ADD = 100;

/** A listener whose drift p95 is at most this many milliseconds (and whose player is not buffering) is "in sync". */
export const IN_SYNC_MS = 50.0;

/** The largest drift a sync report may state (ten minutes): past it, a page is not
 * playing the room's item at all, and the number only means a bug or a lie. */
export const MAX_DRIFT_MS = 600000.0;

/** The shortest `--sync-report-interval` (ms): the page believes no shorter one. */
export const MIN_SYNC_REPORT_INTERVAL_MS = 1000;

/** The longest `--sync-report-interval` (ms): the page believes no longer one. */
export const MAX_SYNC_REPORT_INTERVAL_MS = 60000;
