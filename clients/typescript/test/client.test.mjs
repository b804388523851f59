// Every call of the client against a real `jobline serve` and `jobline worker`.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";

import { JoblineError, JoblineTimeoutError, TERMINAL_STATUSES, createClient } from "../dist/index.js";
import { BASE_URL, LATER, client, jobsOf, randomUUID, recordingFetch, tag } from "./helpers.mjs";

/** Rejects with a JoblineError of this status and code. */
async function rejectsWith(promise, status, code) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof JoblineError, `a JoblineError, not ${err}`);
    assert.equal(err.name, "JoblineError");
    assert.equal(err.status, status, `status of ${err.code}: ${err.message}`);
    assert.equal(err.code, code, err.message);
    assert.ok(err.message.length > 0);
    return true;
  });
}

describe("createJob", () => {
  it("creates a job: 201, already_existed false, with an Idempotency-Key it chose", async () => {
    const f = recordingFetch();
    const cid = tag("create");
    const job = await client({ fetch: f }).createJob({ type: "noop", payload: { n: 1 }, correlation_id: cid });
    assert.equal(job.already_existed, false);
    assert.equal(job.type, "noop");
    assert.deepEqual(job.payload, { n: 1 });
    assert.equal(job.correlation_id, cid);
    assert.equal(f.calls.length, 1);
    assert.equal(f.calls[0].status, 201);
    assert.match(f.calls[0].key, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(job.idempotency_key, f.calls[0].key);
  });

  it("the same idempotency key twice: the same job, already_existed true the second time", async () => {
    const c = client();
    const key = tag("key");
    const body = { type: "noop", payload: { n: 2 }, correlation_id: key };
    const first = await c.createJob(body, { idempotencyKey: key });
    const second = await c.createJob(body, { idempotencyKey: key });
    assert.equal(first.already_existed, false);
    assert.equal(second.already_existed, true);
    assert.equal(second.id, first.id);
    assert.equal(second.idempotency_key, key);
    assert.equal((await jobsOf(key)).length, 1);
  });

  it("the body's idempotency_key is the header's too", async () => {
    const f = recordingFetch();
    const key = tag("body-key");
    const job = await client({ fetch: f }).createJob({ type: "noop", idempotency_key: key });
    assert.equal(f.calls[0].key, key);
    assert.equal(job.idempotency_key, key);
  });

  it("the same key with another body: JoblineError 409 idempotency_conflict", async () => {
    const c = client();
    const key = tag("conflict");
    await c.createJob({ type: "noop", payload: { n: 1 } }, { idempotencyKey: key });
    await rejectsWith(c.createJob({ type: "noop", payload: { n: 2 } }, { idempotencyKey: key }), 409, "idempotency_conflict");
  });

  it("an invalid type name: JoblineError 422 validation_failed, not retried", async () => {
    const f = recordingFetch();
    await rejectsWith(client({ fetch: f }).createJob({ type: "not a type!" }), 422, "validation_failed");
    assert.equal(f.calls.length, 1);
  });

  it("an unknown field: JoblineError 422 validation_failed", async () => {
    await rejectsWith(client().createJob({ type: "noop", nope: 1 }), 422, "validation_failed");
  });

  it("a wrong API key: JoblineError 401 unauthorized", async () => {
    const c = client({ apiKey: "not-a-key-of-this-server" });
    await rejectsWith(c.createJob({ type: "noop" }), 401, "unauthorized");
    await rejectsWith(c.stats(), 401, "unauthorized");
  });
});

describe("createJobs", () => {
  it("creates a batch in input order, each with an idempotency key; again: every one already existed", async () => {
    const c = client();
    const cid = tag("batch");
    const input = [1, 2, 3].map((n) => ({ type: "noop", payload: { n }, correlation_id: cid, delay_seconds: LATER }));
    const created = await c.createJobs(input);
    assert.equal(created.length, 3);
    assert.deepEqual(created.map((j) => j.payload.n), [1, 2, 3]);
    assert.ok(created.every((j) => j.already_existed === false && j.idempotency_key));
    const again = await c.createJobs(created.map((j) => ({ ...input[j.payload.n - 1], idempotency_key: j.idempotency_key })));
    assert.deepEqual(again.map((j) => j.id), created.map((j) => j.id));
    assert.ok(again.every((j) => j.already_existed === true));
    assert.equal((await jobsOf(cid)).length, 3);
  });

  it("all or nothing: one bad item refuses the batch with 422 and creates nothing", async () => {
    const cid = tag("batch-bad");
    await rejectsWith(
      client().createJobs([{ type: "noop", correlation_id: cid }, { type: "bad type", correlation_id: cid }]),
      422,
      "validation_failed",
    );
    assert.equal((await jobsOf(cid)).length, 0);
  });
});

describe("getJob", () => {
  it("returns the job", async () => {
    const c = client();
    const made = await c.createJob({ type: "noop", delay_seconds: LATER });
    const job = await c.getJob(made.id);
    assert.equal(job.id, made.id);
    assert.equal(job.status, "pending");
    assert.equal("already_existed" in job, false);
  });

  it("an unknown id: JoblineError 404 not_found", async () => {
    await rejectsWith(client().getJob(randomUUID()), 404, "not_found");
    await rejectsWith(client().getJob("not-a-uuid"), 404, "not_found");
  });
});

describe("listJobs", () => {
  it("follows next_cursor across pages and yields each job exactly once", async () => {
    const c = client();
    const cid = tag("list");
    const made = [];
    for (let n = 0; n < 7; n++) made.push(await c.createJob({ type: "noop", payload: { n }, correlation_id: cid, delay_seconds: LATER }));
    const f = recordingFetch();
    const seen = [];
    for await (const job of client({ fetch: f }).listJobs({ correlation_id: cid, limit: 3 })) seen.push(job.id);
    assert.equal(seen.length, 7);
    assert.equal(new Set(seen).size, 7);
    assert.deepEqual([...seen].sort(), made.map((j) => j.id).sort());
    assert.deepEqual(seen, [...made].reverse().map((j) => j.id), "newest first");
    assert.ok(f.calls.length >= 3, `${f.calls.length} pages of 3 for 7 jobs`);
    assert.match(f.calls[1].url, /[?&]cursor=/);
    assert.ok(f.calls.every((call) => /[?&]limit=3(&|$)/.test(call.url) && call.url.includes(encodeURIComponent(cid))));
  });

  it("stops fetching when the loop stops", async () => {
    const c = client();
    const cid = tag("list-break");
    for (let n = 0; n < 4; n++) await c.createJob({ type: "noop", correlation_id: cid, delay_seconds: LATER });
    const f = recordingFetch();
    for await (const job of client({ fetch: f }).listJobs({ correlation_id: cid, limit: 2 })) {
      assert.equal(job.correlation_id, cid);
      break;
    }
    assert.equal(f.calls.length, 1);
  });

  it("an empty result: nothing yielded", async () => {
    const seen = [];
    for await (const job of client().listJobs({ correlation_id: tag("none") })) seen.push(job);
    assert.deepEqual(seen, []);
  });
});

describe("cancelJob and retryJob", () => {
  it("cancels a pending job, retries it back to pending (then the worker runs it); a second cancel or retry is 409 invalid_state", async () => {
    const c = client();
    const made = await c.createJob({ type: "noop", delay_seconds: LATER });
    const cancelled = await c.cancelJob(made.id);
    assert.equal(cancelled.id, made.id);
    assert.equal(cancelled.status, "cancelled");
    assert.ok(cancelled.completed_at);
    await rejectsWith(c.cancelJob(made.id), 409, "invalid_state");
    const retried = await c.retryJob(made.id, { max_attempts: 2 });
    assert.equal(retried.status, "pending");
    assert.equal(retried.max_attempts, retried.attempts + 2, "max_attempts grants 2 more than the attempts made");
    // Not delayed any more: the worker runs it; meanwhile (pending, processing
    // or completed) it cannot be retried again.
    await rejectsWith(c.retryJob(made.id), 409, "invalid_state");
    assert.equal((await c.waitForJob(made.id, { timeout: 30_000, interval: 50 })).status, "completed");
  });

  it("an unknown id: 404 not_found", async () => {
    await rejectsWith(client().cancelJob(randomUUID()), 404, "not_found");
    await rejectsWith(client().retryJob(randomUUID()), 404, "not_found");
  });
});

describe("stats", () => {
  it("has counts by status that add up to the total", async () => {
    const c = client();
    await c.createJob({ type: "noop", delay_seconds: LATER });
    const stats = await c.stats();
    const statuses = ["pending", "processing", "completed", "failed", "cancelled"];
    for (const s of statuses) assert.ok(Number.isInteger(stats.by_status[s]) && stats.by_status[s] >= 0, s);
    assert.ok(stats.by_status.pending >= 1);
    assert.equal(statuses.reduce((sum, s) => sum + stats.by_status[s], 0), stats.total);
    assert.ok(["healthy", "degraded", "unhealthy"].includes(stats.health));
    assert.ok(Array.isArray(stats.health_reasons));
  });
});

describe("waitForJob", () => {
  it("resolves with the completed job once the worker ran it", async () => {
    const c = client();
    const made = await c.createJob({ type: "noop", payload: { wait: true } });
    const done = await c.waitForJob(made.id, { timeout: 30_000, interval: 100 });
    assert.equal(done.id, made.id);
    assert.equal(done.status, "completed");
    assert.ok(TERMINAL_STATUSES.includes(done.status));
    assert.ok(done.completed_at);
  });

  it("polls a running job until it completes (a 400 ms sleep job)", async () => {
    const f = recordingFetch();
    const c = client({ fetch: f });
    const made = await c.createJob({ type: "sleep", payload: { ms: 400 } });
    const done = await c.waitForJob(made.id, { timeout: 30_000, interval: 50 });
    assert.equal(done.status, "completed");
    const polls = f.calls.filter((call) => call.method === "GET");
    assert.ok(polls.length >= 3, `${polls.length} polls`);
    assert.ok(polls.every((call) => call.url.endsWith(`/v1/jobs/${made.id}`) && call.status === 200));
  });

  it("resolves at once for a cancelled job", async () => {
    const c = client();
    const made = await c.createJob({ type: "noop", delay_seconds: LATER });
    await c.cancelJob(made.id);
    assert.equal((await c.waitForJob(made.id, { timeout: 1_000 })).status, "cancelled");
  });

  it("a job that never runs: JoblineTimeoutError after the timeout, with the job as last seen", async () => {
    const c = client();
    const made = await c.createJob({ type: "noop", delay_seconds: LATER });
    const started = Date.now();
    await assert.rejects(c.waitForJob(made.id, { timeout: 600, interval: 100 }), (err) => {
      assert.ok(err instanceof JoblineTimeoutError, String(err));
      assert.equal(err.name, "JoblineTimeoutError");
      assert.equal(err.jobId, made.id);
      assert.equal(err.timeoutMs, 600);
      assert.equal(err.lastJob.status, "pending");
      return true;
    });
    const took = Date.now() - started;
    assert.ok(took >= 600 && took < 10_000, `gave up after ${took} ms`);
    await c.cancelJob(made.id);
  });

  it("an aborted signal stops the wait", async () => {
    const c = client();
    const made = await c.createJob({ type: "noop", delay_seconds: LATER });
    const controller = new AbortController();
    const waiting = c.waitForJob(made.id, { timeout: 60_000, interval: 5_000, signal: controller.signal });
    controller.abort(new Error("stop"));
    await assert.rejects(waiting, /stop/);
    await c.cancelJob(made.id);
  });
});

describe("without a global Web Crypto", () => {
  it("the randomUUID option makes the keys", async () => {
    const f = recordingFetch();
    const key = `mine-${randomUUID()}`;
    const job = await client({ fetch: f, randomUUID: () => key }).createJob({ type: "noop", delay_seconds: LATER });
    assert.equal(f.calls[0].key, key);
    assert.equal(job.idempotency_key, key);
  });

  it("without the option: a TypeError that says what to do, before any request", async () => {
    const saved = Object.getOwnPropertyDescriptor(globalThis, "crypto");
    Object.defineProperty(globalThis, "crypto", { value: undefined, configurable: true, writable: true });
    try {
      const f = recordingFetch();
      const c = createClient({ baseUrl: BASE_URL, apiKey: "k", fetch: f });
      await assert.rejects(c.createJob({ type: "noop" }), (err) => err instanceof TypeError && /randomUUID option/.test(err.message));
      assert.equal(f.calls.length, 0);
    } finally {
      if (saved) Object.defineProperty(globalThis, "crypto", saved);
      else delete globalThis.crypto;
    }
  });
});

describe("the library's source", () => {
  it("uses no Node built-in (edge runtimes have none)", () => {
    const source = readFileSync(new URL("../src/index.ts", import.meta.url), "utf8");
    for (const banned of [/from\s+["']node:/, /from\s+["'](fs|path|crypto|http|https|stream|buffer|os|url|util)["']/, /\brequire\(/, /\bprocess\./, /\bBuffer\b/]) {
      assert.doesNotMatch(source, banned);
    }
  });
});
