// The running page: a long `sleep` job shows as a row with a progress bar
// while a worker runs it (marked stale once its heartbeat is old);
// cancelled from its page, it leaves the list.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import test from 'node:test';
import {
  ADMIN_KEY,
  DASHBOARD,
  createJob,
  pressAndWaitForFlash,
  session,
  shot,
  text,
  untilShown,
  waitForStatus,
} from './lib.mjs';

function sql(statement) {
  return execFileSync('psql', ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', process.env.DATABASE_URL, '-c', statement], {
    encoding: 'utf8',
  }).trim();
}

test('a running job shows on the running page with its progress; cancelling it from its page stops it', async () => {
  const job = await createJob({ type: 'sleep', payload: { ms: 120000 } });
  await waitForStatus(job.id, 'processing');

  const { context, page } = await session(ADMIN_KEY);
  try {
    await page.locator('[data-testid=nav-running]').click();
    await page.waitForURL((url) => url.pathname === '/dashboard/running');
    const row = page.locator(`[data-testid=running-row][data-job-id="${job.id}"]`);
    await row.waitFor();
    assert.equal(await row.locator('progress').count(), 1, 'the running row has no <progress>');
    assert.equal(await row.locator('[data-testid=stale]').count(), 0, 'a job with a fresh heartbeat is marked stale');
    await shot(page, 'running');

    // A claim whose heartbeat is older than the timeout is marked stale. The
    // setup ages the heartbeat in the database (the worker renews it every
    // 10 s, so the next look may come after a renewal: age it again).
    await untilShown(page, 'the aged claim marked stale', async () => {
      sql(`UPDATE jobs SET heartbeat_at = now() - interval '1 hour' WHERE id = '${job.id}' AND status = 'processing'`);
      await page.reload();
      assert.equal(await row.locator('[data-testid=stale]').count(), 1);
    });

    await page.goto(`${DASHBOARD}/jobs/${job.id}`);
    assert.equal(await text(page, '[data-testid=job-status]'), 'processing');
    assert.equal(await page.locator('[data-testid=retry-button]').count(), 0, 'a retry button on a running job');
    const status = await pressAndWaitForFlash(page, page.locator('[data-testid=cancel-button]'), `/dashboard/jobs/${job.id}/cancel`);
    assert.equal(status, 303, 'the cancel POST did not answer 303');
    assert.equal(new URL(page.url()).pathname, `/dashboard/jobs/${job.id}`, 'not sent back to the job page');
    await untilShown(page, 'the job shows as cancelled', async (p) => {
      assert.equal(await text(p, '[data-testid=job-status]'), 'cancelled');
    });
    await waitForStatus(job.id, 'cancelled');
    // Cancelled is retry-able, not cancel-able.
    assert.equal(await page.locator('[data-testid=cancel-button]').count(), 0);
    assert.equal(await page.locator('[data-testid=retry-button]').count(), 1);

    await page.goto(`${DASHBOARD}/running`);
    await untilShown(page, 'the cancelled job left the running page', async () => {
      assert.equal(await row.count(), 0);
    });
  } finally {
    await context.close();
  }
});
