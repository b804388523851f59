// Logging out ends the session: the next page load goes to the login page,
// and the old cookie, replayed, no longer opens the dashboard. Revoking the
// key (jobline keys revoke) ends its sessions too.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import test from 'node:test';
import { ADMIN_KEY, DASHBOARD, openPage, session, until } from './lib.mjs';

test('after pressing logout a page load redirects to the login page, and the old cookie is dead', async () => {
  const { context, page } = await session(ADMIN_KEY);
  const other = await openPage();
  try {
    const before = await context.cookies();
    const logout = page.locator('[data-testid=logout]');
    const button = (await logout.evaluate((e) => e.tagName)) === 'FORM'
      ? logout.locator('button, input[type=submit]').first()
      : logout;
    const answer = page.waitForResponse(
      (r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/dashboard/logout',
    );
    await button.click();
    assert.equal((await answer).status(), 303, 'logout did not answer 303');
    await page.waitForURL((url) => url.pathname === '/dashboard/login');

    await page.goto(`${DASHBOARD}/jobs`);
    assert.equal(new URL(page.url()).pathname, '/dashboard/login', `after logout ${page.url()}`);
    await page.goto(DASHBOARD);
    assert.equal(new URL(page.url()).pathname, '/dashboard/login', `after logout ${page.url()}`);

    // The cookie from before the logout, set again in another browser
    // context: the server ended the session, not only the browser.
    await other.context.addCookies(before);
    await other.page.goto(DASHBOARD);
    assert.equal(new URL(other.page.url()).pathname, '/dashboard/login', 'the old session cookie still works');
  } finally {
    await context.close();
    await other.context.close();
  }
});

test("revoking a key ends its dashboard sessions (within the 5 s key cache)", async (t) => {
  const bin = process.env.DASHBOARD_JOBLINE_BIN;
  if (!bin) {
    t.skip('DASHBOARD_JOBLINE_BIN is not set');
    return;
  }
  const out = execFileSync(bin, ['keys', 'create', '--tenant', 'default', '--scopes', 'admin'], { encoding: 'utf8' });
  const id = /key id ([0-9a-f-]{36})/.exec(out)?.[1];
  const key = out.trim().split('\n').at(-1).trim();
  assert.ok(id && key, `could not read the new key: ${out}`);
  const { context, page } = await session(key);
  try {
    await page.goto(`${DASHBOARD}/jobs`);
    assert.equal(new URL(page.url()).pathname, '/dashboard/jobs');
    execFileSync(bin, ['keys', 'revoke', id], { encoding: 'utf8' });
    await until(
      "the revoked key's session ended",
      async () => {
        await page.goto(`${DASHBOARD}/jobs`);
        assert.equal(new URL(page.url()).pathname, '/dashboard/login', `still on ${page.url()}`);
      },
      { timeout: 15_000, every: 500 },
    );
    // And the key cannot log in again.
    await page.locator('input[name=api_key]').fill(key);
    const answer = page.waitForResponse(
      (r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/dashboard/login',
    );
    await page.locator('[data-testid=login-submit]').click();
    assert.equal((await answer).status(), 401, 'a revoked key logged in');
  } finally {
    await context.close();
  }
});
