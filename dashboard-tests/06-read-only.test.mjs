// A jobs:read key sees jobs but no actions, and a POST it forges from the
// page is refused; an admin session's POST without the csrf value is too.
import assert from 'node:assert/strict';
import test from 'node:test';
import { ADMIN_KEY, DASHBOARD, READ_KEY, RUN, api, createJob, getJob, session, text, workers } from './lib.mjs';

/** POSTs a form body from the page's own context (its cookie goes along). */
function forge(page, path, fields) {
  return page.evaluate(
    async ({ path, fields }) => {
      const res = await fetch(path, {
        method: 'POST',
        body: new URLSearchParams(fields),
        redirect: 'manual',
        credentials: 'same-origin',
      });
      return res.status;
    },
    { path, fields },
  );
}

test('a jobs:read key sees a job page without cancel or retry buttons; its forged POSTs get 403', async () => {
  // A job of a type no worker serves: it stays pending, so cancel applies.
  const job = await createJob({ type: `unserved.${RUN}`, payload: {} });
  const admin = await session(ADMIN_KEY);
  const reader = await session(READ_KEY);
  try {
    // The admin sees the cancel button (the control for the check below).
    await admin.page.goto(`${DASHBOARD}/jobs/${job.id}`);
    assert.equal(await text(admin.page, '[data-testid=job-status]'), 'pending');
    assert.equal(await admin.page.locator('[data-testid=cancel-button]').count(), 1, 'the admin sees no cancel button');
    const adminCsrf = await admin.page.locator('form:has([data-testid=cancel-button]) input[name=csrf]').inputValue();
    assert.ok(adminCsrf, 'the cancel form has an empty csrf value');

    await reader.page.goto(`${DASHBOARD}/jobs/${job.id}`);
    assert.equal(await text(reader.page, '[data-testid=job-status]'), 'pending');
    await reader.page.locator('[data-testid=timeline]').waitFor();
    assert.equal(await reader.page.locator('[data-testid=cancel-button]').count(), 0, 'the reader sees a cancel button');
    assert.equal(await reader.page.locator('[data-testid=retry-button]').count(), 0, 'the reader sees a retry button');

    // The reader's own csrf value (from its logout form), none, and the
    // admin session's: all refused.
    const csrfInputs = reader.page.locator('input[name=csrf]');
    assert.ok((await csrfInputs.count()) > 0, "the reader's page has no csrf field (its logout form should)");
    const readerCsrf = await csrfInputs.first().inputValue();
    const cancel = `/dashboard/jobs/${job.id}/cancel`;
    assert.equal(await forge(reader.page, cancel, { csrf: readerCsrf }), 403, 'cancel with the reader csrf');
    assert.equal(await forge(reader.page, cancel, {}), 403, 'cancel without csrf');
    assert.equal(await forge(reader.page, cancel, { csrf: adminCsrf }), 403, "cancel with the admin session's csrf");
    assert.equal(await forge(reader.page, `/dashboard/jobs/${job.id}/retry`, { csrf: readerCsrf }), 403, 'retry');
    assert.equal((await getJob(job.id)).status, 'pending', 'a refused POST changed the job');

    // The workers page (the contract shows it to tenant default, whatever
    // the scope): no steering buttons for this key, and a forged pause is
    // refused, the worker left running.
    const [worker] = (await workers()).filter((w) => w.state === 'running');
    assert.ok(worker, 'no running worker');
    const page = await reader.page.goto(`${DASHBOARD}/workers`);
    if (page.status() === 200) {
      for (const b of ['pause', 'resume', 'drain']) {
        assert.equal(await reader.page.locator(`[data-testid=${b}-button]`).count(), 0, `the reader sees a ${b} button`);
      }
    } else {
      assert.equal(page.status(), 404, `GET /dashboard/workers as the reader: ${page.status()}`);
    }
    assert.equal(await forge(reader.page, `/dashboard/workers/${worker.id}/pause`, { csrf: readerCsrf }), 403, 'forged pause');
    const after = (await workers()).find((w) => w.id === worker.id);
    assert.equal(after.desired_state, 'running', 'a refused pause changed the worker');
  } finally {
    await admin.context.close();
    await reader.context.close();
    // Leave nothing pending for the files after this one.
    await api('POST', `/v1/jobs/${job.id}/cancel`);
  }
});

test("an admin session's POST without its csrf value, or with another session's, gets 403", async () => {
  const job = await createJob({ type: `unserved.${RUN}`, payload: { csrf: true } });
  const admin = await session(ADMIN_KEY);
  const other = await session(ADMIN_KEY);
  try {
    await admin.page.goto(`${DASHBOARD}/jobs/${job.id}`);
    await other.page.goto(`${DASHBOARD}/jobs/${job.id}`);
    const field = 'form:has([data-testid=cancel-button]) input[name=csrf]';
    const mine = await admin.page.locator(field).inputValue();
    const theirs = await other.page.locator(field).inputValue();
    const cancel = `/dashboard/jobs/${job.id}/cancel`;
    assert.equal(await forge(admin.page, cancel, {}), 403, 'cancel without csrf');
    assert.equal(await forge(admin.page, cancel, { csrf: '' }), 403, 'cancel with an empty csrf');
    assert.equal(await forge(admin.page, cancel, { csrf: `${mine}x` }), 403, 'cancel with a wrong csrf');
    if (theirs !== mine) {
      assert.equal(await forge(admin.page, cancel, { csrf: theirs }), 403, "cancel with another session's csrf");
    }
    assert.equal((await getJob(job.id)).status, 'pending', 'a refused POST changed the job');
    // The control: the page's own form does cancel it.
    assert.equal(await forge(admin.page, cancel, { csrf: mine }), 0, 'the real form POST did not redirect (303)');
    assert.equal((await getJob(job.id)).status, 'cancelled');
  } finally {
    await admin.context.close();
    await other.context.close();
    await api('POST', `/v1/jobs/${job.id}/cancel`);
  }
});
