#!/usr/bin/env node
// A late joiner, traced (run by hand; not part of scripts/test).
//
// Starts the server (target/debug/syncroom, or SYNCROOM_BIN) with --media-dir on a WAV
// tone, a room playing it (`--kind media`: a media item, played by the media element
// player; `--kind standin`: a YouTube item, played by the page's YouTube code on the
// YT.Player stand-in of tests/browser/fixtures), then `--joins` late joiners one after
// another. Each is
// timed like bench/sync.mjs's late joiner (from its snapshot until it holds within 50 ms
// of the room for 100 ms) and, with --trace, its first 3 s are printed: every 20 ms the
// corrector's mode, the drift (player - room), the seeks made and the element's rate.
//
// The pages run in headless Chromium, or in Firefox ESR with --engine firefox.
//
//   node bench/late-join.mjs [--engine chromium|firefox] [--kind media|standin] [--joins 6] [--trace]
import process from 'node:process';

import { startServer, launchBrowser, openPage, api } from '../tests/browser/helpers.mjs';
import { mediaDir } from '../tests/browser/fixtures/media.mjs';

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}
const JOINS = Number(arg('joins', 6));
const TRACE = process.argv.includes('--trace');
const KIND = arg('kind', 'media');
const YT_ID = 'lateStandin'; // 11 characters: the stand-in plays /media/yt-lateStandin.wav
const STANDIN = KIND === 'standin';
const ENGINE = arg('engine', 'chromium');

const media = mediaDir({ 'late.wav': { seconds: 600, freq: 440 }, [`yt-${YT_ID}.wav`]: { seconds: 600, freq: 330 } });
const server = await startServer('late-join', ['--media-dir', media.dir]);
const browser = await launchBrowser(ENGINE);
try {
  const created = await api(server.url, 'POST', '/api/rooms', { name: 'late joiners' });
  if (created.status !== 201) throw new Error(`create: ${created.status}`);
  const { room_id: roomId, host_token: token } = created.body;
  const item = STANDIN ? { video_id: YT_ID } : { media_url: '/media/late.wav' };
  const res = await api(server.url, 'POST', `/api/rooms/${roomId}/commands`, { type: 'load', ...item, duration: 600 }, token);
  if (res.status !== 200) throw new Error(`load refused: ${res.status}`);
  await new Promise((r) => setTimeout(r, 3000));
  const times = [];
  for (let j = 0; j < JOINS; j += 1) {
    const page = await openPage(browser, { youtubeStandin: STANDIN });
    await page.goto(`${server.url}/r/${roomId}${STANDIN ? '?player=youtube' : ''}`);
    await page.getByRole('textbox', { name: 'Your name' }).fill(`Late ${j}`);
    await page.getByRole('button', { name: 'Join & watch' }).click();
    const out = await page.evaluate(async () => {
      const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
      while (!(window.syncroom && window.syncroom.connected)) await sleep(2);
      const t0 = performance.now();
      const trace = [];
      let since = null;
      let converged = null;
      while (performance.now() - t0 < 4000) {
        const s = window.syncroom;
        const c = s.client.sync;
        const d = s.playerPosition() - s.roomPosition();
        const at = performance.now() - t0;
        if (c && Math.abs(d) <= 0.05) {
          if (since === null) since = at;
          if (converged === null && at - since >= 100) converged = since;
        } else {
          since = null;
        }
        const el = document.querySelector('video');
        trace.push([Math.round(at), c ? c.mode : '-', Math.round(d * 1000), c ? c.seeks : 0,
          el ? el.playbackRate.toFixed(3) : '-', el ? el.readyState : '-',
          c && c.player.getSeekLatency ? c.player.getSeekLatency() : null,
          c && c.player.getStartLatency ? c.player.getStartLatency() : null]);
        await sleep(20);
      }
      return { converged, trace };
    });
    times.push(out.converged);
    console.log(`late joiner ${j}: within 50 ms after ${out.converged === null ? 'never (4 s)' : `${Math.round(out.converged)} ms`}`);
    if (TRACE) {
      let last = '';
      for (const [at, mode, drift, seeks, rate, rs, sl, stl] of out.trace) {
        const line = `${mode} seeks=${seeks} rate=${rate} rs=${rs} seekLat=${sl === null ? '-' : sl.toFixed(3)} startLat=${stl === null ? '-' : stl.toFixed(3)}`;
        if (line !== last || at < 1500) console.log(`  ${String(at).padStart(5)} ms  drift ${String(drift).padStart(6)} ms  ${line}`);
        last = line;
      }
    }
    await page.context().close();
  }
  const got = times.filter((t) => t !== null).sort((a, b) => a - b);
  console.log(`converged ${got.length} of ${times.length}; median ${got.length ? Math.round(got[got.length >> 1]) : '-'} ms, max ${got.length ? Math.round(got[got.length - 1]) : '-'} ms`);
} finally {
  await browser.close();
  await server.stop();
  media.remove();
}
