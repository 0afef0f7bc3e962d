#!/usr/bin/env node
// Sync on real players, measured (run by hand; not part of scripts/test).
//
// Starts the server (target/debug/syncroom, or SYNCROOM_BIN) with --media-dir on a
// fresh directory of WAV tones, a host page and N listener pages in one headless browser
// (Chromium, or Firefox ESR with --engine firefox), and for each player kind:
//   - media:   a /media/ file played by the page's media element player;
//   - standin: a YouTube item played by the page's real YouTube code on the YT.Player
//              stand-in (coarse rates, seeks that take time, over a real media element);
// measures, after settling, listener vs room and listener vs listener p50/p95 over the
// steady window, the seeks made per 30 s of steady play, and a late joiner's convergence
// time (from its snapshot to within 50 ms of the room). Prints one table.
//
// Then, per player kind, `--starts` times: a `load` of another item, which the pages
// report ready (the ready gate) and every player starts at the scheduled `starts_at`
// (the server's defaults: --start-lead-ms 300, gate 80 % / 3 s). Measured: the start
// skew (the largest gap between two players, brought to one instant 400 ms after the
// start), each player against the room then, and the corrective seeks in the first 2 s.
// Prints a second table.
//
//   node bench/sync.mjs [--engine chromium|firefox] [--listeners 4] [--steady 30] [--settle 3] [--kinds media,standin] [--starts 8]
//
// BENCH_VERBOSE=1 prints every start: its skew, each player against the room, and
// each page's start latency (the media element's own measure).
//
// Needs what tests/browser/run.sh installs (Chromium and Firefox ESR, playwright-core and
// puppeteer-core in tests/browser/node_modules) and a built server (cargo build).
import process from 'node:process';

import {
  startServer, launchBrowser, openPage, waitFor, joinAsListener, api,
} from '../tests/browser/helpers.mjs';
import { mediaDir } from '../tests/browser/fixtures/media.mjs';
import { measureStart, seeksAfterStart } from '../tests/browser/start-skew.mjs';

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}
const LISTENERS = Number(arg('listeners', 4));
const STEADY_S = Number(arg('steady', 30));
const SETTLE_S = Number(arg('settle', 3));
const KINDS = String(arg('kinds', 'media,standin')).split(',');
const ENGINE = arg('engine', 'chromium');
const SAMPLE_EVERY_MS = 100;
const LATE_JOIN_WITHIN_S = 0.05; // "converged": within 50 ms of the room ...
const LATE_JOIN_HOLD_MS = 100; // ... and staying there this long
const STARTS = Number(arg('starts', 8));
const YT_ID = 'benchStandn'; // 11 characters
const YT_ID_2 = 'benchStand2';

const q = (xs, p) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * (s.length - 1)))];
};

function probe(page) {
  return page.evaluate(() => {
    const s = window.syncroom;
    return {
      wall: performance.timeOrigin + performance.now(), player: s.playerPosition(), room: s.roomPosition(),
      state: s.state(), kind: s.playerKind, seeks: s.health().seeks,
    };
  });
}

function pairGap(a, b) {
  const rate = a.state && !a.state.paused ? a.state.rate : 0;
  return Math.abs(a.player - (b.player - ((b.wall - a.wall) / 1000) * rate));
}

/** A late joiner: ms from its snapshot (connected) until it holds within 50 ms of the room. */
async function lateJoin(browser, base, roomId, query, standin) {
  const page = await openPage(browser, { youtubeStandin: standin });
  await page.goto(`${base}/r/${roomId}${query}`);
  await page.getByRole('textbox', { name: 'Your name' }).fill('Late');
  await page.getByRole('button', { name: 'Join & watch' }).click();
  const ms = await page.evaluate(async ({ within, hold }) => {
    const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
    while (!(window.syncroom && window.syncroom.connected)) await sleep(2);
    const t0 = performance.now();
    let since = null;
    while (performance.now() - t0 < 15000) {
      const s = window.syncroom;
      const d = Math.abs(s.playerPosition() - s.roomPosition());
      if (s.client.sync && d <= within) {
        if (since === null) since = performance.now();
        if (performance.now() - since >= hold) return since - t0;
      } else {
        since = null;
      }
      await sleep(5);
    }
    return null;
  }, { within: LATE_JOIN_WITHIN_S, hold: LATE_JOIN_HOLD_MS });
  await page.context().close();
  return ms;
}

async function measure(kind, { browser, server, token, roomId, listeners, query, standin }) {
  const body = kind === 'media'
    ? { type: 'load', media_url: '/media/bench.wav', duration: 600 }
    : { type: 'load', video_id: YT_ID, duration: 600 };
  const res = await api(server.url, 'POST', `/api/rooms/${roomId}/commands`, body, token);
  if (res.status !== 200) return { kind, error: `load refused: ${res.status} ${JSON.stringify(res.body)}` };
  const want = kind === 'media' ? 'media' : 'youtube';
  await waitFor(async () => {
    for (const page of listeners) {
      const p = await probe(page);
      if (p.kind !== want || !p.state || p.state.paused) return false;
    }
    return true;
  }, { timeout: 20000, what: `${kind} to play everywhere` });
  await new Promise((r) => setTimeout(r, SETTLE_S * 1000));
  const vsRoom = [];
  const vsEach = [];
  const seeks0 = (await Promise.all(listeners.map(probe))).map((p) => p.seeks);
  const t0 = Date.now();
  while (Date.now() - t0 < STEADY_S * 1000) {
    const probes = [];
    for (const page of listeners) probes.push(await probe(page));
    for (const p of probes) vsRoom.push(Math.abs(p.player - p.room));
    for (let i = 0; i < probes.length; i += 1) for (let j = i + 1; j < probes.length; j += 1) vsEach.push(pairGap(probes[i], probes[j]));
    await new Promise((r) => setTimeout(r, SAMPLE_EVERY_MS));
  }
  const seconds = (Date.now() - t0) / 1000;
  const seeks1 = (await Promise.all(listeners.map(probe))).map((p) => p.seeks);
  const seeks = seeks1.reduce((s, n, i) => s + n - seeks0[i], 0);
  const late = await lateJoin(browser, server.url, roomId, query, standin);
  return {
    kind,
    vsRoomP50: q(vsRoom, 0.5) * 1000,
    vsRoomP95: q(vsRoom, 0.95) * 1000,
    vsEachP50: q(vsEach, 0.5) * 1000,
    vsEachP95: q(vsEach, 0.95) * 1000,
    seeksPer30s: (seeks / listeners.length) * (30 / seconds),
    seeks,
    lateJoinMs: late,
    samples: vsRoom.length,
  };
}

/** `STARTS` scheduled starts of alternating items: the start skew and the seeks after each. */
async function measureStarts(kind, { server, token, roomId, listeners }) {
  const items = kind === 'media'
    ? [{ media_url: '/media/bench2.wav', duration: 600 }, { media_url: '/media/bench.wav', duration: 600 }]
    : [{ video_id: YT_ID_2, duration: 600 }, { video_id: YT_ID, duration: 600 }];
  const skews = [];
  const vsRoom = [];
  let seeks = 0;
  let startsWithSeeks = 0;
  for (let i = 0; i < STARTS; i += 1) {
    const res = await api(server.url, 'POST', `/api/rooms/${roomId}/commands`, { type: 'load', ...items[i % 2] }, token);
    if (res.status !== 200) return { kind, error: `load refused: ${res.status}` };
    const start = await measureStart(listeners);
    if (process.env.BENCH_VERBOSE) console.log(`start ${i}: skew ${start.skewMs.toFixed(1)} ms; vs room ${start.vsRoomMs.map((v) => v.toFixed(1)).join(", ")}; start latencies ${start.startLatencies.map((v) => (v === null ? "-" : (v * 1000).toFixed(0))).join(", ")}; modes ${start.modes.join(", ")}`);
    const after = await seeksAfterStart(listeners, start);
    skews.push(start.skewMs);
    vsRoom.push(...start.vsRoomMs.map(Math.abs));
    seeks += after.reduce((s, n) => s + n, 0);
    if (after.some((n) => n > 0)) startsWithSeeks += 1;
    await new Promise((r) => setTimeout(r, 1000));
  }
  return {
    kind, starts: STARTS, skewP50: q(skews, 0.5), skewP95: q(skews, 0.95), skewMax: Math.max(...skews),
    vsRoomP50: q(vsRoom, 0.5), vsRoomP95: q(vsRoom, 0.95), seeks, startsWithSeeks,
  };
}

async function main() {
  const media = mediaDir({
    'bench.wav': { seconds: 600, freq: 440 },
    'bench2.wav': { seconds: 600, freq: 550 },
    [`yt-${YT_ID}.wav`]: { seconds: 600, freq: 330 },
    [`yt-${YT_ID_2}.wav`]: { seconds: 600, freq: 660 },
  });
  const server = await startServer('bench-sync', ['--media-dir', media.dir]);
  const browser = await launchBrowser(ENGINE);
  const rows = [];
  const startRows = [];
  try {
    const created = await api(server.url, 'POST', '/api/rooms', { name: 'bench' });
    if (created.status !== 201 && created.status !== 200) throw new Error(`create: ${created.status} ${JSON.stringify(created.body)}`);
    const roomId = created.body.room_id;
    const token = created.body.host_token;
    const query = '?player=youtube';
    const listeners = [];
    for (let i = 0; i < LISTENERS; i += 1) {
      const page = await openPage(browser, { youtubeStandin: true });
      await joinAsListener(page, server.url, roomId, `L${i}`, { query });
      listeners.push(page);
    }
    for (const kind of KINDS) {
      rows.push(await measure(kind, { browser, server, token, roomId, listeners, query, standin: true }));
      if (STARTS > 0) startRows.push(await measureStarts(kind, { server, token, roomId, listeners }));
    }
  } finally {
    await browser.close();
    await server.stop();
    media.remove();
  }
  const f = (v) => (v === null || v === undefined || Number.isNaN(v) ? '—' : v.toFixed(1));
  console.log(`\nsync on real players in ${ENGINE}: ${LISTENERS} listeners, ${SETTLE_S} s settling, ${STEADY_S} s steady, sampled every ${SAMPLE_EVERY_MS} ms\n`);
  console.log('| player | listener vs room p50 / p95 (ms) | listener vs listener p50 / p95 (ms) | seeks per 30 s steady (per listener) | late joiner within 50 ms after (ms) |');
  console.log('| --- | --- | --- | --- | --- |');
  for (const r of rows) {
    if (r.error) { console.log(`| ${r.kind} | ${r.error} | | | |`); continue; }
    const name = r.kind === 'media' ? 'media element (WAV)' : 'YouTube stand-in (coarse rates)';
    console.log(`| ${name} | ${f(r.vsRoomP50)} / ${f(r.vsRoomP95)} | ${f(r.vsEachP50)} / ${f(r.vsEachP95)} | ${r.seeksPer30s.toFixed(2)} (${r.seeks} in all) | ${f(r.lateJoinMs)} |`);
  }
  if (startRows.length === 0) return;
  console.log(`\nscheduled starts in ${ENGINE}: ${LISTENERS} listeners, ${STARTS} loads per player through the ready gate\n`);
  console.log('| player | start skew p50 / p95 / max (ms) | player vs room 400 ms after the start p50 / p95 (ms) | corrective seeks in the first 2 s (starts with any) |');
  console.log('| --- | --- | --- | --- |');
  for (const r of startRows) {
    if (r.error) { console.log(`| ${r.kind} | ${r.error} | | |`); continue; }
    const name = r.kind === 'media' ? 'media element (WAV)' : 'YouTube stand-in (coarse rates)';
    console.log(`| ${name} | ${f(r.skewP50)} / ${f(r.skewP95)} / ${f(r.skewMax)} | ${f(r.vsRoomP50)} / ${f(r.vsRoomP95)} | ${r.seeks} (${r.startsWithSeeks} of ${r.starts}) |`);
  }
}

main().catch((err) => { console.error(err); process.exit(1); });
