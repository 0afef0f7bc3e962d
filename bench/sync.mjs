#!/usr/bin/env node
// Sync on real players, measured (run by hand; not part of scripts/test).
//
// Starts the server (target/debug/syncroom, or SYNCROOM_BIN) with --media-dir on a
// fresh directory of WAV tones, a host page and N listener pages in one headless browser
// (Chromium, or Firefox ESR with --engine firefox; with --engine mixed, the listeners
// alternate between a Chromium and a Firefox, one room), and for each player kind:
//   - media:   a /media/ file played by the page's media element player;
//   - standin: a YouTube item played by the page's real YouTube code on the YT.Player
//              stand-in (coarse rates, seeks that take time, over a real media element);
// measures, after settling, listener vs room and listener vs listener p50/p95 over the
// steady window, the seeks made per 30 s of steady play, and a late joiner's convergence
// time (from its snapshot to within 50 ms of the room; one per engine). Prints one table
// (with --engine mixed, one row per engine and one for the pairs across the engines).
//
// A media element's position is read on the element where it moves (helpers.mjs
// probeElement): not through the page's corrector, whose own reading is what is judged.
//
// Then, for media, `--changes` times a seek and a rate change (alternately), each judged
// `--after` s after it reached every listener, over 2 s: listener vs room, listener vs
// listener, and the seeks made while sampling. Prints a table.
//
// Then, per player kind, `--starts` times: a `load` of another item, which the pages
// report ready (the ready gate) and every player starts at the scheduled `starts_at`
// (the server's defaults: --start-lead-ms 300, gate 80 % / 3 s). Measured: the start
// skew (the largest gap between two players, brought to one instant 400 ms after the
// start), each player against the room then, and the corrective seeks in the first 2 s.
// Prints a second table.
//
//   node bench/sync.mjs [--engine chromium|firefox|mixed] [--listeners 4] [--steady 30] [--settle 3]
//                       [--kinds media,standin] [--starts 8] [--changes 0] [--after 2.5]
//                       [--rates 1.25,1] [--browser-per-listener]
//
// BENCH_VERBOSE=1 prints every start: its skew, each player against the room, and
// each page's start latency (the media element's own measure). BENCH_TRACE=1 prints,
// per change and listener, what its corrector and element did from the change on.
//
// Needs what tests/browser/run.sh installs (Chromium and Firefox ESR, playwright-core and
// puppeteer-core in tests/browser/node_modules) and a built server (cargo build).
import process from 'node:process';

import {
  startServer, launchBrowser, openPage, waitFor, joinAsListener, api, probeElement, Engine,
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
const SEPARATE = process.argv.includes('--browser-per-listener');
const SAMPLE_EVERY_MS = 100;
const LATE_JOIN_WITHIN_S = 0.05; // "converged": within 50 ms of the room ...
const LATE_JOIN_HOLD_MS = 100; // ... and staying there this long
const STARTS = Number(arg('starts', 8));
const CHANGES = Number(arg('changes', 0));
const AFTER_S = Number(arg('after', 2.5));
const CHANGE_SAMPLE_MS = 2000;
/** The engine of listener `i`: alternating when mixed. */
const engineOf = (i) => (ENGINE === 'mixed' ? [Engine.CHROMIUM, Engine.FIREFOX][i % 2] : ENGINE);
const ENGINES_USED = ENGINE === 'mixed' ? [Engine.CHROMIUM, Engine.FIREFOX] : [ENGINE];
const YT_ID = 'benchStandn'; // 11 characters
const YT_ID_2 = 'benchStand2';

const q = (xs, p) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * (s.length - 1)))];
};

const probe = probeElement;

/** Per engine and across engines: listener vs room and listener pair gaps of one sampling. */
class Samples {
  constructor() { this.vsRoom = new Map(); this.vsEach = new Map(); }

  add(probes, engines) {
    const push = (m, k, v) => { if (!m.has(k)) m.set(k, []); m.get(k).push(v); };
    probes.forEach((p, i) => { push(this.vsRoom, engines[i], Math.abs(p.player - p.room)); push(this.vsRoom, 'all', Math.abs(p.player - p.room)); });
    for (let i = 0; i < probes.length; i += 1) {
      for (let j = i + 1; j < probes.length; j += 1) {
        const gap = pairGap(probes[i], probes[j]);
        push(this.vsEach, engines[i] === engines[j] ? engines[i] : 'across', gap);
        push(this.vsEach, 'all', gap);
      }
    }
  }

  /** `{group: {room50, room95, each50, each95}}` in ms: per engine, 'across' (pairs only) and 'all'. */
  summary() {
    const out = {};
    for (const k of new Set([...this.vsRoom.keys(), ...this.vsEach.keys()])) {
      const r = this.vsRoom.get(k) || [];
      const e = this.vsEach.get(k) || [];
      out[k] = { room50: q(r, 0.5) * 1000, room95: q(r, 0.95) * 1000, each50: q(e, 0.5) * 1000, each95: q(e, 0.95) * 1000 };
    }
    return out;
  }
}

function pairGap(a, b) {
  const rate = a.state && !a.state.paused ? a.state.rate : 0;
  return Math.abs(a.player - (b.player - ((b.wall - a.wall) / 1000) * rate));
}

/** A late joiner: ms from its snapshot (connected) until it holds within 50 ms of the room. */
async function lateJoin(browser, base, roomId, query, standin) {
  // Judged by the page's own reading (sampled every 5 ms for 15 s): its 50 ms window is
  // wider than any engine's update period.
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

async function measure(kind, { browsers, server, token, roomId, listeners, query, standin }) {
  const engines = listeners.map((_, i) => engineOf(i));
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
  const samples = new Samples();
  const seeks0 = (await Promise.all(listeners.map(probe))).map((p) => p.seeks);
  const t0 = Date.now();
  while (Date.now() - t0 < STEADY_S * 1000) {
    const probes = [];
    for (const page of listeners) probes.push(await probe(page));
    samples.add(probes, engines);
    await new Promise((r) => setTimeout(r, SAMPLE_EVERY_MS));
  }
  const seconds = (Date.now() - t0) / 1000;
  const seeks1 = (await Promise.all(listeners.map(probe))).map((p) => p.seeks);
  const seeks = seeks1.reduce((s, n, i) => s + n - seeks0[i], 0);
  const late = {};
  for (const e of ENGINES_USED) late[e] = await lateJoin(browsers[e], server.url, roomId, query, standin);
  return {
    kind, summary: samples.summary(), seeksPer30s: (seeks / listeners.length) * (30 / seconds), seeks, late,
  };
}

/**
 * BENCH_TRACE=1: records in each listener page what its corrector did (every check's mode
 * and drift, each seek, burst and rate pair) and what its element said, to print per change.
 */
async function installTrace(page) {
  await page.evaluate(() => {
    const sync = window.syncroom.client.sync;
    const el = document.querySelector('video.media-player');
    const trace = [];
    window.__syncTrace = trace;
    const now = () => performance.timeOrigin + performance.now();
    const r = (v) => (typeof v === 'number' ? Math.round(v * 10000) / 10 : v); // s -> ms, 0.1
    const wrap = (name, describe) => {
      const orig = sync[name].bind(sync);
      sync[name] = (...args) => { trace.push({ at: now(), what: describe(...args) }); return orig(...args); };
    };
    wrap('_seek', (target) => `seek ahead ${r(target - window.syncroom.roomPosition())}`);
    wrap('_startFineBurst', (drift) => `burst for ${r(drift)} (cost ${r(sync._rateCosts.get(sync._roomRate) ?? 0)})`);
    const apply = sync.apply.bind(sync);
    sync.apply = (afterEvent) => {
      const out = apply(afterEvent);
      trace.push({ at: now(), what: `${sync.mode} ${r(sync.lastDrift)}${afterEvent ? ' (event)' : ''}` });
      return out;
    };
    for (const e of ['seeking', 'seeked', 'waiting', 'playing', 'ratechange']) {
      el.addEventListener(e, () => trace.push({ at: now(), what: `el ${e}${e === 'ratechange' ? ` ${el.playbackRate.toFixed(4)}` : ''}` }));
    }
  });
}

/** The trace since `from` (wall ms), cleared: one line per listener. */
async function takeTrace(page, from) {
  const trace = await page.evaluate(() => window.__syncTrace.splice(0));
  return trace.filter((e) => e.at >= from).map((e) => `${((e.at - from) / 1000).toFixed(2)} ${e.what}`).join('; ');
}

/**
 * `CHANGES` seeks and rate changes (alternately) on the playing media item; each judged
 * `AFTER_S` after it reached every listener's player, over CHANGE_SAMPLE_MS.
 */
async function measureChanges({ server, token, roomId, listeners }) {
  const engines = listeners.map((_, i) => engineOf(i));
  const samples = new Samples();
  let seeks = 0;
  const rates = String(arg('rates', '1.25,1')).split(',').map(Number);
  const tracing = Boolean(process.env.BENCH_TRACE);
  if (tracing) for (const page of listeners) await installTrace(page);
  for (let c = 0; c < CHANGES; c += 1) {
    const postedAt = Date.now();
    const body = c % 2 === 0
      ? { type: 'seek', position: 30 + ((c * 37) % 400) }
      : { type: 'rate', rate: rates[((c - 1) / 2) % rates.length] };
    const res = await api(server.url, 'POST', `/api/rooms/${roomId}/commands`, body, token);
    if (res.status !== 200) throw new Error(`${JSON.stringify(body)} refused: ${res.status}`);
    if (process.env.BENCH_VERBOSE) console.log(`${body.type} ${c}: posted at ${new Date(postedAt).toISOString()}`);
    await waitFor(async () => {
      for (const page of listeners) {
        const p = await probe(page);
        const reached = body.type === 'seek' ? Math.abs(p.state?.position - body.position) < 0.01 : p.state?.rate === body.rate;
        if (!reached) return false;
      }
      return true;
    }, { timeout: 10000, what: `${body.type} to reach every listener` });
    await new Promise((r) => setTimeout(r, AFTER_S * 1000));
    const before = (await Promise.all(listeners.map(probe))).map((p) => p.seeks);
    const until = Date.now() + CHANGE_SAMPLE_MS;
    while (Date.now() < until) {
      const probes = [];
      for (const page of listeners) probes.push(await probe(page));
      samples.add(probes, engines);
      if (process.env.BENCH_VERBOSE) console.log(`${body.type} ${c}: ${probes.map((p, i) => `${engines[i]} ${((p.player - p.room) * 1000).toFixed(1)} (own ${((p.own - p.room) * 1000).toFixed(1)}) ${p.mode} seeks ${p.seeks}${p.mode === 'buffering' ? ` ${JSON.stringify(p.element)}` : ''}`).join(' | ')}`);
      await new Promise((r) => setTimeout(r, SAMPLE_EVERY_MS));
    }
    const afterProbes = await Promise.all(listeners.map(probe));
    const after = afterProbes.map((p) => p.seeks);
    seeks += after.reduce((s, n, i) => s + n - before[i], 0);
    if (tracing) {
      for (let i = 0; i < listeners.length; i += 1) console.log(`trace ${body.type} ${c} L${i} (${engines[i]}): ${await takeTrace(listeners[i], postedAt)}`);
    }
    if (process.env.BENCH_VERBOSE) console.log(`${body.type} ${c}: seek retries so far ${afterProbes.map((p) => (p.element ? p.element.seekRetries : '-')).join(', ')}`);
  }
  // Back to rate 1 for what follows.
  await api(server.url, 'POST', `/api/rooms/${roomId}/commands`, { type: 'rate', rate: 1 }, token);
  return { summary: samples.summary(), seeks };
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
  const browsers = {};
  for (const e of ENGINES_USED) browsers[e] = await launchBrowser(e);
  const rows = [];
  const startRows = [];
  let changes = null;
  try {
    const created = await api(server.url, 'POST', '/api/rooms', { name: 'bench' });
    if (created.status !== 201 && created.status !== 200) throw new Error(`create: ${created.status} ${JSON.stringify(created.body)}`);
    const roomId = created.body.room_id;
    const token = created.body.host_token;
    const query = '?player=youtube';
    const listeners = [];
    for (let i = 0; i < LISTENERS; i += 1) {
      // --browser-per-listener: a browser of its own for each listener (no cache or
      // connection shared between the listeners of one engine).
      const own = SEPARATE ? `L${i}` : engineOf(i);
      if (!browsers[own]) browsers[own] = await launchBrowser(engineOf(i));
      const page = await openPage(browsers[own], { youtubeStandin: true });
      await joinAsListener(page, server.url, roomId, `L${i}`, { query });
      listeners.push(page);
    }
    for (const kind of KINDS) {
      rows.push(await measure(kind, { browsers, server, token, roomId, listeners, query, standin: true }));
      if (kind === 'media' && CHANGES > 0) changes = await measureChanges({ server, token, roomId, listeners });
      if (STARTS > 0) startRows.push(await measureStarts(kind, { server, token, roomId, listeners }));
    }
  } finally {
    for (const b of Object.values(browsers)) await b.close();
    await server.stop();
    media.remove();
  }
  const f = (v) => (v === null || v === undefined || Number.isNaN(v) ? '—' : v.toFixed(1));
  const groups = ENGINE === 'mixed' ? [Engine.CHROMIUM, Engine.FIREFOX, 'across'] : ['all'];
  const groupName = (g) => (g === 'all' ? '' : g === 'across' ? ', Chromium vs Firefox pairs' : `, ${g} listeners`);
  console.log(`\nsync on real players in ${ENGINE}: ${LISTENERS} listeners, ${SETTLE_S} s settling, ${STEADY_S} s steady, sampled every ${SAMPLE_EVERY_MS} ms\n`);
  console.log('| player | listener vs room p50 / p95 (ms) | listener vs listener p50 / p95 (ms) | seeks per 30 s steady (per listener) | late joiner within 50 ms after (ms) |');
  console.log('| --- | --- | --- | --- | --- |');
  for (const r of rows) {
    if (r.error) { console.log(`| ${r.kind} | ${r.error} | | | |`); continue; }
    const name = r.kind === 'media' ? 'media element (WAV)' : 'YouTube stand-in (coarse rates)';
    const late = ENGINES_USED.map((e) => (ENGINE === 'mixed' ? `${e} ${f(r.late[e])}` : f(r.late[e]))).join(', ');
    for (const g of groups) {
      const m = r.summary[g] || {};
      console.log(`| ${name}${groupName(g)} | ${g === 'across' ? '—' : `${f(m.room50)} / ${f(m.room95)}`} | ${f(m.each50)} / ${f(m.each95)} | ${r.seeksPer30s.toFixed(2)} (${r.seeks} in all) | ${late} |`);
    }
  }
  if (changes) {
    console.log(`\n${CHANGES} seeks and rate changes on the media element in ${ENGINE}, each judged ${AFTER_S} s after it reached every listener, over ${CHANGE_SAMPLE_MS / 1000} s\n`);
    console.log('| listeners | listener vs room p50 / p95 (ms) | listener vs listener p50 / p95 (ms) | seeks while sampling (all changes) |');
    console.log('| --- | --- | --- | --- |');
    for (const g of groups) {
      const m = changes.summary[g] || {};
      console.log(`| ${g === 'all' ? ENGINE : g === 'across' ? 'Chromium vs Firefox pairs' : g} | ${g === 'across' ? '—' : `${f(m.room50)} / ${f(m.room95)}`} | ${f(m.each50)} / ${f(m.each95)} | ${changes.seeks} |`);
    }
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
