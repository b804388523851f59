// The jobs list (filtered by type), a job's page and its timeline, and the
// go-to-job form.
import assert from 'node:assert/strict';
import test from 'node:test';
import {
  ADMIN_KEY,
  DASHBOARD,
  RUN,
  api,
  createJob,
  session,
  shot,
  text,
  timelineEvents,
  waitForStatus,
} from './lib.mjs';

/** Sets a field of the filter form, whether it is an input or a select. */
async function setFilter(page, name, value) {
  const field = page.locator(`[data-testid=job-filter] [name=${name}]`);
  assert.equal(await field.count(), 1, `the filter form has no field ${name}`);
  if ((await field.evaluate((e) => e.tagName)) === 'SELECT') await field.selectOption(value);
  else await field.fill(value);
}

/** Submits the filter form; waits for the list whose address has `want`. */
async function submitFilter(page, want) {
  const form = page.locator('[data-testid=job-filter]');
  const submit = form.locator('button[type=submit], input[type=submit], button:not([type])');
  await Promise.all([
    page.waitForURL(
      (url) =>
        url.pathname === '/dashboard/jobs' && Object.entries(want).every(([k, v]) => url.searchParams.get(k) === v),
    ),
    (await submit.count()) > 0 ? submit.first().click() : form.locator('[name=type]').press('Enter'),
  ]);
}

test('filter the jobs list by type, open a job from it and read its timeline', async () => {
  const slept = await createJob({ type: 'sleep', payload: { ms: 20, tag: RUN } });
  const noop = await createJob({ type: 'noop', payload: { tag: RUN } });
  await waitForStatus(slept.id, 'completed');
  await waitForStatus(noop.id, 'completed');

  const { context, page } = await session(ADMIN_KEY);
  try {
    await page.locator('[data-testid=nav-jobs]').click();
    await page.waitForURL((url) => url.pathname === '/dashboard/jobs');
    await page.locator('[data-testid=job-row]').first().waitFor();
    const all = await page.locator('[data-testid=job-row]').evaluateAll((rows) => rows.map((r) => r.dataset.jobId));
    assert.ok(all.includes(slept.id) && all.includes(noop.id), `unfiltered list lacks the new jobs: ${all}`);
    await shot(page, 'jobs');

    await setFilter(page, 'type', 'sleep');
    await submitFilter(page, { type: 'sleep' });
    assert.equal(new URL(page.url()).searchParams.get('type'), 'sleep');
    await page.locator(`[data-testid=job-row][data-job-id="${slept.id}"]`).waitFor();
    const ids = await page.locator('[data-testid=job-row]').evaluateAll((rows) => rows.map((r) => r.dataset.jobId));
    const { body } = await api('GET', '/v1/jobs?type=sleep&limit=500');
    // Few sleep jobs exist: the page holds exactly the API's list.
    assert.deepEqual([...ids].sort(), body.jobs.map((j) => j.id).sort(), 'rows differ from GET /v1/jobs?type=sleep');
    assert.ok(!ids.includes(noop.id), 'the noop job is listed under type=sleep');

    // With a status too: completed keeps it, pending drops it.
    await setFilter(page, 'status', 'pending');
    await submitFilter(page, { type: 'sleep', status: 'pending' });
    assert.equal(new URL(page.url()).searchParams.get('status'), 'pending');
    await page.locator('[data-testid=job-filter]').waitFor();
    assert.equal(await page.locator(`[data-testid=job-row][data-job-id="${slept.id}"]`).count(), 0, 'a completed job listed under status=pending');
    await setFilter(page, 'status', 'completed');
    await submitFilter(page, { type: 'sleep', status: 'completed' });
    await page.locator(`[data-testid=job-row][data-job-id="${slept.id}"]`).waitFor();

    // Open it from its row.
    const row = page.locator(`[data-testid=job-row][data-job-id="${slept.id}"]`);
    await Promise.all([
      page.waitForURL((url) => url.pathname === `/dashboard/jobs/${slept.id}`),
      row.locator(`a[href$="/dashboard/jobs/${slept.id}"]`).first().click(),
    ]);
    assert.equal(await text(page, '[data-testid=job-status]'), 'completed');
    assert.match(await text(page, '[data-testid=job-attempts]'), /\b1\b/);
    assert.match(await text(page, '[data-testid=job-payload]'), /"?ms"?\s*:\s*20/);
    assert.match(await text(page, '[data-testid=job-result]'), /slept_ms/);
    assert.equal(await page.locator('[data-testid=job-error]').count(), 0, 'a completed job shows an error');
    // A completed job can be neither cancelled nor retried.
    assert.equal(await page.locator('[data-testid=cancel-button]').count(), 0);
    assert.equal(await page.locator('[data-testid=retry-button]').count(), 0);

    const events = await timelineEvents(page);
    assert.equal(events[0], 'created', `timeline: ${events}`);
    assert.equal(events.at(-1), 'completed', `timeline: ${events}`);
    const created = events.indexOf('created');
    const claimed = events.indexOf('claimed');
    const completed = events.indexOf('completed');
    assert.ok(created < claimed && claimed < completed, `timeline out of order: ${events}`);
    // The same events, in the same order, as the API's timeline.
    const api_events = (await api('GET', `/v1/jobs/${slept.id}/events`)).body.events.map((e) => e.event);
    assert.deepEqual(events, api_events, 'the page timeline differs from GET /v1/jobs/{id}/events');
    await shot(page, 'job');
  } finally {
    await context.close();
  }
});

test('the go-to form opens a job by id; an unknown id is the 404 page', async () => {
  const job = await createJob({ type: 'noop', payload: { goto: RUN } });
  const { context, page } = await session(ADMIN_KEY);
  try {
    await page.goto(`${DASHBOARD}/jobs`);
    const form = page.locator('[data-testid=goto-job]');
    await form.locator('input[name=id]').fill(job.id);
    await Promise.all([
      page.waitForURL((url) => url.pathname === `/dashboard/jobs/${job.id}`),
      form.locator('input[name=id]').press('Enter'),
    ]);
    await page.locator('[data-testid=job-status]').waitFor();

    const missing = await page.goto(`${DASHBOARD}/jobs/00000000-0000-4000-8000-000000000000`);
    assert.equal(missing.status(), 404);
    await page.locator('[data-testid=not-found]').waitFor();
    const garbage = await page.goto(`${DASHBOARD}/jobs/not-a-uuid`);
    assert.equal(garbage.status(), 404);
    await page.locator('[data-testid=not-found]').waitFor();
  } finally {
    await context.close();
  }
});

test('the next-page link walks a long filtered list: every job once, none twice', async (t) => {
  const correlation = `paging-${RUN}`;
  const want = new Set();
  for (let batch = 0; batch < 2; batch++) {
    const jobs = Array.from({ length: batch ? 30 : 100 }, (_, n) => ({
      type: 'noop',
      payload: { batch, n },
      correlation_id: correlation,
    }));
    const { status, body } = await api('POST', '/v1/jobs/batch', { body: { jobs } });
    assert.equal(status, 201, `POST /v1/jobs/batch: ${status} ${JSON.stringify(body).slice(0, 300)}`);
    for (const j of body.jobs) want.add(j.id);
  }
  assert.equal(want.size, 130);

  const { context, page } = await session(ADMIN_KEY);
  try {
    await page.goto(`${DASHBOARD}/jobs?correlation_id=${encodeURIComponent(correlation)}`);
    const seen = [];
    let pages = 0;
    for (;;) {
      pages++;
      assert.ok(pages <= 140, 'more pages than jobs');
      await page.locator('[data-testid=job-row]').first().waitFor();
      seen.push(...(await page.locator('[data-testid=job-row]').evaluateAll((rows) => rows.map((r) => r.dataset.jobId))));
      const next = page.locator('[data-testid=next-page]');
      if ((await next.count()) === 0) break;
      const before = page.url();
      await Promise.all([page.waitForURL((url) => url.href !== before), next.first().click()]);
      assert.equal(new URL(page.url()).searchParams.get('correlation_id'), correlation, 'the next page lost the filter');
    }
    if (pages === 1) {
      assert.equal(seen.length, 130, `no next-page link, though the page shows ${seen.length} of the 130 jobs`);
      t.skip('one page holds all 130 jobs: no paging to follow');
      return;
    }
    assert.equal(new Set(seen).size, seen.length, 'a job was listed twice');
    assert.deepEqual([...seen].sort(), [...want].sort(), 'the pages did not list exactly the 130 jobs');
  } finally {
    await context.close();
  }
});

test('markup in a payload, a correlation id or a filter is shown as text, never run', async () => {
  const evil = `"><img src=x onerror="window.__xss=1"><script>window.__xss=2</script>${RUN}`;
  const job = await createJob({ type: 'noop', payload: { html: evil }, correlation_id: evil });
  await waitForStatus(job.id, 'completed');
  const { context, page } = await session(ADMIN_KEY);
  try {
    await page.goto(`${DASHBOARD}/jobs/${job.id}`);
    assert.ok((await text(page, '[data-testid=job-payload]')).includes('<script>window.__xss=2</script>'), 'the payload is not shown as text');
    assert.equal(await page.evaluate(() => window.__xss), undefined, 'markup from the payload ran on the job page');

    await page.goto(`${DASHBOARD}/jobs?correlation_id=${encodeURIComponent(evil)}`);
    await page.locator(`[data-testid=job-row][data-job-id="${job.id}"]`).waitFor();
    assert.equal(await page.evaluate(() => window.__xss), undefined, 'markup from a filter ran on the jobs page');
    const field = page.locator('[data-testid=job-filter] [name=correlation_id]');
    if ((await field.count()) === 1) assert.equal(await field.inputValue(), evil, 'the filter field does not hold the value as typed');
    assert.equal(await page.locator('script:text("window.__xss")').count(), 0, 'a script element came from the input');
  } finally {
    await context.close();
  }
});
