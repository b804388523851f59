// The peers of scripts/bench: graphile-worker and pg-boss doing what jobline
// does in the same run, on the same Postgres, each in its own schema.
//
//   node peer.mjs --peer graphile|pgboss --mode drain|latency
//                 [--variant tuned|defaults] [--jobs N] [--interval-ms 20]
//
// drain:   drop and migrate the peer's schema (untimed), enqueue N noop jobs
//          with its batch API, 50 per call (timed: enqueue_jobs_per_s), ANALYZE
//          and CHECKPOINT (untimed, as for jobline), then start its worker and
//          time until every job is completed in the database (jobs_per_s).
// latency: start a worker (LISTEN/NOTIFY), add N jobs one at a time at a fixed
//          interval, and report handler start minus the moment just before the
//          add call, p50/p95/p99 in ms.
//
// Prints one JSON object on stdout. DATABASE_URL names the database.

import { parseArgs } from "node:util";
import { performance } from "node:perf_hooks";
import pg from "pg";

const { values: args } = parseArgs({
  options: {
    peer: { type: "string" },
    mode: { type: "string", default: "drain" },
    variant: { type: "string", default: "tuned" },
    jobs: { type: "string", default: "20000" },
    "interval-ms": { type: "string", default: "20" },
  },
});
const url = process.env.DATABASE_URL;
if (!url) throw new Error("DATABASE_URL is not set");
const N = Number(args.jobs);
const INTERVAL = Number(args["interval-ms"]);
const ENQUEUE_BATCH = 50;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function withClient(fn) {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}
const sql = (text, params) => withClient((c) => c.query(text, params));

/** Polls `countSql` until it answers `want` (or throws after `timeoutMs`). */
async function waitForCount(countSql, want, timeoutMs = 300_000) {
  return withClient(async (c) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { rows } = await c.query(countSql);
      if (Number(rows[0].n) === want) return;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${countSql} = ${want} (at ${rows[0].n})`);
      await sleep(5);
    }
  });
}

function summary(latencies) {
  const s = [...latencies].sort((a, b) => a - b);
  const at = (p) => s[Math.min(s.length, Math.max(1, Math.ceil(p * s.length))) - 1];
  return {
    p50_ms: at(0.5),
    p95_ms: at(0.95),
    p99_ms: at(0.99),
    min_ms: s[0],
    max_ms: s[s.length - 1],
    mean_ms: s.reduce((a, b) => a + b, 0) / s.length,
  };
}

/** Creates jobs one at a time on a fixed schedule; `add(i)` adds job i. */
async function probe(add, starts) {
  const created = new Array(N);
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    const wait = t0 + i * INTERVAL - performance.now();
    if (wait > 0) await sleep(wait);
    created[i] = performance.now();
    await add(i);
  }
  const deadline = Date.now() + 30_000;
  while (starts.size < N) {
    if (Date.now() > deadline) throw new Error(`only ${starts.size} of ${N} jobs started`);
    await sleep(10);
  }
  return summary(created.map((t, i) => starts.get(i) - t));
}

// --- graphile-worker -------------------------------------------------------

async function graphile() {
  const { run, runMigrations, makeWorkerUtils, Logger } = await import("graphile-worker");
  const logger = new Logger(() => () => {}); // per-job info logs off, as for jobline (JOBLINE_LOG=warn)
  const schema = "graphile_worker";
  await sql(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await runMigrations({ connectionString: url, logger, schema });
  const options =
    args.variant === "tuned"
      ? {
          // graphile's batching: 500 jobs fetched (and locked) at a time,
          // completions batched.
          concurrency: 24,
          maxPoolSize: 10,
          preset: { worker: { localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 } },
        }
      : { concurrency: 10 };
  if (args.mode === "latency") {
    const starts = new Map();
    const runner = await run({
      connectionString: url,
      logger,
      schema,
      noHandleSignals: true,
      concurrency: 10,
      taskList: {
        noop: async (payload) => {
          starts.set(payload.i, performance.now());
        },
      },
    });
    await sleep(500); // LISTEN established
    const result = await probe((i) => runner.addJob("noop", { i }), starts);
    await runner.stop();
    return { peer: "graphile-worker", mode: "latency", jobs: N, interval_ms: INTERVAL, ...result };
  }
  const utils = await makeWorkerUtils({ connectionString: url, logger, schema });
  const e0 = performance.now();
  for (let i = 0; i < N; i += ENQUEUE_BATCH) {
    const n = Math.min(ENQUEUE_BATCH, N - i);
    await utils.addJobs(Array.from({ length: n }, () => ({ identifier: "noop", payload: {} })));
  }
  const enqueueSeconds = (performance.now() - e0) / 1000;
  await utils.release();
  await sql("ANALYZE");
  await sql("CHECKPOINT");
  let handled = 0;
  let allHandled;
  const handledAll = new Promise((r) => (allHandled = r));
  const t0 = performance.now();
  const runner = await run({
    connectionString: url,
    logger,
    schema,
    noHandleSignals: true,
    ...options,
    taskList: {
      noop: async () => {
        if (++handled === N) allHandled();
      },
    },
  });
  await handledAll;
  await waitForCount(`SELECT count(*) AS n FROM ${schema}._private_jobs`, 0);
  const seconds = (performance.now() - t0) / 1000;
  await runner.stop();
  return {
    peer: "graphile-worker",
    mode: "drain",
    variant: args.variant,
    options: { concurrency: options.concurrency, ...(options.preset?.worker ?? {}) },
    jobs: N,
    enqueue_batch: ENQUEUE_BATCH,
    enqueue_seconds: enqueueSeconds,
    enqueue_jobs_per_s: N / enqueueSeconds,
    seconds,
    jobs_per_s: N / seconds,
  };
}

// --- pg-boss ---------------------------------------------------------------

async function pgboss() {
  const { PgBoss } = await import("pg-boss");
  const schema = "pgboss";
  await sql(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  const latency = args.mode === "latency";
  const boss = new PgBoss({ connectionString: url, schema, useListenNotify: latency });
  boss.on("error", (e) => console.error("pg-boss:", e.message));
  await boss.start();
  const queue = "noop";
  await boss.createQueue(queue, latency ? { notify: true } : {});
  if (latency) {
    const starts = new Map();
    await boss.work(queue, { batchSize: 1 }, async (jobs) => {
      const now = performance.now();
      for (const j of jobs) starts.set(j.data.i, now);
    });
    await sleep(500); // LISTEN established
    const result = await probe((i) => boss.send(queue, { i }), starts);
    await boss.stop({ graceful: false, close: true });
    return { peer: "pg-boss", mode: "latency", jobs: N, interval_ms: INTERVAL, ...result };
  }
  const e0 = performance.now();
  for (let i = 0; i < N; i += ENQUEUE_BATCH) {
    const n = Math.min(ENQUEUE_BATCH, N - i);
    await boss.insert(queue, Array.from({ length: n }, () => ({ data: {} })));
  }
  const enqueueSeconds = (performance.now() - e0) / 1000;
  await sql("ANALYZE");
  await sql("CHECKPOINT");
  let handled = 0;
  let allHandled;
  const handledAll = new Promise((r) => (allHandled = r));
  const workOptions = { batchSize: 50, localConcurrency: 10, burstWhenBatchFull: true, pollingIntervalSeconds: 0.5 };
  const t0 = performance.now();
  await boss.work(queue, workOptions, async (jobs) => {
    handled += jobs.length;
    if (handled >= N) allHandled();
  });
  await handledAll;
  await waitForCount(`SELECT count(*) AS n FROM ${schema}.job WHERE name = '${queue}' AND state = 'completed'`, N);
  const seconds = (performance.now() - t0) / 1000;
  await boss.stop({ graceful: false, close: true });
  return {
    peer: "pg-boss",
    mode: "drain",
    variant: "batch50x10",
    options: workOptions,
    jobs: N,
    enqueue_batch: ENQUEUE_BATCH,
    enqueue_seconds: enqueueSeconds,
    enqueue_jobs_per_s: N / enqueueSeconds,
    seconds,
    jobs_per_s: N / seconds,
  };
}

const peers = { graphile, pgboss };
if (!peers[args.peer]) throw new Error(`--peer must be one of ${Object.keys(peers).join(", ")}`);
const out = await peers[args.peer]();
console.log(JSON.stringify(out));
process.exit(0);
