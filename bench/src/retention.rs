//! `jobline-bench retention`: what retention costs and what it spares.
//!
//! 1. Loads `--expired` completed jobs finished eight days ago, each with the
//!    rows a real one leaves (four events, one sent outbox row), in
//!    transactions of 100,000, then `VACUUM ANALYZE`s.
//! 2. Times `Store::stats` (what `GET /v1/stats` runs) for the tenant and for
//!    all tenants over that history.
//! 3. Times claims alone for `--claim-seconds`: one job created, claimed
//!    (the timed statement) and completed at a time, in another tenant.
//! 4. Prunes everything expired (`Store::prune_jobs`, `--batch` per
//!    statement, as the sweeper does) while the same claim loop runs, and
//!    reports rows deleted per second and the claim latency during pruning.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use jobline::store::Retention;
use jobline::{Config, NewJob, Store};
use serde_json::json;

use crate::ACTOR;
use crate::stats::percentile;

#[derive(Debug, clap::Args)]
pub struct RetentionArgs {
    /// Expired completed jobs to load and prune.
    #[arg(long, default_value_t = 1_000_000)]
    expired: u64,
    /// Seconds of claims measured without pruning.
    #[arg(long, default_value_t = 5.0)]
    claim_seconds: f64,
    /// Jobs per pruning statement (the sweeper's `batch`).
    #[arg(long, default_value_t = 500)]
    batch: u32,
    /// Calls of `Store::stats` timed per scope.
    #[arg(long, default_value_t = 30)]
    stats_calls: usize,
}

const LOAD_CHUNK: u64 = 100_000;

/// The history: completed eight days ago, with four events and a sent outbox
/// row each. `$1` how many, `$2` how many loaded before (ages stay distinct).
const LOAD: &str = "
WITH j AS (
    INSERT INTO jobs (id, tenant_id, job_type, status, max_attempts, attempts,
                      created_at, updated_at, started_at, completed_at)
    SELECT gen_random_uuid(), 'history', 'noop', 'completed', 5, 1, t, t, t, t + interval '10 ms'
    FROM (SELECT now() - interval '8 days' - (g + $2::bigint) * interval '1 ms' AS t
          FROM generate_series(1, $1::bigint) AS g) AS s
    RETURNING id, created_at
),
o AS (
    INSERT INTO outbox (job_id, queue, message, status, sent_at, created_at, updated_at)
    SELECT id, 'generation_jobs', '{}', 'sent', created_at, created_at, created_at FROM j
)
INSERT INTO job_events (job_id, event, from_status, to_status, attempt, actor, at)
SELECT j.id, e.event, e.from_status::job_status, e.to_status::job_status, e.attempt, 'bench', j.created_at
FROM j,
     (VALUES ('created', NULL, 'pending', 0), ('published', NULL, NULL, 0),
             ('claimed', 'pending', 'processing', 1), ('completed', 'processing', 'completed', 1))
         AS e (event, from_status, to_status, attempt)";

pub async fn run(config: &Config, args: RetentionArgs) -> anyhow::Result<()> {
    let store = jobline::connect(config)?;
    let client = store.pool().get().await.context("connect")?;
    let rows = |sql: &'static str| {
        let client = &client;
        async move {
            let n: i64 = client.query_one(sql, &[]).await?.get(0);
            anyhow::Ok(n)
        }
    };

    let loaded = Instant::now();
    let mut done = 0;
    while done < args.expired {
        let n = LOAD_CHUNK.min(args.expired - done);
        let (n_i, done_i) = (i64::try_from(n)?, i64::try_from(done)?);
        client.execute(LOAD, &[&n_i, &done_i]).await.context("load")?;
        done += n;
        eprintln!("retention: loaded {done} of {} expired jobs", args.expired);
    }
    client
        .batch_execute("VACUUM ANALYZE jobs, job_events, outbox, job_counts")
        .await?;
    let load_s = loaded.elapsed().as_secs_f64();
    let rows_before = rows("SELECT (SELECT count(*) FROM jobs) + (SELECT count(*) FROM job_events) + (SELECT count(*) FROM outbox)").await?;

    // Stats over the history, for the tenant and for all.
    let mut stats_ms = Vec::new();
    for tenant in [Some("history"), None] {
        store.stats(tenant).await?; // the pool's connection and plan, warm
        let mut ms = Vec::with_capacity(args.stats_calls);
        for _ in 0..args.stats_calls {
            let t = Instant::now();
            let stats = store.stats(tenant).await?;
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
            anyhow::ensure!(
                stats.by_status["completed"] >= i64::try_from(args.expired)?,
                "stats count every completed job"
            );
        }
        ms.sort_by(f64::total_cmp);
        stats_ms.push((percentile(&ms, 0.5), percentile(&ms, 0.99)));
    }

    // Claims alone, then claims while pruning.
    let stop = Arc::new(AtomicBool::new(false));
    let alone = claim_loop(
        store.clone(),
        stop.clone(),
        Some(Duration::try_from_secs_f64(args.claim_seconds)?),
    )
    .await?;

    let claims = tokio::spawn(claim_loop(store.clone(), stop.clone(), None));
    let pruning = Instant::now();
    let mut pruned = 0usize;
    let mut statements = 0u32;
    loop {
        let pass = store.prune_jobs(&Retention::default(), args.batch).await?;
        statements += 1;
        pruned += pass.total();
        if pass.total() < args.batch as usize {
            break;
        }
    }
    let prune_s = pruning.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let during = claims.await??;
    let rows_after = rows("SELECT (SELECT count(*) FROM jobs) + (SELECT count(*) FROM job_events) + (SELECT count(*) FROM outbox)").await?;
    let history_left = rows("SELECT count(*) FROM jobs WHERE tenant_id = 'history'").await?;
    anyhow::ensure!(
        history_left == 0,
        "{history_left} expired jobs left after pruning"
    );
    let deleted_rows = rows_before - rows_after;

    println!(
        "{}",
        json!({
            "expired_jobs": args.expired,
            "load_seconds": load_s,
            "stats_tenant_p50_ms": stats_ms[0].0,
            "stats_tenant_p99_ms": stats_ms[0].1,
            "stats_all_p50_ms": stats_ms[1].0,
            "stats_all_p99_ms": stats_ms[1].1,
            "prune_seconds": prune_s,
            "prune_statements": statements,
            "jobs_deleted": pruned,
            "rows_deleted": deleted_rows,
            "jobs_deleted_per_s": pruned as f64 / prune_s,
            "rows_deleted_per_s": deleted_rows as f64 / prune_s,
            "claims_alone": alone.n,
            "claim_alone_p50_ms": alone.p50,
            "claim_alone_p99_ms": alone.p99,
            "claims_during_pruning": during.n,
            "claim_during_pruning_p50_ms": during.p50,
            "claim_during_pruning_p99_ms": during.p99,
        })
    );
    Ok(())
}

struct ClaimTimes {
    n: usize,
    p50: f64,
    p99: f64,
}

/// Create, claim (timed), complete, one job at a time, until `stop` or `for_`.
async fn claim_loop(
    store: Store,
    stop: Arc<AtomicBool>,
    for_: Option<Duration>,
) -> anyhow::Result<ClaimTimes> {
    let started = Instant::now();
    let mut ms = Vec::new();
    while !stop.load(Ordering::Relaxed) && for_.is_none_or(|d| started.elapsed() < d) {
        store
            .create("live", ACTOR, NewJob::new("noop", json!({})))
            .await?;
        let t = Instant::now();
        let claims = store.claim("bench-retention", 1, None).await?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        for claim in &claims {
            store.complete(claim, None, None).await?;
        }
    }
    ms.sort_by(f64::total_cmp);
    Ok(ClaimTimes {
        n: ms.len(),
        p50: percentile(&ms, 0.5),
        p99: percentile(&ms, 0.99),
    })
}
