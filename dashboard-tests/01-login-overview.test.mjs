// Logging in through the form, the session cookie, and the overview's
// counts against what was created through the API. Runs first (the script
// runs the files in name order, one at a time), on a fresh database.
import assert from 'node:assert/strict';
import test from 'node:test';
import {
  ADMIN_KEY,
  DASHBOARD,
  RUN,
  api,
  createJob,
  getJob,
  login,
  openPage,
  session,
  shot,
  stats,
  text,
  untilShown,
  waitForStatus,
} from './lib.mjs';

test('an unauthenticated page load redirects to the login form; a wrong key is refused with 401', async () => {
  const { context, page } = await openPage();
  try {
    const res = await page.goto(`${DASHBOARD}/jobs`);
    assert.equal(new URL(page.url()).pathname, '/dashboard/login', `landed on ${page.url()}`);
    // The redirect itself is a 303.
    const redirect = res.request().redirectedFrom();
    assert.ok(redirect, 'GET /dashboard/jobs was not redirected');
    assert.equal((await redirect.response()).status(), 303);

    const form = page.locator('form[action="/dashboard/login"]');
    assert.equal((await form.getAttribute('method'))?.toLowerCase(), 'post');
    assert.equal(await page.locator('input[name=api_key]').getAttribute('type'), 'password');
    await shot(page, 'login');

    const cookiesBefore = await context.cookies();
    await page.locator('input[name=api_key]').fill(`wrong-${ADMIN_KEY}`);
    const answer = page.waitForResponse(
      (r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/dashboard/login',
    );
    await page.locator('[data-testid=login-submit]').click();
    assert.equal((await answer).status(), 401);
    await page.locator('[data-testid=login-error]').waitFor();
    assert.equal(new URL(page.url()).pathname, '/dashboard/login');
    assert.equal(await page.locator('input[name=api_key]').count(), 1, 'the form is shown again');
    assert.deepEqual(await context.cookies(), cookiesBefore, 'a refused login set a cookie');
  } finally {
    await context.close();
  }
});

test('log in with the admin key: the session cookie is HttpOnly, Secure, SameSite=Strict and not the key', async () => {
  const { context, page } = await openPage();
  try {
    await login(page, ADMIN_KEY);
    assert.equal(new URL(page.url()).pathname, '/dashboard');
    const cookies = await context.cookies();
    assert.ok(cookies.length > 0, 'no cookie after logging in');
    for (const c of cookies) {
      assert.equal(c.httpOnly, true, `cookie ${c.name} is not HttpOnly`);
      assert.equal(c.secure, true, `cookie ${c.name} is not Secure`);
      assert.equal(c.sameSite, 'Strict', `cookie ${c.name} is SameSite=${c.sameSite}`);
      assert.ok(!c.value.includes(ADMIN_KEY), `cookie ${c.name} carries the API key`);
      assert.ok(!decodeURIComponent(c.value).includes(ADMIN_KEY), `cookie ${c.name} carries the API key (encoded)`);
      assert.ok(
        !Buffer.from(c.value, 'base64').toString('latin1').includes(ADMIN_KEY),
        `cookie ${c.name} carries the API key (base64)`,
      );
    }
    // Scripts on the page cannot read it.
    assert.equal(await page.evaluate(() => document.cookie), '', 'document.cookie sees the session cookie');
    // Every nav link of the operators' tenant is there.
    for (const nav of ['overview', 'jobs', 'running', 'dead-letter', 'workers']) {
      assert.equal(await page.locator(`[data-testid=nav-${nav}]`).count(), 1, `nav-${nav} missing`);
    }
    assert.equal(await page.locator('[data-testid=logout]').count(), 1, 'logout form missing');
  } finally {
    await context.close();
  }
});

test('the overview shows the counts of what was created through the API', async () => {
  const jobs = [];
  for (let n = 1; n <= 3; n++) {
    jobs.push(await createJob({ type: 'noop', payload: { n }, correlation_id: `overview-${RUN}` }));
  }
  for (const job of jobs) await waitForStatus(job.id, 'completed');

  const { context, page } = await session(ADMIN_KEY);
  try {
    // The database was fresh: exactly the three noop jobs exist.
    await untilShown(page, 'count-completed 3', async (p) => {
      assert.equal(await text(p, '[data-testid=count-completed]'), '3');
    });
    const want = (await stats()).by_status;
    for (const status of ['pending', 'processing', 'completed', 'failed', 'cancelled']) {
      assert.equal(
        await text(page, `[data-testid=count-${status}]`),
        String(want[status] ?? 0),
        `count-${status} differs from /v1/stats`,
      );
    }
    assert.equal(await text(page, '[data-testid=count-completed]'), '3');
    assert.equal(await text(page, '[data-testid=count-failed]'), '0');
    assert.match(await text(page, '[data-testid=health]'), /healthy/i);
    assert.equal(await text(page, '[data-testid=dead-letter-size]'), '0');
    await page.locator('[data-testid=oldest-pending]').waitFor();
    for (const chart of ['completions', 'failures', 'depth']) {
      for (const span of ['hour', 'day']) {
        const svg = page.locator(`svg[data-testid=chart-${chart}-${span}]`);
        assert.equal(await svg.count(), 1, `chart-${chart}-${span} missing`);
      }
    }
    // The refreshed region is there.
    assert.equal(await page.locator('#main').count(), 1, '#main missing');
    await shot(page, 'overview');

    // The same page on a phone.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.reload();
    await page.locator('[data-testid=count-completed]').waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    await shot(page, 'overview-phone');
    assert.ok(overflow <= 0, `the overview is ${overflow}px wider than a 390px phone screen`);
  } finally {
    await context.close();
  }
});

test('the overview refreshes itself (#main polls): a job completed meanwhile shows without a reload', async () => {
  const { context, page } = await session(ADMIN_KEY);
  try {
    const before = Number(await text(page, '[data-testid=count-completed]'));
    assert.ok(Number.isInteger(before), `count-completed is not a number: ${before}`);
    // Mark the document: a reload would lose the mark.
    await page.evaluate(() => {
      window.__notReloaded = true;
    });
    const job = await createJob({ type: 'noop', payload: { refresh: RUN } });
    await waitForStatus(job.id, 'completed');
    // htmx polls every 5 s: two rounds and some slack.
    await page.waitForFunction(
      (want) => document.querySelector('#main [data-testid=count-completed]')?.textContent.trim() === String(want),
      before + 1,
      { timeout: 15_000, polling: 250 },
    );
    assert.equal(await page.evaluate(() => window.__notReloaded), true, 'the page was reloaded, not refreshed in place');
  } finally {
    await context.close();
  }
});

test('without a session every page is a 303 to the login page, and an action POST changes nothing', async () => {
  const job = await createJob({ type: `unserved.${RUN}`, payload: {} });
  try {
    for (const path of ['', '/jobs', `/jobs/${job.id}`, '/running', '/dead-letter', '/workers']) {
      const res = await fetch(`${DASHBOARD}${path}`, { redirect: 'manual' });
      assert.equal(res.status, 303, `GET /dashboard${path}: ${res.status}`);
      assert.equal(new URL(res.headers.get('location'), DASHBOARD).pathname, '/dashboard/login', `GET /dashboard${path}`);
    }
    for (const action of ['cancel', 'retry']) {
      const res = await fetch(`${DASHBOARD}/jobs/${job.id}/${action}`, {
        method: 'POST',
        body: new URLSearchParams({ csrf: 'x' }),
        redirect: 'manual',
      });
      assert.ok([303, 401, 403].includes(res.status), `POST ${action} without a session: ${res.status}`);
      if (res.status === 303) {
        assert.equal(new URL(res.headers.get('location'), DASHBOARD).pathname, '/dashboard/login');
      }
    }
    assert.equal((await getJob(job.id)).status, 'pending', 'a POST without a session changed the job');
    // A made-up session cookie (the real one's name, another value) is no
    // session either.
    const login = await fetch(`${DASHBOARD}/login`, {
      method: 'POST',
      body: new URLSearchParams({ api_key: ADMIN_KEY }),
      redirect: 'manual',
    });
    assert.equal(login.status, 303, `POST /dashboard/login: ${login.status}`);
    const [name, value] = (login.headers.get('set-cookie') || '').split(';')[0].split('=');
    assert.ok(name && value, `no session cookie: ${login.headers.get('set-cookie')}`);
    let made = [...value].map((c) => (/[0-9]/.test(c) ? String((Number(c) + 1) % 10) : c)).join('');
    if (made === value) made = `${value.slice(0, -1)}${value.endsWith('x') ? 'y' : 'x'}`;
    for (const cookie of [`${name}=${made}`, `${name}=`, `${name}=${'a'.repeat(64)}`]) {
      const forged = await fetch(DASHBOARD, { redirect: 'manual', headers: { cookie } });
      assert.equal(forged.status, 303, `a made-up session cookie (${cookie}) opened the dashboard`);
    }
    const real = await fetch(DASHBOARD, { redirect: 'manual', headers: { cookie: `${name}=${value}` } });
    assert.equal(real.status, 200, 'the real cookie did not open the dashboard (the control)');
  } finally {
    await api('POST', `/v1/jobs/${job.id}/cancel`);
  }
});

test('dashboard answers refuse framing and sniffing (login page, a page, a 404)', async () => {
  const login = await fetch(`${DASHBOARD}/login`, {
    method: 'POST',
    body: new URLSearchParams({ api_key: ADMIN_KEY }),
    redirect: 'manual',
  });
  const cookie = (login.headers.get('set-cookie') || '').split(';')[0];
  for (const [what, path, headers] of [
    ['the login page', '/login', {}],
    ['the overview', '', { cookie }],
    ['the 404 page', '/jobs/00000000-0000-4000-8000-000000000000', { cookie }],
  ]) {
    const res = await fetch(`${DASHBOARD}${path}`, { redirect: 'manual', headers });
    const xfo = (res.headers.get('x-frame-options') || '').toUpperCase();
    const csp = res.headers.get('content-security-policy') || '';
    assert.ok(
      ['DENY', 'SAMEORIGIN'].includes(xfo) || /frame-ancestors\s+('none'|'self')/.test(csp),
      `${what} may be framed (X-Frame-Options ${xfo || 'absent'}, CSP ${csp || 'absent'})`,
    );
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff', `${what}: X-Content-Type-Options`);
    assert.match(res.headers.get('content-type') || '', /^text\/html/, `${what}: Content-Type`);
  }
});
