// Shared helpers of the dashboard's browser tests: the environment that
// scripts/test-dashboard sets, a small client of the HTTP API (for setting
// up and checking state), the browser, logging in through the form, and
// bounded polling (every wait has a deadline; nothing sleeps blindly).
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after } from 'node:test';
import { chromium } from 'playwright-core';

function need(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (scripts/test-dashboard sets it)`);
  return value;
}

/** The server's base URL, e.g. http://127.0.0.1:41234 (no trailing slash). */
export const BASE = need('JOBLINE_URL').replace(/\/+$/, '');
/** The dashboard's root, BASE + /dashboard. */
export const DASHBOARD = (process.env.DASHBOARD_URL || `${BASE}/dashboard`).replace(/\/+$/, '');
/** Tenant `default`, every scope (the bootstrap JOBLINE_ADMIN_KEY). */
export const ADMIN_KEY = need('DASHBOARD_ADMIN_KEY');
/** Tenant `default`, scope jobs:read only. */
export const READ_KEY = need('DASHBOARD_READ_KEY');
/** Tenant `acme`, scope admin. */
export const ACME_KEY = need('DASHBOARD_ACME_KEY');
/** The worker's --poll-interval, in seconds. */
export const POLL_INTERVAL = Number(process.env.DASHBOARD_WORKER_POLL_INTERVAL || '0.5');
/** Where the screenshots go. */
export const SHOTS = process.env.DASHBOARD_SCREENSHOTS || '';
/** How long one wait may take, in milliseconds. */
export const TIMEOUT = Number(process.env.DASHBOARD_TIMEOUT_MS || '20000');
/** A short unique tag for what one test file creates. */
export const RUN = Math.random().toString(16).slice(2, 10);

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Calls fn until it returns without throwing (and, unless it returns
 * undefined, a truthy value), every `every` ms, for at most `timeout` ms;
 * then throws its last error, prefixed with `what`.
 */
export async function until(what, fn, { timeout = TIMEOUT, every = 150 } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const value = await fn();
      if (value === undefined || value) return value;
      last = new Error(`got ${JSON.stringify(value)}`);
    } catch (e) {
      last = e;
    }
    if (Date.now() >= deadline) {
      const err = new Error(`${what}: not within ${timeout} ms: ${last && last.message}`);
      err.cause = last;
      throw err;
    }
    await pause(every);
  }
}

// ---------------------------------------------------------------- the API

/** One API call; answers { status, body } (body parsed when JSON). */
export async function api(method, path, { key = ADMIN_KEY, body } = {}) {
  const headers = { authorization: `Bearer ${key}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${BASE}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body: parsed };
}

/** Creates a job through the API (201 expected); answers the job. */
export async function createJob(spec, key = ADMIN_KEY) {
  const { status, body } = await api('POST', '/v1/jobs', { key, body: spec });
  assert.equal(status, 201, `POST /v1/jobs ${JSON.stringify(spec)}: ${status} ${JSON.stringify(body)}`);
  return body;
}

export async function getJob(id, key = ADMIN_KEY) {
  const { status, body } = await api('GET', `/v1/jobs/${id}`, { key });
  assert.equal(status, 200, `GET /v1/jobs/${id}: ${status} ${JSON.stringify(body)}`);
  return body;
}

/** Polls the API until the job has `status`; answers the job. */
export async function waitForStatus(id, status, opts) {
  let seen;
  await until(
    `job ${id} ${status}`,
    async () => {
      seen = await getJob(id);
      assert.equal(seen.status, status, `job ${id} is ${seen.status}`);
    },
    opts,
  );
  return seen;
}

export async function stats() {
  const { status, body } = await api('GET', '/v1/stats');
  assert.equal(status, 200, `GET /v1/stats: ${status}`);
  return body;
}

export async function workers() {
  const { status, body } = await api('GET', '/v1/workers');
  assert.equal(status, 200, `GET /v1/workers: ${status} ${JSON.stringify(body)}`);
  return body.workers;
}

// ------------------------------------------------------------ the browser

const LAUNCH_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

let browserPromise;

/**
 * The file's browser: Debian's Chromium, launched once per test file
 * (Playwright gives each launch a fresh temporary user-data-dir), closed
 * when the file's tests are done.
 */
export function browser() {
  if (!browserPromise) {
    browserPromise = chromium.launch({
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      headless: true,
      args: LAUNCH_ARGS,
      timeout: 60_000,
    });
  }
  return browserPromise;
}

// Registered at import time, so it belongs to the file, not to one test.
after(async () => {
  if (browserPromise) await (await browserPromise).close();
});

/**
 * A fresh browser context (its own cookies) with one page; `dialogs` lists
 * every dialog the page opened ("confirm: message"), each accepted.
 */
export async function openPage({ viewport = { width: 1280, height: 800 } } = {}) {
  const context = await (await browser()).newContext({ viewport, baseURL: BASE });
  context.setDefaultTimeout(TIMEOUT);
  context.setDefaultNavigationTimeout(TIMEOUT);
  const page = await context.newPage();
  const dialogs = [];
  page.on('dialog', async (dialog) => {
    dialogs.push(`${dialog.type()}: ${dialog.message()}`);
    await dialog.accept();
  });
  return { context, page, dialogs };
}

/** Logs in through the form as a person would; ends on /dashboard. */
export async function login(page, key) {
  await page.goto(`${DASHBOARD}/login`);
  await page.locator('input[name=api_key]').fill(key);
  await Promise.all([
    page.waitForURL((url) => url.pathname === '/dashboard'),
    page.locator('[data-testid=login-submit]').click(),
  ]);
}

/** A fresh context and page, logged in with `key`. */
export async function session(key, opts) {
  const s = await openPage(opts);
  await login(s.page, key);
  return s;
}

/** Writes a screenshot of the page to DASHBOARD_SCREENSHOTS/<name>.png. */
export async function shot(page, name) {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `${name}.png`) });
}

/** The trimmed text of the first element matching `selector`. */
export async function text(page, selector) {
  return ((await page.locator(selector).first().textContent()) ?? '').trim();
}

/**
 * Waits until `check(page)` passes on the page as shown, reloading it
 * between looks (the way a person refreshes; the #main region also
 * refreshes itself every 5 s), for at most `timeout` ms.
 */
export async function untilShown(page, what, check, { timeout = TIMEOUT, every = 300 } = {}) {
  let first = true;
  return until(
    what,
    async () => {
      if (!first) await page.reload();
      first = false;
      return check(page);
    },
    { timeout, every },
  );
}

/**
 * Presses a button that POSTs a form, as a person would (dialogs are
 * accepted by openPage), and waits for the answer: the POST's response
 * (its status is returned) and then a new `[data-testid=flash]`, whether
 * the answer came as a full page load or as an htmx swap.
 */
export async function pressAndWaitForFlash(page, button, postPath) {
  await page.evaluate(() =>
    document.querySelectorAll('[data-testid=flash]').forEach((e) => e.setAttribute('data-old-flash', '')),
  );
  const response = page.waitForResponse(
    (r) => r.request().method() === 'POST' && new URL(r.url()).pathname === postPath,
  );
  await button.click();
  const status = (await response).status();
  await page.locator('[data-testid=flash]:not([data-old-flash])').first().waitFor();
  return status;
}

/** The events of a job's timeline on its dashboard page, in page order. */
export async function timelineEvents(page) {
  return page
    .locator('[data-testid=timeline] li[data-event]')
    .evaluateAll((items) => items.map((li) => li.getAttribute('data-event')));
}
