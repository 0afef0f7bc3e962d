#!/usr/bin/env node
// How precisely can a media element start at all? The floor under a room's start skew,
// measured without syncroom: no server of ours, no PlayerSync, no network clock.
//
// A plain HTTP server (in this process) serves generated WAV tones; N pages in one
// headless browser (Chromium, or Firefox ESR with --engine firefox) each hold a <video> element. Per cycle every page loads a fresh
// source, seeks it, and calls play() at one wall-clock instant (a timer to within 20 ms,
// then a spin on the clock, as PlayerSync does). Half a second later each page reads
// where its element is: the instant it really started (its position's shortfall against
// the wall clock, brought back to the call) is printed against the shared target. The
// spread of those instants across the pages is the start skew the element itself makes.
//
// Then, on one page and one load: repeated starts (pause, seek, play), and the period
// that puts every real start instant on one grid; what a rate change pair (up for
// 150 ms, back) costs the element's position beyond what the rate itself explains; and
// what a seek in play costs it (its seek latency).
//
// Every position is read where the element's position moves: an element may hold
// `currentTime` between updates (Firefox ESR updates it every ~40 ms), so a read waits,
// a task at a time, for the next new value and takes the instant it appeared. The
// period of those updates is printed too.
//
//   node bench/element-start.mjs [--engine chromium|firefox] [--pages 3] [--cycles 16] [--rates 8000,48000]
//
// Needs the browsers, playwright-core and puppeteer-core as tests/browser/run.sh installs them.
import http from 'node:http';
import process from 'node:process';

import { launchBrowser } from '../tests/browser/helpers.mjs';
import { toneWav } from '../tests/browser/fixtures/media.mjs';

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}
const PAGES = Number(arg('pages', 3));
const CYCLES = Number(arg('cycles', 16));
const RATES = String(arg('rates', '8000,48000')).split(',').map(Number);
/** play() is called this long before the target: about the element's start latency. */
const LEAD_MS = 100;
const ENGINE = arg('engine', 'chromium');

/**
 * Installed in every page: `window.exactPosition(el)` resolves, at the element's next
 * position update, to `{t, v}`: the instant (page ms) a new `currentTime` appeared and
 * that value (one task apart at most). An element that does not move within 150 ms
 * gives its value at the call. `window.updatePeriod(el)` is the median wall time between
 * updates over 40 of them.
 */
const PAGE_HELPERS = `
window.nextTask = () => new Promise((r) => { const c = new MessageChannel(); c.port1.onmessage = () => r(); c.port2.postMessage(0); });
window.exactPosition = async (el) => {
  const v0 = el.currentTime; const t0 = performance.now();
  for (;;) {
    await window.nextTask();
    const v = el.currentTime; const t = performance.now();
    if (v !== v0) return { t, v };
    if (t - t0 > 150) return { t: t0, v: v0 };
  }
};
window.updatePeriod = async (el) => {
  const at = [];
  let last = await window.exactPosition(el);
  for (let i = 0; i < 40; i += 1) { const p = await window.exactPosition(el); at.push(p.t - last.t); last = p; }
  at.sort((a, b) => a - b);
  return at[at.length >> 1];
};`;

const q = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * (xs.length - 1)))];

function serve(sampleRate) {
  const tone = toneWav({ seconds: 120, freq: 440, sampleRate });
  const server = http.createServer((req, res) => {
    if (req.url.startsWith('/tone.wav')) {
      // Ranges, as a real media server answers them: without them an element cannot seek.
      const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range || '');
      if (range) {
        const start = Number(range[1]);
        const end = range[2] ? Math.min(Number(range[2]), tone.length - 1) : tone.length - 1;
        res.writeHead(206, {
          'content-type': 'audio/wav', 'accept-ranges': 'bytes', 'content-length': end - start + 1,
          'content-range': `bytes ${start}-${end}/${tone.length}`,
        });
        res.end(tone.subarray(start, end + 1));
        return;
      }
      res.writeHead(200, { 'content-type': 'audio/wav', 'content-length': tone.length, 'accept-ranges': 'bytes' });
      res.end(tone);
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(`<!doctype html><body><video id="v" preload="auto"></video><script>${PAGE_HELPERS}</script></body>`);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/** In the page: load a fresh source at `from` s, play() at wall ms `target - LEAD_MS`; the real start instant vs `target`. */
function startAt({ target, from, src, lead }) {
  const el = document.getElementById('v');
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const wall = () => performance.timeOrigin + performance.now();
  return (async () => {
    el.pause();
    el.src = src;
    el.load();
    await new Promise((r) => el.addEventListener('loadedmetadata', r, { once: true }));
    el.currentTime = from;
    await new Promise((r) => el.addEventListener('seeked', r, { once: true }));
    while (wall() < target - lead - 20) await sleep(5);
    while (wall() < target - lead) { /* the last few ms on the clock */ }
    const calledAt = wall();
    const at = el.currentTime;
    el.play();
    await sleep(500);
    const p = await window.exactPosition(el);
    const started = performance.timeOrigin + p.t - (p.v - at) * 1000;
    return { vsTarget: started - target, latency: started - calledAt };
  })();
}

/** In the page, one load: `n` pause/seek/play cycles; each real start instant (page ms), and a rate pair's cost. */
function repeatedStarts({ n }) {
  const el = document.getElementById('v');
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  return (async () => {
    el.src = '/tone.wav?repeat';
    el.load();
    await new Promise((r) => el.addEventListener('loadedmetadata', r, { once: true }));
    const starts = [];
    const costs = [];
    let period = null;
    const seekCosts = [];
    for (let i = 0; i < n; i += 1) {
      el.pause();
      el.playbackRate = 1;
      el.currentTime = 1 + i * 3;
      await new Promise((r) => el.addEventListener('seeked', r, { once: true }));
      await sleep(300 + Math.random() * 100);
      const at = performance.now();
      const from = el.currentTime;
      el.play();
      const shortfall = async () => { const p = await window.exactPosition(el); return p.t - at - (p.v - from) * 1000; };
      await sleep(400);
      if (period === null) period = await window.updatePeriod(el);
      const before = await shortfall();
      starts.push(at + before);
      el.playbackRate = 1.1;
      const upAt = performance.now();
      await sleep(150);
      el.playbackRate = 1;
      const up = performance.now() - upAt;
      await sleep(600);
      // The pair should have gained 10 % of `up`; any more shortfall is the pair's cost.
      costs.push((await shortfall()) - (before - up * 0.1));
      // A seek in play: the position's shortfall against the wall clock since the call.
      const seekAt = performance.now();
      const to = el.currentTime + 1;
      el.currentTime = to;
      await sleep(400);
      const p = await window.exactPosition(el);
      seekCosts.push(p.t - seekAt - (p.v - to) * 1000);
    }
    return { starts, costs, period, seekCosts };
  })();
}

/**
 * The period (4..50 ms, 0.01 ms steps) on whose grid the instants lie most tightly (fit 1:
 * all on it); of periods that fit as well, the largest (every divisor of it fits too).
 */
function grid(instants) {
  const fits = [];
  for (let g = 4; g <= 50; g += 0.01) {
    let x = 0;
    let y = 0;
    for (const s of instants) {
      const a = (2 * Math.PI * (s % g)) / g;
      x += Math.cos(a);
      y += Math.sin(a);
    }
    fits.push({ period: g, fit: Math.hypot(x, y) / instants.length });
  }
  const best = Math.max(...fits.map((f) => f.fit));
  return fits.filter((f) => f.fit >= best - 0.002).pop();
}

async function main() {
  const browser = await launchBrowser(ENGINE);
  const rows = [];
  try {
    for (const rate of RATES) {
      const server = await serve(rate);
      const base = `http://127.0.0.1:${server.address().port}/`;
      const pages = [];
      for (let i = 0; i < PAGES; i += 1) {
        const page = await (await browser.newContext()).newPage();
        await page.goto(base);
        pages.push(page);
      }
      const skews = [];
      const latencies = [];
      for (let c = 0; c < CYCLES; c += 1) {
        const target = Date.now() + 1500;
        const reads = await Promise.all(pages.map((p) => p.evaluate(startAt, { target, from: 1 + c, src: `/tone.wav?${c}`, lead: LEAD_MS })));
        const at = reads.map((r) => r.vsTarget);
        skews.push(Math.max(...at) - Math.min(...at));
        latencies.push(...reads.map((r) => r.latency));
        if (process.env.BENCH_VERBOSE) console.log(`${rate} Hz cycle ${c}: started ${at.map((v) => v.toFixed(1)).join(', ')} ms after the target`);
      }
      const repeated = await pages[0].evaluate(repeatedStarts, { n: 12 });
      const g = grid(repeated.starts);
      rows.push({ rate, skews, latencies, grid: g, costs: repeated.costs, period: repeated.period, seekCosts: repeated.seekCosts });
      server.close();
      for (const p of pages) await p.context().close();
    }
  } finally {
    await browser.close();
  }
  const f = (v) => v.toFixed(1);
  console.log(`\nmedia element starts in ${ENGINE}: ${PAGES} pages calling play() at one instant, ${CYCLES} cycles, a fresh load each\n`);
  console.log('| WAV sample rate | start skew between pages p50 / p95 / max (ms) | start latency min / max (ms) | one load: starts on a grid of (ms) | cost of a rate pair (up 10 % for 150 ms, back) p50 (ms) | seek latency in play p50 / max (ms) | currentTime updated every (ms) |');
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  for (const r of rows) {
    console.log(`| ${r.rate} Hz | ${f(q(r.skews, 0.5))} / ${f(q(r.skews, 0.95))} / ${f(Math.max(...r.skews))} | ${f(Math.min(...r.latencies))} / ${f(Math.max(...r.latencies))} | ${f(r.grid.period)} (fit ${r.grid.fit.toFixed(3)}) | ${f(q(r.costs, 0.5))} | ${f(q(r.seekCosts, 0.5))} / ${f(Math.max(...r.seekCosts))} | ${f(r.period)} |`);
  }
}

main().catch((err) => { console.error(err); process.exit(1); });
