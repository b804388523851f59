// Another tenant's admin: a `default` job is a 404 page, and the workers
// (shared by every tenant) are neither linked nor reachable.
import assert from 'node:assert/strict';
import test from 'node:test';
import { ACME_KEY, DASHBOARD, RUN, createJob, session, waitForStatus } from './lib.mjs';

test("tenant acme's admin gets the 404 page for a default job, and no workers page", async () => {
  const job = await createJob({ type: 'noop', payload: { tenant: RUN } });
  await waitForStatus(job.id, 'completed');
  const { context, page } = await session(ACME_KEY);
  try {
    // Its nav: everything but the workers.
    for (const nav of ['overview', 'jobs', 'running', 'dead-letter']) {
      assert.equal(await page.locator(`[data-testid=nav-${nav}]`).count(), 1, `nav-${nav} missing`);
    }
    assert.equal(await page.locator('[data-testid=nav-workers]').count(), 0, 'acme sees the workers link');
    // Its overview counts none of default's jobs.
    assert.equal(((await page.locator('[data-testid=count-completed]').textContent()) ?? '').trim(), '0');

    const res = await page.goto(`${DASHBOARD}/jobs/${job.id}`);
    assert.equal(res.status(), 404);
    await page.locator('[data-testid=not-found]').waitFor();
    assert.equal(await page.locator('[data-testid=job-status]').count(), 0, 'the 404 page shows the job');
    assert.ok(!(await page.content()).includes(RUN), "the 404 page leaks the job's payload");
    assert.equal(await page.locator('[data-testid=nav-workers]').count(), 0, 'the 404 page links the workers');

    const workers = await page.goto(`${DASHBOARD}/workers`);
    assert.equal(workers.status(), 404);
    await page.locator('[data-testid=not-found]').waitFor();
    assert.equal(await page.locator('[data-testid=worker-row]').count(), 0);

    // Nor does the jobs list show it.
    await page.goto(`${DASHBOARD}/jobs`);
    await page.locator('[data-testid=job-filter]').waitFor();
    assert.equal(await page.locator(`[data-testid=job-row][data-job-id="${job.id}"]`).count(), 0, 'acme lists a default job');
  } finally {
    await context.close();
  }
});
