// Last (it ends the worker): drain the worker from the workers page; it
// finishes what it holds, exits, and shows as stopped.
import assert from 'node:assert/strict';
import test from 'node:test';
import { ADMIN_KEY, DASHBOARD, pressAndWaitForFlash, session, until, untilShown, workers } from './lib.mjs';

test('drain the worker from the workers page: it exits and shows as stopped', async () => {
  const [worker] = (await workers()).filter((w) => w.state === 'running');
  assert.ok(worker, 'no running worker');
  const { context, page } = await session(ADMIN_KEY);
  try {
    await page.goto(`${DASHBOARD}/workers`);
    const row = page.locator(`[data-testid=worker-row][data-worker-id="${worker.id}"]`);
    const status = await pressAndWaitForFlash(page, row.locator('[data-testid=drain-button]'), `/dashboard/workers/${worker.id}/drain`);
    assert.equal(status, 303, 'the drain POST did not answer 303');
    await until('the worker stopped', async () => {
      const w = (await workers()).find((x) => x.id === worker.id);
      assert.equal(w.state, 'stopped');
    });
    await untilShown(page, 'the worker shows as stopped', async () => {
      assert.match((await row.locator('[data-testid=worker-state]').textContent()).trim(), /stopped/i);
    });
  } finally {
    await context.close();
  }
});
