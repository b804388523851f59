// Logging out ends the session: the next page load goes to the login page,
// and the old cookie, replayed, no longer opens the dashboard.
import assert from 'node:assert/strict';
import test from 'node:test';
import { ADMIN_KEY, DASHBOARD, openPage, session } from './lib.mjs';

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
