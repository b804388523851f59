/**
 * @jobline/client: a thin, fetch-only client for the jobline HTTP API.
 *
 * Every request and response type comes from `schema.d.ts`, which
 * openapi-typescript generates from the API's `openapi.json` (CI fails when
 * the two drift). Only Web APIs are used (fetch, AbortController,
 * crypto.randomUUID, setTimeout), so it runs on Node 18+, in Next.js route
 * handlers and in edge runtimes alike.
 */
import type { components, operations, paths } from "./schema.js";

export type { components, operations, paths };

type Schemas = components["schemas"];
type Json<R> = R extends { content: { "application/json": infer T } } ? T : never;

export type Job = Schemas["Job"];
export type JobStatus = Schemas["JobStatus"];
export type CreateJobRequest = Schemas["CreateJob"];
export type CreatedJob = Json<paths["/v1/jobs"]["post"]["responses"][201]>;
export type CreatedJobs = Json<paths["/v1/jobs/batch"]["post"]["responses"][201]>;
export type JobList = Json<paths["/v1/jobs"]["get"]["responses"][200]>;
export type ListJobsQuery = NonNullable<paths["/v1/jobs"]["get"]["parameters"]["query"]>;
export type RetryJobRequest = Schemas["RetryJob"];
export type Stats = Json<paths["/v1/stats"]["get"]["responses"][200]>;
/** The body of every non-2xx answer: `{"error": {"code", "message"}}`. */
export type ApiErrorBody = Schemas["Error"];
export type ErrorCode = ApiErrorBody["error"]["code"];

/** `completed`, `failed` and `cancelled`: a job in one of these never changes again by itself. */
export const TERMINAL_STATUSES: readonly JobStatus[] = ["completed", "failed", "cancelled"];

export function isTerminal(status: JobStatus): boolean {
  return TERMINAL_STATUSES.includes(status);
}

/** A non-2xx answer of the API. `code` is the API's stable error code. */
export class JoblineError extends Error {
  override readonly name = "JoblineError";
  /** The HTTP status, e.g. 409. */
  readonly status: number;
  /**
   * The API's `error.code`, e.g. `idempotency_conflict`; `http_<status>` when
   * the body was not the API's error JSON (a proxy's page, say).
   */
  readonly code: ErrorCode | (string & {});
  /** The `Retry-After` header in milliseconds, when the answer had one. */
  readonly retryAfterMs: number | undefined;

  constructor(status: number, code: string, message: string, retryAfterMs?: number) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfterMs = retryAfterMs;
  }
}

/** `waitForJob` gave up: the job was not in a terminal status within `timeoutMs`. */
export class JoblineTimeoutError extends Error {
  override readonly name = "JoblineTimeoutError";
  readonly jobId: string;
  readonly timeoutMs: number;
  /** The job as last seen, still not terminal. */
  readonly lastJob: Job;

  constructor(jobId: string, timeoutMs: number, lastJob: Job) {
    super(`job ${jobId} is still ${lastJob.status} after ${timeoutMs} ms`);
    this.jobId = jobId;
    this.timeoutMs = timeoutMs;
    this.lastJob = lastJob;
  }
}

export interface JoblineClientOptions {
  /** Where the API is, e.g. `https://jobs.example.com` (a path prefix is kept). */
  baseUrl: string;
  /** Sent as `Authorization: Bearer <apiKey>`. */
  apiKey: string;
  /** A fetch to use instead of the global one (tests, instrumentation). */
  fetch?: (input: string, init: RequestInit) => Promise<Response>;
  /** Retries after the first attempt of a safe request (creates, reads). Default 3. */
  retries?: number;
  /** Each attempt is aborted after this many ms (0: never). Default 30000. */
  timeoutMs?: number;
  /** First backoff delay; it doubles per retry, with jitter. Default 250. */
  retryBaseMs?: number;
  /** Longest wait between attempts; a larger `Retry-After` is not waited for. Default 10000. */
  retryMaxMs?: number;
  /**
   * Makes the idempotency keys the client picks. Default: the global Web
   * Crypto's `crypto.randomUUID()`. Node 18 has no global `crypto` unless
   * run with --experimental-global-webcrypto: pass `randomUUID` from
   * "node:crypto" there.
   */
  randomUUID?: () => string;
}

export interface RequestOptions {
  /** Aborts the call, retries and waits included. */
  signal?: AbortSignal;
}

export interface CreateJobOptions extends RequestOptions {
  /** Defaults to the body's `idempotency_key`, else a fresh `crypto.randomUUID()`. */
  idempotencyKey?: string;
}

export interface WaitForJobOptions extends RequestOptions {
  /** Give up after this many ms. Default 60000. */
  timeout?: number;
  /** Poll every this many ms. Default 1000. */
  interval?: number;
}

interface Call extends RequestOptions {
  query?: Record<string, string | number | undefined>;
  body?: unknown;
  headers?: Record<string, string>;
  /** Safe to send again: a create with an idempotency key, or a read. */
  retry?: boolean;
}

/** Answers worth another attempt of a safe request. */
const RETRY_STATUSES = new Set([408, 429, 503]);

export class JoblineClient {
  readonly #base: string;
  readonly #apiKey: string;
  readonly #fetch: (input: string, init: RequestInit) => Promise<Response>;
  readonly #retries: number;
  readonly #timeoutMs: number;
  readonly #retryBaseMs: number;
  readonly #retryMaxMs: number;
  readonly #randomUUID: () => string;

  constructor(options: JoblineClientOptions) {
    if (!options.baseUrl) throw new TypeError("JoblineClient: baseUrl is required");
    if (!options.apiKey) throw new TypeError("JoblineClient: apiKey is required");
    this.#base = options.baseUrl.replace(/\/+$/, "");
    this.#apiKey = options.apiKey;
    const custom = options.fetch;
    // Called as plain functions: some runtimes refuse a fetch called on another `this`.
    this.#fetch = custom ? (input, init) => custom(input, init) : (input, init) => fetch(input, init);
    this.#retries = options.retries ?? 3;
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#retryBaseMs = options.retryBaseMs ?? 250;
    this.#retryMaxMs = options.retryMaxMs ?? 10_000;
    this.#randomUUID = options.randomUUID ?? webCryptoUUID;
  }

  /**
   * POST /v1/jobs. Always sends an `Idempotency-Key`, so network errors, 408,
   * 429 and 503 are retried with the same key and cannot make two jobs.
   * Resolves with `already_existed: true` when the key already named a job
   * created with the same body; a different body rejects with 409
   * `idempotency_conflict`.
   */
  async createJob(job: CreateJobRequest, options: CreateJobOptions = {}): Promise<CreatedJob> {
    const key = options.idempotencyKey ?? job.idempotency_key ?? this.#randomUUID();
    return this.#request<CreatedJob>("POST", "/v1/jobs", {
      body: job,
      headers: { "Idempotency-Key": key },
      retry: true,
      signal: options.signal,
    });
  }

  /**
   * POST /v1/jobs/batch: 1 to 100 jobs, all created or none. An item without
   * `idempotency_key` gets a fresh UUID, so the batch is retried like createJob.
   * Resolves with the jobs in input order.
   */
  async createJobs(jobs: CreateJobRequest[], options: RequestOptions = {}): Promise<CreatedJob[]> {
    const body: Schemas["CreateJobsBatch"] = {
      jobs: jobs.map((job) => (job.idempotency_key ? job : { ...job, idempotency_key: this.#randomUUID() })),
    };
    const created = await this.#request<CreatedJobs>("POST", "/v1/jobs/batch", { body, retry: true, signal: options.signal });
    return created.jobs;
  }

  /** GET /v1/jobs/{id}. An unknown id rejects with 404 `not_found`. */
  async getJob(id: string, options: RequestOptions = {}): Promise<Job> {
    return this.#request<Job>("GET", `/v1/jobs/${encodeURIComponent(id)}`, { retry: true, signal: options.signal });
  }

  /**
   * GET /v1/jobs, newest first, following `next_cursor` page after page:
   * `for await (const job of client.listJobs({ status: "failed" }))`.
   * `limit` is the page size; stop iterating to stop fetching.
   */
  async *listJobs(query: Omit<ListJobsQuery, "cursor"> = {}, options: RequestOptions = {}): AsyncGenerator<Job, void, undefined> {
    let cursor: string | undefined;
    do {
      const page: JobList = await this.#request<JobList>("GET", "/v1/jobs", {
        query: { ...query, cursor },
        retry: true,
        signal: options.signal,
      });
      yield* page.jobs;
      cursor = page.next_cursor ?? undefined;
    } while (cursor);
  }

  /**
   * Polls GET /v1/jobs/{id} every `interval` ms until the job is completed,
   * failed or cancelled, and resolves with it; rejects with
   * JoblineTimeoutError after `timeout` ms.
   */
  async waitForJob(id: string, options: WaitForJobOptions = {}): Promise<Job> {
    const { timeout = 60_000, interval = 1_000, signal } = options;
    const deadline = Date.now() + timeout;
    for (;;) {
      const job = await this.getJob(id, { signal });
      if (isTerminal(job.status)) return job;
      const left = deadline - Date.now();
      if (left <= 0) throw new JoblineTimeoutError(id, timeout, job);
      await sleep(Math.min(interval, left), signal);
    }
  }

  /** POST /v1/jobs/{id}/cancel (scope `admin`). A terminal job rejects with 409 `invalid_state`. Not retried. */
  async cancelJob(id: string, options: RequestOptions = {}): Promise<Job> {
    return this.#request<Job>("POST", `/v1/jobs/${encodeURIComponent(id)}/cancel`, { signal: options.signal });
  }

  /**
   * POST /v1/jobs/{id}/retry (scope `admin`): a failed or cancelled job back
   * to pending, with `max_attempts` extra attempts when given. Not retried.
   */
  async retryJob(id: string, body: RetryJobRequest = {}, options: RequestOptions = {}): Promise<Job> {
    return this.#request<Job>("POST", `/v1/jobs/${encodeURIComponent(id)}/retry`, { body, signal: options.signal });
  }

  /** GET /v1/stats (scope `admin`): counts by status, dead letter, latency, health. */
  async stats(options: RequestOptions = {}): Promise<Stats> {
    return this.#request<Stats>("GET", "/v1/stats", { retry: true, signal: options.signal });
  }

  async #request<T>(method: "GET" | "POST", path: string, call: Call): Promise<T> {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(call.query ?? {})) {
      if (value !== undefined) params.set(name, String(value));
    }
    const qs = params.toString(); // not params.size: Node 18 lacks it
    const url = `${this.#base}${path}${qs ? `?${qs}` : ""}`;
    const headers: Record<string, string> = {
      Accept: "application/json",
      Authorization: `Bearer ${this.#apiKey}`,
      ...call.headers,
    };
    let body: string | undefined;
    if (call.body !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(call.body);
    }
    for (let attempt = 0; ; attempt++) {
      const retriesLeft = call.retry === true && attempt < this.#retries;
      const limit = deadlineSignal(this.#timeoutMs, call.signal);
      let res: Response;
      let text: string;
      try {
        res = await this.#fetch(url, { method, headers, body, signal: limit.signal });
        text = await res.text();
      } catch (err) {
        // A network error or this attempt's timeout; the caller's abort ends it all.
        if (call.signal?.aborted || !retriesLeft) throw err;
        await sleep(this.#backoff(attempt), call.signal);
        continue;
      } finally {
        limit.clear();
      }
      if (res.ok) return (text ? JSON.parse(text) : undefined) as T;
      const error = toError(res, text);
      if (retriesLeft && RETRY_STATUSES.has(res.status) && (error.retryAfterMs ?? 0) <= this.#retryMaxMs) {
        await sleep(error.retryAfterMs ?? this.#backoff(attempt), call.signal);
        continue;
      }
      throw error;
    }
  }

  /** Exponential backoff with equal jitter: half the step, plus up to the other half at random. */
  #backoff(attempt: number): number {
    const step = Math.min(this.#retryMaxMs, this.#retryBaseMs * 2 ** attempt);
    return step / 2 + Math.random() * (step / 2);
  }
}

/** Same as `new JoblineClient(options)`. */
export function createClient(options: JoblineClientOptions): JoblineClient {
  return new JoblineClient(options);
}

function webCryptoUUID(): string {
  const webCrypto = (globalThis as { crypto?: Crypto }).crypto;
  if (typeof webCrypto?.randomUUID !== "function") {
    throw new TypeError(
      "JoblineClient: no global crypto.randomUUID (Node 18?): pass the randomUUID option, e.g. randomUUID from node:crypto, or an idempotencyKey",
    );
  }
  return webCrypto.randomUUID();
}

function toError(res: Response, text: string): JoblineError {
  let code = `http_${res.status}`;
  let message = text.slice(0, 500) || res.statusText || `HTTP ${res.status}`;
  try {
    const parsed = JSON.parse(text) as Partial<ApiErrorBody> | null;
    if (parsed?.error && typeof parsed.error.code === "string") {
      code = parsed.error.code;
      message = typeof parsed.error.message === "string" ? parsed.error.message : message;
    }
  } catch {
    // Not the API's JSON: keep the status-based code and the raw text.
  }
  return new JoblineError(res.status, code, message, retryAfterMs(res.headers.get("Retry-After")));
}

/** `Retry-After` as seconds or an HTTP date, in ms from now. */
function retryAfterMs(value: string | null): number | undefined {
  if (value === null || value.trim() === "") return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/** A signal that aborts after `ms` (0: never) or when `outer` does; `clear` releases both. */
function deadlineSignal(ms: number, outer: AbortSignal | undefined): { signal: AbortSignal; clear: () => void } {
  const controller = new AbortController();
  const onAbort = () => controller.abort(outer?.reason);
  if (outer?.aborted) controller.abort(outer.reason);
  else outer?.addEventListener("abort", onAbort, { once: true });
  const timer =
    ms > 0
      ? setTimeout(() => controller.abort(new DOMException(`the request did not complete within ${ms} ms`, "TimeoutError")), ms)
      : undefined;
  return {
    signal: controller.signal,
    clear: () => {
      clearTimeout(timer);
      outer?.removeEventListener("abort", onAbort);
    },
  };
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
