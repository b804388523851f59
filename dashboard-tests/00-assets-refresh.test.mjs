// The vendored htmx is the npm registry's (not a copy checked against its
// own checksum), and a refresh that fails says so on the page instead of
// leaving it silently old. Creates no jobs (01 counts on a fresh database).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import test from 'node:test';
import { ADMIN_KEY, BASE, session, shot } from './lib.mjs';

const require = createRequire(import.meta.url);

test('the htmx the server embeds is byte for byte the htmx.org package npm ci installed (lock-file integrity)', async () => {
  const pkg = JSON.parse(readFileSync(require.resolve('htmx.org/package.json'), 'utf8'));
  const lock = JSON.parse(readFileSync(new URL('./package-lock.json', import.meta.url), 'utf8'));
  const locked = lock.packages['node_modules/htmx.org'];
  assert.equal(pkg.version, locked.version);
  assert.match(locked.integrity, /^sha512-/, 'npm checked the tarball against the registry integrity');
  const fromNpm = readFileSync(require.resolve('htmx.org/dist/htmx.min.js'));
  const res = await fetch(`${BASE}/dashboard/assets/htmx.min.js`);
  assert.equal(res.status, 200);
  const served = Buffer.from(await res.arrayBuffer());
  assert.equal(served.length, fromNpm.length, 'sizes differ');
  assert.ok(served.equals(fromNpm), `the served htmx is not htmx.org@${pkg.version}'s dist/htmx.min.js`);
});

test('a failed refresh shows when the page is from, and the next good refresh hides the notice', async () => {
  const { context, page } = await session(ADMIN_KEY);
  try {
    await page.goto('/dashboard/jobs');
    const notice = page.locator('[data-testid=refresh-status]');
    assert.equal(await notice.isVisible(), false, 'no notice while refreshes work');
    const rendered = await page.locator('#main').getAttribute('data-rendered');
    assert.ok(rendered, 'the page says when it was drawn');
    // The next refreshes of this page answer 503 (the database is away).
    await page.route('**/dashboard/jobs', (route) =>
      route.fulfill({ status: 503, contentType: 'text/html', body: '<main id="main">unavailable</main>' }),
    );
    await notice.waitFor({ state: 'visible', timeout: 15_000 });
    const said = await notice.textContent();
    assert.match(said, /Could not refresh at .* \(HTTP 503\)/);
    assert.ok(said.includes(rendered), `the notice names the page's time ${rendered}: ${said}`);
    assert.notEqual(await page.locator('#main').textContent(), 'unavailable', 'the old content stays');
    await shot(page, 'refresh-failed');
    await page.unroute('**/dashboard/jobs');
    await notice.waitFor({ state: 'hidden', timeout: 15_000 });
  } finally {
    await context.close();
  }
});
