// Stock Firefox ESR for the browser tests: Debian's /usr/bin/firefox-esr driven by
// puppeteer-core over WebDriver BiDi (playwright-core drives only its own patched
// Firefox, which cannot be downloaded here). What it returns looks like the part of
// playwright-core's Browser, BrowserContext, Page and Locator that the tests use, so a
// test body runs unchanged in either engine; anything else throws, by name, rather
// than behaving differently in silence.
//
// Where Firefox is set up to match the Chromium launch in helpers.mjs:
// - every page opens in a window of its own: a background tab's timers are throttled
//   to one a second, and a test's listener pages must all run as the foreground one;
// - `colorScheme` is a launch-time preference in Firefox (WebDriver BiDi cannot emulate
//   it), so the browser holds one Firefox per colour scheme, launched on first use;
// - `viewport` and `deviceScaleFactor` are honoured; `isMobile` and `hasTouch` are not
//   (no mobile layout viewport, no touch events): a phone is its size and pixel ratio.
import fs from 'node:fs';
import puppeteer, { Puppeteer } from 'puppeteer-core';

export const FIREFOX = process.env.FIREFOX_PATH || '/usr/bin/firefox-esr';

/** Firefox's override of prefers-color-scheme for web content. */
const COLOR_SCHEME_PREF = 'layout.css.prefers-color-scheme.content-override';
const COLOR_SCHEME_VALUE = Object.freeze({ dark: 0, light: 1 });

const PREFS = Object.freeze({
  // Every page is a listener that plays as soon as the room does, as in Chromium's
  // headless default, where a page may start media without a click of its own.
  'media.autoplay.default': 0,
  'media.autoplay.blocking_policy': 0,
  // No background throttling (Chromium: --disable-background-timer-throttling).
  'dom.min_background_timeout_value': 4,
  'dom.timeout.enable_budget_timer_throttling': false,
});

/**
 * Roles and accessible names, computed in the page. Firefox's own accessibility
 * locator (WebDriver BiDi browsingContext.locateNodes, behind puppeteer's ::-p-aria)
 * stops answering once a page has rewritten its address (as the page does to drop a
 * host token from it), so this follows the accessible-name rules for the controls the
 * tests name: aria-labelledby, aria-label, a <label>, then a button's text; hidden
 * elements have no role.
 */
const ROLE_QUERY = 'syncroomRole';
const ROLES = new Set(['button', 'textbox', 'combobox', 'checkbox', 'radio', 'heading', 'link']);
Puppeteer.registerCustomQueryHandler(ROLE_QUERY, {
  queryAll: (root, selector) => {
    const { role, name, exact } = JSON.parse(selector);
    const IMPLICIT = {
      button: 'button, input[type=button], input[type=submit], input[type=reset]',
      textbox: 'input:not([type]), input[type=text], input[type=search], input[type=url], input[type=email], input[type=tel], textarea',
      combobox: 'select:not([multiple]):not([size]), select[size="0"], select[size="1"]',
      checkbox: 'input[type=checkbox]',
      radio: 'input[type=radio]',
      heading: 'h1, h2, h3, h4, h5, h6',
      link: 'a[href]',
    };
    const text = (n) => (n.textContent || '').replace(/\s+/g, ' ').trim();
    const accessibleName = (el) => {
      const labelledBy = el.getAttribute('aria-labelledby');
      if (labelledBy) {
        return labelledBy.split(/\s+/).map((id) => el.ownerDocument.getElementById(id)).filter(Boolean).map(text).join(' ');
      }
      const label = el.getAttribute('aria-label');
      if (label && label.trim()) return label.trim();
      if (el.labels && el.labels.length > 0) return [...el.labels].map(text).join(' ');
      if (['button', 'heading', 'link'].includes(role) && el.tagName !== 'INPUT') return text(el);
      return (el.getAttribute('title') || el.getAttribute('placeholder') || el.value || '').trim();
    };
    const shown = (el) => !el.closest('[hidden], [aria-hidden="true"], [inert]') && el.getClientRects().length > 0;
    const candidates = root.querySelectorAll(`[role="${role}"], ${IMPLICIT[role]}`);
    return [...candidates].filter((el) => {
      const explicit = el.getAttribute('role');
      if (explicit && explicit !== role) return false;
      if (!shown(el)) return false;
      if (name === null) return true;
      const actual = accessibleName(el);
      return exact ? actual === name : actual.toLowerCase().includes(name.replace(/\s+/g, ' ').trim().toLowerCase());
    });
  },
});

/** An XPath string literal for `text` (XPath 1.0 has no escapes). */
function xpathLiteral(text) {
  if (!text.includes('"')) return `"${text}"`;
  if (!text.includes("'")) return `'${text}'`;
  return `concat(${text.split('"').map((part) => `"${part}"`).join(', \'"\', ')})`;
}

/** A lazy selector, as playwright's Locator: every call finds the element again. */
class Locator {
  constructor(page, selector) {
    this._page = page;
    this._selector = selector;
  }

  _pp() {
    return this._page._pp.locator(this._selector).setTimeout(this._page._timeout);
  }

  /** Runs `action`; a failure names the selector (puppeteer's own errors do not). */
  async _named(what, action) {
    try {
      return await action();
    } catch (err) {
      throw new Error(`${what} ${this._selector}: ${err.message}`, { cause: err });
    }
  }

  /** The element, once attached (playwright's actionability minus "visible"). */
  _handle() {
    return this._named('waiting for', () => this._pp().setVisibility(null).waitHandle());
  }

  async _read(fn, arg) {
    const handle = await this._handle();
    try {
      return await handle.evaluate(fn, arg);
    } finally {
      await handle.dispose();
    }
  }

  /**
   * Centres the element first: puppeteer scrolls only an element outside the viewport, so
   * one scrolled under the page's sticky header would take the click meant for it.
   */
  async click() {
    await this._read((n) => n.scrollIntoView({ block: 'center', inline: 'nearest' }));
    return this._named('click', () => this._pp().click());
  }

  fill(value) { return this._named('fill', () => this._pp().fill(String(value))); }

  async press(key) {
    const handle = await this._handle();
    try { await handle.press(key); } finally { await handle.dispose(); }
  }

  async _setChecked(checked) {
    if ((await this._read((n) => n.checked)) !== checked) await this.click();
    if ((await this._read((n) => n.checked)) !== checked) throw new Error(`${this._selector} did not become ${checked ? 'checked' : 'unchecked'}`);
  }

  check() { return this._setChecked(true); }

  uncheck() { return this._setChecked(false); }

  async selectOption(value) {
    const handle = await this._handle();
    try { return await handle.select(value); } finally { await handle.dispose(); }
  }

  textContent() { return this._read((n) => n.textContent); }

  inputValue() { return this._read((n) => n.value); }

  isDisabled() { return this._read((n) => n.disabled === true); }

  evaluate(fn, arg) { return this._read(fn, arg); }

  /** Playwright's default waitFor: until the element is visible. */
  async waitFor() {
    await this._named('waiting for a visible', () => this._pp().setVisibility('visible').wait());
  }

  async count() { return (await this._page._pp.$$(this._selector)).length; }

  async allTextContents() {
    return this._page._pp.$$eval(this._selector, (nodes) => nodes.map((n) => n.textContent));
  }

  async isVisible() {
    const handle = await this._page._pp.$(this._selector);
    if (!handle) return false;
    try { return await handle.isVisible(); } finally { await handle.dispose(); }
  }
}

/** The request playwright hands a route handler; answered through puppeteer's interception. */
class Route {
  constructor(request) { this._request = request; }

  request() { return this._request; }

  fulfill({ status = 200, contentType, body = '' }) {
    return this._request.respond({ status, contentType, body });
  }

  abort() { return this._request.abort(); }

  continue() { return this._request.continue(); }
}

/** Page events the tests listen to; puppeteer's objects have the same methods for them. */
const FORWARDED_EVENTS = new Set(['pageerror', 'console', 'request', 'response', 'dialog']);

class Page {
  constructor(context, pp) {
    this._context = context;
    this._pp = pp;
    this._timeout = 30000;
  }

  context() { return this._context; }

  url() { return this._pp.url(); }

  setDefaultTimeout(ms) {
    this._timeout = ms;
    this._pp.setDefaultTimeout(ms);
  }

  goto(url) { return this._pp.goto(url, { waitUntil: 'load' }); }

  evaluate(fn, arg) { return this._pp.evaluate(fn, arg); }

  locator(selector) { return new Locator(this, selector); }

  /**
   * By role and accessible name (see ROLE_QUERY). As in playwright, the name is a
   * case-insensitive part of the accessible name unless `exact`.
   */
  getByRole(role, { name, exact = false } = {}) {
    if (!ROLES.has(role)) throw new Error(`the Firefox driver finds no role "${role}" (only ${[...ROLES].join(', ')})`);
    return new Locator(this, `::-p-${ROLE_QUERY}(${JSON.stringify({ role, name: name ?? null, exact })})`);
  }

  /** The element whose own text is exactly `text` (the tests ask for exact matches only). */
  getByText(text, { exact = false } = {}) {
    if (!exact) throw new Error('the Firefox driver matches text exactly: pass { exact: true }');
    return new Locator(this, `::-p-xpath(//*[text()[normalize-space(.)=${xpathLiteral(text)}]])`);
  }

  on(event, fn) {
    if (!FORWARDED_EVENTS.has(event)) throw new Error(`the Firefox driver does not forward page event "${event}"`);
    this._pp.on(event, fn);
    return this;
  }

  once(event, fn) {
    if (!FORWARDED_EVENTS.has(event)) throw new Error(`the Firefox driver does not forward page event "${event}"`);
    this._pp.once(event, fn);
    return this;
  }

  screenshot({ path, fullPage = false } = {}) { return this._pp.screenshot({ path, fullPage }); }

  route() { throw new Error('the Firefox driver routes requests per context: use context().route'); }

  emulateMedia() { throw new Error('Firefox cannot change its colour scheme at run time: pass colorScheme to newContext'); }

  close() { return this._pp.close(); }
}

/** Whether `page` is one of this driver's (for file names that say which engine made them). */
export const isFirefoxPage = (page) => page instanceof Page;

class BrowserContext {
  constructor(ppContext, options) {
    this._pp = ppContext;
    this._options = options;
    this._routes = [];
    this._initScripts = [];
  }

  /** Like playwright's: the first matching route handles the request; the rest go through. */
  async route(pattern, handler) {
    if (!(pattern instanceof RegExp)) throw new Error('the Firefox driver routes by RegExp only');
    this._routes.push({ pattern, handler });
  }

  async addInitScript(fn, arg) {
    this._initScripts.push([fn, arg]);
  }

  async newPage() {
    const { viewport, deviceScaleFactor = 1 } = this._options;
    const pp = await this._pp.newPage({ type: 'window' });
    if (viewport) await pp.setViewport({ ...viewport, deviceScaleFactor });
    for (const [fn, arg] of this._initScripts) await pp.evaluateOnNewDocument(fn, arg);
    // Routes are read when a request comes, so one added after newPage still applies.
    await pp.setRequestInterception(true);
    pp.on('request', (request) => {
      if (request.isInterceptResolutionHandled()) return undefined;
      const route = this._routes.find(({ pattern }) => pattern.test(request.url()));
      if (!route) return request.continue();
      return Promise.resolve(route.handler(new Route(request))).catch((err) => {
        // The page sees the request fail; the test sees why in its log.
        console.error(`firefox route for ${request.url()}: ${err}`);
      });
    });
    return new Page(this, pp);
  }

  close() { return this._pp.close(); }
}

class Browser {
  constructor() {
    /** colorScheme -> Promise<puppeteer Browser> */
    this._byScheme = new Map();
  }

  _forScheme(colorScheme) {
    if (!(colorScheme in COLOR_SCHEME_VALUE)) throw new Error(`unknown colorScheme ${colorScheme}`);
    if (!this._byScheme.has(colorScheme)) {
      this._byScheme.set(colorScheme, puppeteer.launch({
        browser: 'firefox',
        protocol: 'webDriverBiDi',
        executablePath: FIREFOX,
        headless: true,
        // puppeteer gives each launch a fresh temporary profile.
        extraPrefsFirefox: { ...PREFS, [COLOR_SCHEME_PREF]: COLOR_SCHEME_VALUE[colorScheme] },
      }));
    }
    return this._byScheme.get(colorScheme);
  }

  async newContext({
    viewport = null, deviceScaleFactor = 1, colorScheme = 'dark', ignoreHTTPSErrors = false,
  } = {}) {
    if (ignoreHTTPSErrors) throw new Error('the Firefox driver does not take ignoreHTTPSErrors');
    const browser = await this._forScheme(colorScheme);
    return new BrowserContext(await browser.createBrowserContext(), { viewport, deviceScaleFactor });
  }

  async close() {
    const launched = [...this._byScheme.values()];
    this._byScheme.clear();
    await Promise.all(launched.map(async (p) => (await p).close()));
  }
}

/** Launches Debian's Firefox ESR headless (the dark-scheme instance at once, so a failure shows here). */
export async function launchFirefox() {
  if (!fs.existsSync(FIREFOX)) {
    throw new Error(`${FIREFOX} is missing: install Debian's firefox-esr (tests/browser/run.sh does)`);
  }
  const browser = new Browser();
  await browser._forScheme('dark');
  return browser;
}
