// The Next.js route handler example (examples/next-story-script/route.ts,
// compiled into .build/ by `npm test`), called as Next.js would call it.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { webcrypto } from "node:crypto";

import { NO_WEB_CRYPTO, client, randomUUID } from "./helpers.mjs";

// The route uses the global Web Crypto (randomUUID, subtle.digest), as on the
// edge and on Node 19+; on Node 18 it is lent here, as a host app would.
if (NO_WEB_CRYPTO) globalThis.crypto = webcrypto;
// The route's client is made at import, with the JOBLINE_URL and
// JOBLINE_API_KEY the test script sets.
const { POST } = await import("../.build/examples/next-story-script/route.js");

const post = (body, headers = {}) =>
  POST(
    new Request("http://app.example/api/generation/story-script", {
      method: "POST",
      headers: { "Content-Type": "application/json", ...headers },
      body: typeof body === "string" ? body : JSON.stringify(body),
    }),
  );

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe("the story-script route handler example", () => {
  it("answers 202 with the story id and a story_script job correlated to it", async () => {
    const res = await post({ theme: "a lighthouse keeper's cat", tone: "cosy", ageRange: "4-6" });
    assert.equal(res.status, 202);
    const body = await res.json();
    assert.equal(body.ok, true);
    assert.match(body.storyId, UUID);
    assert.equal(body.jobIds.length, 1);
    const job = await client().getJob(body.jobIds[0]);
    assert.equal(job.type, "story_script");
    assert.equal(job.correlation_id, body.storyId);
    assert.deepEqual(job.payload, { theme: "a lighthouse keeper's cat", tone: "cosy", ageRange: "4-6", storyId: body.storyId });
  });

  it("forwards the Idempotency-Key: the same request twice is the same story and job", async () => {
    const key = `story-${randomUUID()}`;
    const first = await (await post({ theme: "dragons" }, { "Idempotency-Key": key })).json();
    const res = await post({ theme: "dragons" }, { "Idempotency-Key": key });
    assert.equal(res.status, 202);
    const second = await res.json();
    assert.equal(second.storyId, first.storyId);
    assert.deepEqual(second.jobIds, first.jobIds);
    assert.equal((await client().getJob(first.jobIds[0])).idempotency_key, key);
  });

  it("the key reused for another theme: 409 idempotency_conflict from jobline", async () => {
    const key = `story-${randomUUID()}`;
    assert.equal((await post({ theme: "ships" }, { "Idempotency-Key": key })).status, 202);
    const res = await post({ theme: "trains" }, { "Idempotency-Key": key });
    assert.equal(res.status, 409);
    assert.equal((await res.json()).error.code, "idempotency_conflict");
  });

  it("refuses bad input before enqueueing anything", async () => {
    for (const [body, status] of [
      ["{not json", 400],
      [{}, 422],
      [{ theme: "" }, 422],
      [{ theme: 7 }, 422],
      [{ theme: "x", colour: "red" }, 422],
      [{ theme: "x".repeat(501) }, 422],
    ]) {
      const res = await post(body);
      assert.equal(res.status, status, JSON.stringify(body));
      assert.ok((await res.json()).error.code);
    }
  });
});
