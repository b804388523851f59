// Shared by the tests: the server under test comes from the environment
// (scripts/test-client-ts starts `jobline serve` and `jobline worker`).
import { randomUUID } from "node:crypto";

import { createClient } from "../dist/index.js";

export const BASE_URL = process.env.JOBLINE_URL;
export const API_KEY = process.env.JOBLINE_API_KEY;
if (!BASE_URL || !API_KEY) {
  throw new Error("JOBLINE_URL and JOBLINE_API_KEY must be set (scripts/test-client-ts sets them)");
}

/** Node 18 has no global Web Crypto: there the client gets node:crypto's randomUUID (its option). */
export const NO_WEB_CRYPTO = typeof globalThis.crypto?.randomUUID !== "function";

/** A client of the real server; `options` override (fetch, retries, ...). */
export function client(options = {}) {
  return createClient({
    baseUrl: BASE_URL,
    apiKey: API_KEY,
    retryBaseMs: 20,
    ...(NO_WEB_CRYPTO ? { randomUUID } : {}),
    ...options,
  });
}

export { randomUUID };

/** A fresh id to tell this test's jobs from every other's (correlation_id). */
export function tag(what) {
  return `ts-${what}-${randomUUID()}`;
}

/** A fetch that records each call (its Idempotency-Key, method, url) and each answer's status. */
export function recordingFetch(inner = fetch) {
  const calls = [];
  const recorder = async (input, init = {}) => {
    const call = { url: String(input), method: init.method ?? "GET", key: new Headers(init.headers).get("Idempotency-Key"), status: undefined };
    calls.push(call);
    const res = await inner(input, init);
    call.status = res.status;
    return res;
  };
  recorder.calls = calls;
  return recorder;
}

/** Every job of a correlation id, through the raw API (not the client under test). */
export async function jobsOf(correlationId) {
  const res = await fetch(`${BASE_URL}/v1/jobs?correlation_id=${encodeURIComponent(correlationId)}&limit=500`, {
    headers: { Authorization: `Bearer ${API_KEY}` },
  });
  if (res.status !== 200) throw new Error(`GET /v1/jobs answered ${res.status}: ${await res.text()}`);
  return (await res.json()).jobs;
}

/** An hour from now: a job the worker will not touch during the tests. */
export const LATER = 3600;
