// The start skew of a room's listener pages: how far apart their players are just
// after a scheduled start, read as every page's player position brought to one
// instant (each page's own reading, moved by the room's rate over the wall-clock
// time between the readings). Shared by tests/browser/start.test.mjs and
// bench/sync.mjs.
import { waitFor } from './helpers.mjs';

/** How long after `starts_at` the players are read (ms): started, not yet corrected. */
export const SKEW_READ_AFTER_MS = 400;
/** Within this long after the start a corrective seek counts against a clean start (ms). */
export const CLEAN_START_MS = 2000;

/** One page's player, its clock and the room's raw state, read in one evaluation. */
function readPlayer(page) {
  return page.evaluate(() => {
    const s = window.syncroom;
    return {
      wall: performance.timeOrigin + performance.now(),
      serverNow: s.client.serverNow(),
      player: s.playerPosition(),
      room: s.roomPosition(),
      raw: s.client.room ? s.client.room.state : null,
      seeks: s.health().seeks,
      startLatency: s.client.sync && s.client.sync.player.getStartLatency ? s.client.sync.player.getStartLatency() : null,
      mode: s.health().mode,
    };
  });
}

/**
 * Waits for a pending start on every page (a `starts_at` with no open gate), then
 * reads every player shortly after it. Resolves to
 * `{startsAt, skewMs, vsRoomMs: [...], seeksBefore: [...]}`: `skewMs` is the largest
 * gap between two players at one instant, `vsRoomMs` each player minus the room.
 */
export async function measureStart(pages, { timeout = 20000 } = {}) {
  let startsAt = null;
  await waitFor(async () => {
    const reads = await Promise.all(pages.map(readPlayer));
    const pending = reads.map((r) => (r.raw && typeof r.raw.starts_at === 'number' && r.raw.ready_gate == null ? r.raw.starts_at : null));
    if (pending.some((t) => t === null || t !== pending[0])) return false;
    startsAt = pending[0];
    return true;
  }, { timeout, what: 'a scheduled start on every page' });
  const seeksBefore = (await Promise.all(pages.map(readPlayer))).map((r) => r.seeks);
  const first = await readPlayer(pages[0]);
  const wait = startsAt + SKEW_READ_AFTER_MS - first.serverNow;
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  const reads = [];
  for (const page of pages) reads.push(await readPlayer(page));
  const rate = reads[0].raw ? reads[0].raw.rate : 1;
  const atFirst = reads.map((r) => r.player - ((r.wall - reads[0].wall) / 1000) * rate);
  const skewMs = (Math.max(...atFirst) - Math.min(...atFirst)) * 1000;
  return {
    startsAt,
    skewMs,
    vsRoomMs: reads.map((r) => (r.player - r.room) * 1000),
    modes: reads.map((r) => r.mode),
    startLatencies: reads.map((r) => r.startLatency),
    seeksBefore,
  };
}

/** Corrective seeks made by each page from the start until CLEAN_START_MS after it. */
export async function seeksAfterStart(pages, { startsAt, seeksBefore }) {
  const first = await readPlayer(pages[0]);
  const wait = startsAt + CLEAN_START_MS - first.serverNow;
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  const after = await Promise.all(pages.map(readPlayer));
  return after.map((r, i) => r.seeks - seeksBefore[i]);
}
