// The dead letter: a job that failed for good, retried from the page (after
// its confirm dialog), then completes.
//
// The job is the built-in `fail` handler with {"times": 1, "permanent":
// true}: its first attempt fails permanently (FAIL_PERMANENT), so it goes
// straight to `failed`, the dead letter. An operator retry grants fresh
// attempts without resetting `attempts`, so the next attempt is number 2,
// which is past `times` and completes with {"failed_first": 1}: a job that
// really completes after the retry, with no stand-in.
import assert from 'node:assert/strict';
import test from 'node:test';
import {
  ADMIN_KEY,
  DASHBOARD,
  RUN,
  createJob,
  pressAndWaitForFlash,
  session,
  shot,
  text,
  timelineEvents,
  untilShown,
  waitForStatus,
} from './lib.mjs';

test('a job in the dead letter is retried from the dead-letter page and completes', async () => {
  const job = await createJob({ type: 'fail', payload: { times: 1, permanent: true, tag: RUN } });
  const failed = await waitForStatus(job.id, 'failed');
  assert.equal(failed.attempts, 1);
  assert.equal(failed.error_code, 'FAIL_PERMANENT');

  const { context, page, dialogs } = await session(ADMIN_KEY);
  try {
    // The overview counts it.
    await untilShown(page, 'count-failed 1', async (p) => {
      assert.equal(await text(p, '[data-testid=count-failed]'), '1');
    });
    assert.equal(await text(page, '[data-testid=dead-letter-size]'), '1');

    // Its own page shows the error and a retry button (no cancel: it is done).
    await page.goto(`${DASHBOARD}/jobs/${job.id}`);
    assert.equal(await text(page, '[data-testid=job-status]'), 'failed');
    assert.match(await text(page, '[data-testid=job-error]'), /FAIL_PERMANENT|failing attempt 1 on purpose/);
    assert.equal(await page.locator('[data-testid=retry-button]').count(), 1, 'no retry button on a failed job');
    assert.equal(await page.locator('[data-testid=cancel-button]').count(), 0, 'a cancel button on a failed job');

    await page.locator('[data-testid=nav-dead-letter]').click();
    await page.waitForURL((url) => url.pathname === '/dashboard/dead-letter');
    const row = page.locator(`[data-testid=dead-job-row][data-job-id="${job.id}"]`);
    await row.waitFor();
    assert.equal(await row.locator('form input[name=csrf]').count(), 1, 'the retry form has no csrf field');
    await shot(page, 'dead-letter');

    const status = await pressAndWaitForFlash(page, row.locator('[data-testid=retry-button]'), `/dashboard/jobs/${job.id}/retry`);
    assert.equal(status, 303, 'the retry POST did not answer 303');
    assert.equal(new URL(page.url()).pathname, '/dashboard/dead-letter', 'not sent back to the dead letter');
    assert.ok(dialogs.some((d) => d.startsWith('confirm')), `no confirm dialog before the retry (dialogs: ${dialogs})`);

    // Watch it complete on its page.
    await page.goto(`${DASHBOARD}/jobs/${job.id}`);
    await untilShown(page, 'the retried job completed', async (p) => {
      assert.equal(await text(p, '[data-testid=job-status]'), 'completed');
    });
    assert.match(await text(page, '[data-testid=job-result]'), /failed_first/);
    const events = await timelineEvents(page);
    for (const [a, b] of [
      ['created', 'failed'],
      ['failed', 'retried'],
      ['retried', 'completed'],
    ]) {
      assert.ok(events.indexOf(a) >= 0 && events.indexOf(a) < events.lastIndexOf(b), `timeline: ${events}`);
    }
    // And it left the dead letter.
    await page.goto(`${DASHBOARD}/dead-letter`);
    assert.equal(await row.count(), 0, 'the completed job is still in the dead letter');
  } finally {
    await context.close();
  }
});
