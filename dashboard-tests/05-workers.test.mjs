// The workers page: pause the worker, see a new job wait, resume it and see
// the job complete.
import assert from 'node:assert/strict';
import test from 'node:test';
import {
  ADMIN_KEY,
  DASHBOARD,
  POLL_INTERVAL,
  RUN,
  createJob,
  getJob,
  pressAndWaitForFlash,
  session,
  shot,
  text,
  until,
  untilShown,
  waitForStatus,
  workers,
} from './lib.mjs';

test('pause the worker from the workers page: a new job stays pending; resume it: the job completes', async () => {
  const live = (await workers()).filter((w) => w.state !== 'gone' && w.state !== 'stopped');
  assert.equal(live.length, 1, `want the one worker the script started: ${JSON.stringify(live)}`);
  const id = live[0].id;

  const { context, page } = await session(ADMIN_KEY);
  try {
    await page.locator('[data-testid=nav-workers]').click();
    await page.waitForURL((url) => url.pathname === '/dashboard/workers');
    const row = page.locator(`[data-testid=worker-row][data-worker-id="${id}"]`);
    await row.waitFor();
    const state = row.locator('[data-testid=worker-state]');
    assert.match((await state.textContent()).trim(), /running/i);
    for (const b of ['pause', 'resume', 'drain']) {
      assert.ok((await row.locator(`[data-testid=${b}-button]`).count()) <= 1, `more than one ${b} button`);
    }
    assert.equal(await row.locator('[data-testid=drain-button]').count(), 1, 'no drain button');

    const paused = await pressAndWaitForFlash(page, row.locator('[data-testid=pause-button]'), `/dashboard/workers/${id}/pause`);
    assert.equal(paused, 303, 'the pause POST did not answer 303');
    assert.equal(new URL(page.url()).pathname, '/dashboard/workers', 'not sent back to the workers page');
    await untilShown(page, 'the worker shows as paused', async () => {
      assert.match((await state.textContent()).trim(), /paused/i);
    });
    // The API's `state` shows the operator's wish at once (desired_state
    // wins over the worker's own report), so it does not say the worker
    // has heard it. A beat after the pause was committed does: each beat
    // answers the worker with its desired state, which it obeys at once.
    const committed = (await workers()).find((x) => x.id === id);
    assert.equal(committed.desired_state, 'paused');
    await until('a worker beat after the pause', async () => {
      const w = (await workers()).find((x) => x.id === id);
      assert.ok(Date.parse(w.last_seen_at) > Date.parse(committed.last_seen_at), `last seen ${w.last_seen_at}`);
    });

    // A bounded check: the job is still pending after the worker's poll
    // interval has passed more than twice.
    const job = await createJob({ type: 'noop', payload: { paused: RUN } });
    const watchMs = Math.max(2.5 * POLL_INTERVAL * 1000, 1500);
    const until_ = Date.now() + watchMs;
    let looks = 0;
    while (Date.now() < until_) {
      const seen = await getJob(job.id);
      assert.equal(seen.status, 'pending', `a paused worker took job ${job.id} (${seen.status}) after ${looks} looks`);
      looks++;
      await new Promise((r) => setTimeout(r, 100));
    }
    await page.goto(`${DASHBOARD}/jobs/${job.id}`);
    assert.equal(await text(page, '[data-testid=job-status]'), 'pending');

    await page.goto(`${DASHBOARD}/workers`);
    const resumed = await pressAndWaitForFlash(page, row.locator('[data-testid=resume-button]'), `/dashboard/workers/${id}/resume`);
    assert.equal(resumed, 303, 'the resume POST did not answer 303');
    await untilShown(page, 'the worker shows as running again', async () => {
      assert.match((await state.textContent()).trim(), /running/i);
    });
    await waitForStatus(job.id, 'completed');
    await page.goto(`${DASHBOARD}/jobs/${job.id}`);
    assert.equal(await text(page, '[data-testid=job-status]'), 'completed');
    await page.goto(`${DASHBOARD}/workers`);
    await row.waitFor();
    await shot(page, 'workers');
  } finally {
    await context.close();
  }
});
