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
import { execFileSync } from 'node:child_process';
import test from 'node:test';
import {
  ADMIN_KEY,
  DASHBOARD,
  RUN,
  api,
  createJob,
  until,
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

/** One SQL statement through psql on the test's database; answers its rows (tab-separated). */
function sql(statement) {
  const url = process.env.DATABASE_URL;
  assert.ok(url, 'DATABASE_URL is not set');
  return execFileSync('psql', ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', url, '-c', statement], { encoding: 'utf8' }).trim();
}

/** The numbers in a text, in order. */
const numbers = (t) => (t.match(/\d+/g) || []).map(Number);

test('replay the dead letter from its page: failed jobs and a dead-lettered outbox row go back, once per token', async () => {
  const failing = [];
  for (let n = 0; n < 2; n++) {
    failing.push(await createJob({ type: 'fail', payload: { times: 1, permanent: true, replay: RUN, n } }));
  }
  for (const job of failing) await waitForStatus(job.id, 'failed');
  // A dead-lettered outbox row: with the postgres queue publishing cannot
  // fail, so the setup marks the sent message of a waiting job (a type no
  // worker serves) as the relay does when it gives up.
  const waiting = await createJob({ type: `unserved.${RUN}`, payload: {} });
  await until('the outbox row was sent', () => sql(`SELECT count(*) FROM outbox WHERE job_id = '${waiting.id}' AND status = 'sent'`) === '1');
  sql(`UPDATE outbox SET status = 'dead_letter', tenant_id = 'default', sent_at = NULL, attempts = 10, last_error = 'broker refused (test setup)' WHERE job_id = '${waiting.id}'`);

  const { context, page, dialogs } = await session(ADMIN_KEY);
  try {
    await page.goto(`${DASHBOARD}/dead-letter`);
    for (const job of failing) await page.locator(`[data-testid=dead-job-row][data-job-id="${job.id}"]`).waitFor();
    const outboxRow = page.locator(`[data-testid=dead-outbox-row][data-job-id="${waiting.id}"]`);
    await outboxRow.waitFor();
    assert.match(await outboxRow.innerText(), /broker refused/);
    await shot(page, 'dead-letter');

    const form = page.locator('[data-testid=replay-form]');
    const token = await form.locator('input[name=token]').inputValue();
    const csrf = await form.locator('input[name=csrf]').inputValue();
    const before = dialogs.length;
    await page.evaluate(() =>
      document.querySelectorAll('[data-testid=replay-result]').forEach((e) => e.setAttribute('data-old', '')),
    );
    const answer = page.waitForResponse(
      (r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/dashboard/dead-letter/replay',
    );
    await form.locator('button[type=submit], input[type=submit], button:not([type])').first().click();
    assert.equal((await answer).status(), 303, 'the replay POST did not answer 303');
    const result = page.locator('[data-testid=replay-result]:not([data-old])');
    await result.waitFor();
    assert.ok(dialogs.slice(before).some((d) => d.startsWith('confirm')), `no confirm dialog before the replay (dialogs: ${dialogs})`);
    const got = numbers(await result.innerText());
    assert.ok(got.includes(2) && got.includes(1) && got.includes(3), `replay-result: ${await result.innerText()}`);

    for (const job of failing) {
      const done = await waitForStatus(job.id, 'completed');
      assert.equal(done.attempts, 2);
    }
    assert.equal(sql(`SELECT status FROM outbox WHERE job_id = '${waiting.id}' ORDER BY id DESC LIMIT 1`) === 'dead_letter', false);
    await page.goto(`${DASHBOARD}/dead-letter`);
    assert.equal(await page.locator('[data-testid=dead-outbox-row]').count(), 0, 'the outbox row is still dead-lettered');

    // The same form sent twice (its token): the second replays nothing.
    sql(`UPDATE outbox SET status = 'dead_letter', tenant_id = 'default', sent_at = NULL WHERE job_id = '${waiting.id}'`);
    const again = await page.evaluate(
      async ({ token, csrf }) => {
        const res = await fetch('/dashboard/dead-letter/replay', { method: 'POST', body: new URLSearchParams({ token, csrf }) });
        const doc = new DOMParser().parseFromString(await res.text(), 'text/html');
        return { status: res.status, text: doc.querySelector('[data-testid=replay-result]')?.textContent ?? null };
      },
      { token, csrf },
    );
    assert.equal(again.status, 200, 'the repeated replay (redirect followed) did not end on a page');
    assert.ok(again.text !== null, 'the repeated replay shows no replay-result');
    assert.ok(numbers(again.text).every((n) => n === 0), `the repeated token replayed something: ${again.text}`);
    assert.equal(sql(`SELECT status FROM outbox WHERE job_id = '${waiting.id}' ORDER BY id DESC LIMIT 1`), 'dead_letter');
  } finally {
    await context.close();
    await api('POST', `/v1/jobs/${waiting.id}/cancel`);
    sql(`UPDATE outbox SET status = 'sent', sent_at = now() WHERE job_id = '${waiting.id}' AND status = 'dead_letter'`);
  }
});
