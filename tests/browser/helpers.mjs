// Shared helpers of the browser tests: start the real server binary on a free
// port, launch a browser engine (Debian's Chromium through playwright-core, Debian's
// Firefox ESR through ./firefox.mjs), open isolated pages, poll with generous
// timeouts, keep screenshots under <target dir>/browser-artifacts/.
//
// A test body is written once against playwright-core's API; firefox.mjs gives the
// part of it the tests use over WebDriver BiDi, so the same body runs per engine.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

import { FIREFOX, isFirefoxPage, launchFirefox } from './firefox.mjs';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * Cargo's target directory, found the way cargo finds it: `SYNCROOM_TARGET_DIR`
 * (set by run.sh from scripts/target-dir), else `cargo metadata` (which honours
 * CARGO_TARGET_DIR and .cargo/config.toml), else CARGO_TARGET_DIR or ./target.
 */
export function targetDir(env = process.env) {
  if (env.SYNCROOM_TARGET_DIR) return path.resolve(ROOT, env.SYNCROOM_TARGET_DIR);
  try {
    const out = execFileSync('cargo', ['metadata', '--format-version', '1', '--no-deps', '--offline'], {
      cwd: ROOT, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 16 << 20,
    });
    const dir = JSON.parse(out).target_directory;
    if (typeof dir === 'string' && dir) return dir;
  } catch { /* no cargo: cargo's own default rule below */ }
  return path.resolve(ROOT, env.CARGO_TARGET_DIR || 'target');
}

export const TARGET_DIR = targetDir();
export const ARTIFACTS = path.join(TARGET_DIR, 'browser-artifacts');
export const SERVER_BIN = process.env.SYNCROOM_BIN || path.join(TARGET_DIR, 'debug', 'syncroom');
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

fs.mkdirSync(ARTIFACTS, { recursive: true });

/** A port that was free a moment ago: bind 0, read it, close. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Polls `fn` until it returns a truthy value; throws with `what` after `timeout` ms. */
export async function waitFor(fn, { timeout = 15000, interval = 50, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}

/** `GET url` over HTTPS without judging the certificate: only whether it answers 200. */
function httpsAnswers(url) {
  return new Promise((resolve) => {
    const req = https.get(url, { rejectUnauthorized: false }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
  });
}

/**
 * Starts `<target dir>/debug/syncroom` on a free port with `args`; resolves once
 * `/healthz` answers. Its log goes to <target dir>/browser-artifacts/server-<name>.log.
 * With `tls: { cert, key }` (PEM paths) it serves HTTPS and `url` is `https://…`.
 */
export async function startServer(name, args = [], { port: fixedPort = null, tls = null } = {}) {
  if (!fs.existsSync(SERVER_BIN)) {
    throw new Error(`server binary missing: ${SERVER_BIN} (run cargo build)`);
  }
  for (let attempt = 0; attempt < 3; attempt += 1) {
    const port = fixedPort ?? await freePort();
    const logPath = path.join(ARTIFACTS, `server-${name}.log`);
    const log = fs.openSync(logPath, 'w');
    const tlsArgs = tls ? ['--tls-cert', tls.cert, '--tls-key', tls.key] : [];
    const proc = spawn(SERVER_BIN, ['--listen', `127.0.0.1:${port}`, ...tlsArgs, ...args], {
      stdio: ['ignore', log, log],
      env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info' },
    });
    let exited = null;
    proc.on('exit', (code, signal) => { exited = { code, signal }; });
    const url = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
    try {
      await waitFor(async () => {
        if (exited) throw new Error(`server exited early: ${JSON.stringify(exited)}; see ${logPath}`);
        if (tls) return httpsAnswers(`${url}/healthz`);
        const res = await fetch(`${url}/healthz`).catch(() => null);
        return res && res.ok;
      }, { timeout: 20000, interval: 100, what: `server on ${url}` });
    } catch (err) {
      proc.kill('SIGKILL');
      fs.closeSync(log);
      // Somebody took the port between our probe and the bind: try another.
      if (exited && attempt < 2 && !fixedPort && /address|in use/i.test(fs.readFileSync(logPath, 'utf8'))) continue;
      throw err;
    }
    return {
      url,
      port,
      proc,
      logPath,
      async stop() {
        if (this.stopped) return;
        this.stopped = true;
        if (exited) { fs.closeSync(log); return; }
        const done = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
        await done;
        clearTimeout(timer);
        fs.closeSync(log);
      },
    };
  }
  throw new Error('could not start the server');
}

/** The browser engines the page is tested in; each is the distribution's own build. */
export const Engine = Object.freeze({ CHROMIUM: 'chromium', FIREFOX: 'firefox' });
export const ENGINES = Object.freeze(Object.values(Engine));
export { FIREFOX };

/**
 * Launches `engine` headless with a fresh profile (never downloads a browser). A
 * missing browser throws: a run without one of the engines fails, it never skips.
 */
export async function launchBrowser(engine = Engine.CHROMIUM) {
  if (engine === Engine.FIREFOX) return launchFirefox();
  if (engine !== Engine.CHROMIUM) throw new Error(`unknown browser engine ${engine}`);
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: install Debian's chromium (tests/browser/run.sh does)`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // playwright gives each launch a fresh temporary user-data-dir.
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      // Pages of one test share one browser: none of them may be throttled as "hidden".
      '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
      '--disable-backgrounding-occluded-windows',
    ],
  });
}

/** The YT.Player stand-in (tests/browser/fixtures/youtube-standin.js), served as YouTube's iframe_api. */
export const YOUTUBE_IFRAME_API = 'https://www.youtube.com/iframe_api';
const STANDIN_SOURCE = fs.readFileSync(path.join(ROOT, 'tests', 'browser', 'fixtures', 'youtube-standin.js'), 'utf8');

/**
 * Opens a page in its own browser context (its own localStorage: a listener must
 * not see the host's token). Records page errors and requests to other origins.
 * YouTube is blocked: tests are offline and deterministic. With `youtubeStandin`
 * the page's request for YouTube's iframe_api is answered, inside the browser, with
 * the stand-in (tuned by `youtubeStandin` if it is an object: window.__ytStandin);
 * everything else of YouTube's stays blocked.
 */
export async function openPage(browser, {
  viewport = { width: 1280, height: 860 }, mobile = false, allowYouTube = false, ignoreHTTPSErrors = false,
  youtubeStandin = null,
} = {}) {
  const context = await browser.newContext({
    // For a server on a certificate made by the test, which no browser trusts.
    ignoreHTTPSErrors,
    viewport,
    deviceScaleFactor: mobile ? 2 : 1,
    isMobile: mobile,
    hasTouch: mobile,
    colorScheme: 'dark',
  });
  if (youtubeStandin) {
    if (typeof youtubeStandin === 'object') {
      await context.addInitScript((opts) => { window.__ytStandin = opts; }, youtubeStandin);
    }
  }
  if (!allowYouTube) {
    await context.route(/youtube\.com|ytimg\.com|googlevideo\.com/, (route) => {
      // One handler decides, so the order routes were added in does not matter.
      if (youtubeStandin && route.request().url() === YOUTUBE_IFRAME_API) {
        return route.fulfill({ status: 200, contentType: 'text/javascript; charset=utf-8', body: STANDIN_SOURCE });
      }
      return route.abort();
    });
  }
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  page.errors = [];
  page.foreignRequests = [];
  page.on('pageerror', (err) => page.errors.push(String(err && err.stack ? err.stack : err)));
  page.on('console', (msg) => { if (msg.type() === 'error' && !isArtMiss(msg)) page.errors.push(`console: ${msg.text()}`); });
  page.on('request', (req) => {
    const u = new URL(req.url());
    if (!['127.0.0.1', 'localhost'].includes(u.hostname) && u.protocol !== 'data:'
      && !(youtubeStandin && req.url() === YOUTUBE_IFRAME_API)) page.foreignRequests.push(req.url());
  });
  return page;
}

/**
 * A media file without cover art answers `GET /api/media/art/…` with 404, as documented:
 * the now-playing card then shows none. The browser logs it as a failed load; it is no error.
 */
export function isArtMiss(msg) {
  const where = (typeof msg.location === 'function' && msg.location()?.url) || '';
  return /\/api\/media\/art\//.test(where) && /404/.test(msg.text());
}

/** Saves a full-page screenshot under <target dir>/browser-artifacts/ (`<name>.firefox.png` from Firefox). */
export async function screenshot(page, name) {
  const file = path.join(ARTIFACTS, `${name}${isFirefoxPage(page) ? '.firefox' : ''}.png`);
  // A sticky header would otherwise be drawn where the page happens to be scrolled.
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** Reads a page's live client in one evaluation (one instant of its clock). */
export function probe(page) {
  return page.evaluate(() => {
    const s = window.syncroom;
    if (!s || !s.client) return null;
    return {
      at: performance.timeOrigin + performance.now(),
      player: s.playerPosition(),
      room: s.roomPosition(),
      offset: s.clockOffset(),
      connected: s.connected,
      state: s.state(),
      version: s.version(),
      kind: s.playerKind,
      health: s.health(),
    };
  });
}

/**
 * Like {@link probe}, but a media player's position is read on its element where it
 * moves, not through the page's corrector: an engine may hold `currentTime` between
 * updates (Firefox ESR: every 40 ms), so the read waits, one task at a time (at most
 * 100 ms), for the next new value, and takes it, the wall clock and the room's position
 * at that instant. An engine that moves its value on every read (Chromium) answers on
 * the first task. Paused, seeking or on another player: the page's own reading.
 * Also: `own`, the page's own reading then, `seeks` and `mode` of the corrector, and the
 * media element's readiness (`element`).
 */
export function probeElement(page) {
  return page.evaluate(async () => {
    const s = window.syncroom;
    const el = s.playerKind === 'media' ? document.querySelector('video.media-player') : null;
    const nextTask = () => new Promise((r) => {
      const c = new MessageChannel();
      c.port1.onmessage = () => r();
      c.port2.postMessage(0);
    });
    let player = s.playerPosition();
    let room = s.roomPosition();
    let own = player;
    let t = performance.now();
    if (el && !el.paused && !el.seeking) {
      const v0 = el.currentTime;
      for (;;) {
        await nextTask();
        const v = el.currentTime;
        if (v !== v0 || performance.now() - t > 100) {
          player = v;
          room = s.roomPosition();
          own = s.playerPosition();
          t = performance.now();
          break;
        }
      }
    }
    const h = s.health();
    return {
      wall: performance.timeOrigin + t, player, room, own, state: s.state(), kind: s.playerKind,
      health: h, seeks: h.seeks, mode: h.mode,
      element: el ? {
        readyState: el.readyState, paused: el.paused, seeking: el.seeking, networkState: el.networkState,
        bufferedTo: el.buffered.length ? el.buffered.end(el.buffered.length - 1) : null, currentTime: el.currentTime,
        seekRetries: s.client.sync && s.client.sync.player.stats ? s.client.sync.player.stats.seekRetries : null,
      } : null,
    };
  });
}

/** Sends a JSON request to the server; resolves to `{status, body}`. */
export async function api(base, method, route, body, token) {
  const headers = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(`${base}${route}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = text; }
  return { status: res.status, body: json, headers: res.headers };
}

/** Joins a room page as a listener: fill the name, click "Join & watch", wait for the live stream. */
export async function joinAsListener(page, base, roomId, name, { query = '?player=sim' } = {}) {
  await page.goto(`${base}/r/${roomId}${query}`);
  await page.getByRole('textbox', { name: 'Your name' }).fill(name);
  await page.getByRole('button', { name: 'Join & watch' }).click();
  await waitFor(() => page.evaluate(() => Boolean(window.syncroom && window.syncroom.connected && window.syncroom.playerKind)),
    { timeout: 20000, what: `${name} to connect` });
}

export const fmtMs = (seconds) => `${(seconds * 1000).toFixed(1)} ms`;
