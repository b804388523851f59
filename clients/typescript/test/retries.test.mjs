// createJob's retries, through an injected fetch that fails some attempts
// and hands the others to the real server: one job, one key, every time.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { JoblineError } from "../dist/index.js";
import { client, jobsOf, randomUUID, recordingFetch, tag } from "./helpers.mjs";

const unavailable = (code, status, headers = {}) =>
  new Response(JSON.stringify({ error: { code, message: `injected ${status}` } }), {
    status,
    headers: { "Content-Type": "application/json", ...headers },
  });

/** A fetch whose calls go through `script` in turn (a Response to answer, an Error to throw, "real" for the server), then the server. */
function flakyFetch(script) {
  let n = 0;
  return recordingFetch(async (input, init) => {
    const step = script[n++] ?? "real";
    if (step === "real") return fetch(input, init);
    if (typeof step === "function") return step(input, init);
    if (step instanceof Error) throw step;
    return step;
  });
}

function assertOneKey(f, attempts) {
  assert.equal(f.calls.length, attempts);
  assert.ok(f.calls[0].key, "an Idempotency-Key on the first attempt");
  assert.deepEqual(new Set(f.calls.map((c) => c.key)).size, 1, `one key on every attempt: ${f.calls.map((c) => c.key)}`);
}

describe("createJob retries with the same Idempotency-Key", () => {
  it("a 503 (Retry-After: 0), then a network error, then the server: one job", async () => {
    const cid = tag("retry-503");
    const f = flakyFetch([unavailable("unavailable", 503, { "Retry-After": "0" }), new TypeError("fetch failed")]);
    const job = await client({ fetch: f }).createJob({ type: "noop", correlation_id: cid });
    assertOneKey(f, 3);
    assert.equal(job.already_existed, false);
    assert.equal(job.idempotency_key, f.calls[0].key);
    const jobs = await jobsOf(cid);
    assert.equal(jobs.length, 1);
    assert.equal(jobs[0].id, job.id);
  });

  it("a 429 with Retry-After honoured, then the server: one job", async () => {
    const cid = tag("retry-429");
    const f = flakyFetch([unavailable("overloaded", 429, { "Retry-After": "1" })]);
    const started = Date.now();
    const job = await client({ fetch: f }).createJob({ type: "noop", correlation_id: cid });
    assert.ok(Date.now() - started >= 1_000, "waited the Retry-After second");
    assertOneKey(f, 2);
    assert.equal((await jobsOf(cid)).length, 1);
    assert.equal(job.already_existed, false);
  });

  it("the server made the job but the answer was lost (a 503 instead): the retry finds it, already_existed true", async () => {
    const cid = tag("retry-lost");
    const f = flakyFetch([
      async (input, init) => {
        await (await fetch(input, init)).text();
        return unavailable("unavailable", 503);
      },
    ]);
    const job = await client({ fetch: f }).createJob({ type: "noop", correlation_id: cid });
    assertOneKey(f, 2);
    assert.equal(job.already_existed, true);
    const jobs = await jobsOf(cid);
    assert.equal(jobs.length, 1);
    assert.equal(jobs[0].id, job.id);
  });

  it("a timed-out attempt is retried too (timeoutMs)", async () => {
    const cid = tag("retry-timeout");
    const hang = (_input, init) =>
      new Promise((_resolve, reject) => init.signal.addEventListener("abort", () => reject(init.signal.reason)));
    const f = flakyFetch([hang]);
    const job = await client({ fetch: f, timeoutMs: 200 }).createJob({ type: "noop", correlation_id: cid });
    assertOneKey(f, 2);
    assert.equal((await jobsOf(cid)).length, 1);
    assert.equal(job.already_existed, false);
  });

  it("createJobs retries a 503 with the same keys: the batch is made once", async () => {
    const cid = tag("retry-batch");
    const bodies = [];
    const f = flakyFetch([unavailable("unavailable", 503, { "Retry-After": "0" })]);
    const spy = (input, init) => (bodies.push(JSON.parse(init.body)), f(input, init));
    const jobs = await client({ fetch: spy }).createJobs([{ type: "noop", correlation_id: cid }, { type: "noop", correlation_id: cid }]);
    assert.equal(bodies.length, 2);
    assert.deepEqual(bodies[0], bodies[1]);
    assert.ok(bodies[0].jobs.every((j) => j.idempotency_key));
    assert.equal(jobs.length, 2);
    assert.equal((await jobsOf(cid)).length, 2);
  });
});

describe("when retrying does not help", () => {
  it("503 on every attempt: JoblineError 503 after 1 + retries attempts, one key throughout", async () => {
    const f = flakyFetch(Array.from({ length: 10 }, () => unavailable("unavailable", 503)));
    await assert.rejects(client({ fetch: f, retries: 2 }).createJob({ type: "noop" }), (err) => {
      assert.ok(err instanceof JoblineError);
      assert.equal(err.status, 503);
      assert.equal(err.code, "unavailable");
      return true;
    });
    assertOneKey(f, 3);
  });

  it("a network error on every attempt: the fetch's own error, after 1 + retries attempts", async () => {
    const f = flakyFetch(Array.from({ length: 10 }, () => new TypeError("fetch failed")));
    await assert.rejects(client({ fetch: f, retries: 1 }).createJob({ type: "noop" }), TypeError);
    assertOneKey(f, 2);
  });

  it("a Retry-After longer than retryMaxMs is not waited for: the 503 is returned with retryAfterMs", async () => {
    const f = flakyFetch([unavailable("overloaded", 503, { "Retry-After": "120" })]);
    await assert.rejects(client({ fetch: f, retryMaxMs: 5_000 }).createJob({ type: "noop" }), (err) => {
      assert.ok(err instanceof JoblineError);
      assert.equal(err.code, "overloaded");
      assert.equal(err.retryAfterMs, 120_000);
      return true;
    });
    assert.equal(f.calls.length, 1);
  });

  it("a non-JSON error page: JoblineError with code http_<status>", async () => {
    const f = flakyFetch([new Response("<html>bad gateway</html>", { status: 502 })]);
    await assert.rejects(client({ fetch: f }).getJob(randomUUID()), (err) => {
      assert.ok(err instanceof JoblineError);
      assert.equal(err.status, 502);
      assert.equal(err.code, "http_502");
      assert.match(err.message, /bad gateway/);
      return true;
    });
    assert.equal(f.calls.length, 1, "a 502 is not retried");
  });

  it("cancelJob is not retried (a second cancel would be 409)", async () => {
    const f = flakyFetch([unavailable("unavailable", 503, { "Retry-After": "0" })]);
    await assert.rejects(client({ fetch: f }).cancelJob(randomUUID()), (err) => err instanceof JoblineError && err.status === 503);
    assert.equal(f.calls.length, 1);
  });

  it("the caller's abort is not retried", async () => {
    const controller = new AbortController();
    const f = flakyFetch([
      (_input, init) => {
        controller.abort(new Error("caller gave up"));
        return Promise.reject(init.signal.reason);
      },
    ]);
    await assert.rejects(client({ fetch: f }).createJob({ type: "noop" }, { signal: controller.signal }), /caller gave up/);
    assert.equal(f.calls.length, 1);
  });
});
