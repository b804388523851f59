//! `jobline-bench dashboard`: every dashboard page's server time over a
//! million jobs.
//!
//! 1. Loads `--jobs` jobs of the operators' tenant (`default`) in
//!    transactions of 100,000: 70% completed, 10% failed, 10% pending, 5%
//!    processing, 5% cancelled, over three types and the last 24 hours, each
//!    with its `created` event (the triggers keep `job_counts`), plus a few
//!    dead-lettered outbox rows, three jobs of a rare type older than all
//!    the rest, a live worker that declares its types, and one job whose
//!    payload indents to megabytes; folds `job_counts` as the sweeper does;
//!    then `VACUUM ANALYZE`s.
//! 2. Logs in as a real admin key of that tenant (a session row, as the
//!    login page makes) and renders each page in-process through the whole
//!    router (`tower::ServiceExt::oneshot`: the handler, its store calls
//!    and the HTML), `--calls` times each after one warm-up call.
//!
//! Prints p50/p99 per page, in ms, and the slowest p99.

use std::time::Instant;

use anyhow::Context as _;
use axum::body::Body;
use jobline::Config;
use serde_json::{Map, Value, json};
use tower::ServiceExt as _;

use crate::stats::percentile;

#[derive(Debug, clap::Args)]
pub struct DashboardArgs {
    /// Jobs to load.
    #[arg(long, default_value_t = 1_000_000)]
    jobs: u64,
    /// Renders timed per page.
    #[arg(long, default_value_t = 30)]
    calls: usize,
}

const LOAD_CHUNK: u64 = 100_000;

/// `$1` how many, `$2` how many before (ids and times stay distinct). Job
/// `g` gets status by `g % 20`, type by `g % 3`, a correlation id per 10.
const LOAD: &str = "
WITH s AS (
    SELECT g + $2::bigint AS g,
           -- spread over the last 24 hours (86,399 and 86,400,000 share no factor)
           now() - (((g + $2::bigint) * 86399) % 86400000) * interval '1 ms' AS t
    FROM generate_series(1, $1::bigint) AS g
),
j AS (
    INSERT INTO jobs (id, tenant_id, job_type, status, priority, payload, max_attempts, attempts,
                      correlation_id, run_after, created_at, updated_at, started_at, completed_at,
                      heartbeat_at, locked_at, locked_by, stage, progress, error_code, failure_reason, result)
    SELECT gen_random_uuid(), 'default', (ARRAY['render', 'ingest', 'notify'])[1 + g % 3],
           st::job_status, (g % 4)::smallint, jsonb_build_object('n', g), 5,
           CASE WHEN st = 'pending' THEN 0 ELSE 1 END,
           'story-' || (g / 10), t, t, t,
           CASE WHEN st = 'pending' THEN NULL ELSE t END,
           CASE WHEN st IN ('completed', 'failed', 'cancelled') THEN t + interval '20 ms' END,
           CASE WHEN st = 'processing' THEN t END,
           CASE WHEN st = 'processing' THEN t END,
           CASE WHEN st = 'processing' THEN 'bench-worker' END,
           CASE WHEN st = 'processing' THEN 'rendering' END,
           CASE WHEN st = 'processing' THEN (g % 100)::real END,
           CASE WHEN st = 'failed' THEN 'BENCH' END,
           CASE WHEN st = 'failed' THEN 'failed for the bench' END,
           CASE WHEN st = 'completed' THEN '{\"ok\": true}'::jsonb END
    FROM (SELECT s.*, CASE WHEN g % 20 < 14 THEN 'completed' WHEN g % 20 < 16 THEN 'failed'
                           WHEN g % 20 < 18 THEN 'pending' WHEN g % 20 < 19 THEN 'processing'
                           ELSE 'cancelled' END AS st
          FROM s) AS x
    RETURNING id, created_at
)
INSERT INTO job_events (job_id, event, to_status, attempt, actor, at)
SELECT id, 'created', 'pending', 0, 'bench', created_at FROM j";

const DEAD_OUTBOX: &str = "
INSERT INTO outbox (job_id, tenant_id, queue, message, status, attempts, last_error, created_at, updated_at)
SELECT id, tenant_id, 'generation_jobs', '{}', 'dead_letter', 10, 'bench: broker down', now(), now()
FROM jobs WHERE tenant_id = 'default' AND status = 'failed'
ORDER BY created_at DESC LIMIT 20";

/// The costs a busy tenant's pages must not follow: three pending jobs of a
/// rare type, the oldest of all (a type filter must not read the whole
/// range to find them), and a live worker that declares the types it
/// serves, not `notify` (the health's unserved types are then computed,
/// not skipped).
const RARE_AND_SERVED: &str = "
INSERT INTO jobs (id, tenant_id, job_type, status, priority, payload, max_attempts, attempts,
                  run_after, created_at, updated_at)
SELECT gen_random_uuid(), 'default', 'rare', 'pending', 2, '{}', 5, 0, t, t, t
FROM (SELECT now() - interval '25 hours' + g * interval '1 s' AS t FROM generate_series(1, 3) AS g) AS s;
INSERT INTO workers (id, host, version, queue, concurrency, started_at, last_seen_at, job_types)
VALUES ('bench-worker', 'bench', 'bench', 'generation_jobs', 16, now(), now() + interval '1 day',
        ARRAY['render', 'ingest', 'rare'])";

/// A payload at the API's limit that indents to megabytes: 60 levels
/// around 60,000 small numbers (the job page shows its first 64 KiB).
fn huge_payload() -> Value {
    let mut v = Value::from(vec![7; 60_000]);
    for _ in 0..60 {
        v = json!({ "n": v });
    }
    v
}

pub async fn run(config: &Config, args: DashboardArgs) -> anyhow::Result<()> {
    let store = jobline::connect(config)?;
    let client = store.pool().get().await.context("connect")?;
    let loaded = Instant::now();
    let mut done = 0;
    while done < args.jobs {
        let n = LOAD_CHUNK.min(args.jobs - done);
        let (n_i, done_i) = (i64::try_from(n)?, i64::try_from(done)?);
        client.execute(LOAD, &[&n_i, &done_i]).await.context("load")?;
        done += n;
        eprintln!("dashboard: loaded {done} of {} jobs", args.jobs);
    }
    client.execute(DEAD_OUTBOX, &[]).await.context("outbox")?;
    client
        .batch_execute(RARE_AND_SERVED)
        .await
        .context("rare jobs, a worker")?;
    // Back-dated inserts leave a row of `job_counts` per minute of the day;
    // the sweeper folds them every minute (at most 60 minutes + 24 hours
    // per key): fold them as it would.
    for _ in 0..5 {
        if store.compact_job_counts().await? == 0 {
            break;
        }
    }
    client
        .batch_execute("VACUUM ANALYZE jobs, job_events, outbox, job_counts")
        .await?;
    let load_s = loaded.elapsed().as_secs_f64();

    // A real login's session, for a real admin key of the tenant.
    let key = store
        .create_api_key("default", &["admin".to_owned()], Some("bench-dashboard"))
        .await?;
    let principal = store
        .authenticate(&key.key)
        .await?
        .context("the new key authenticates")?;
    let session = store.create_session(&principal, None).await?;
    let cookie = format!("{}={}", jobline::http::dashboard::SESSION_COOKIE, session.token);
    // A small tenant beside the big one: its pages must cost its own jobs,
    // not the big tenant's backlog (the oldest-pending probe, the lists).
    let small_key = store
        .create_api_key("small", &["admin".to_owned()], Some("bench-dashboard-small"))
        .await?;
    let small = store
        .authenticate(&small_key.key)
        .await?
        .context("the small tenant's key authenticates")?;
    let small_cookie = format!(
        "{}={}",
        jobline::http::dashboard::SESSION_COOKIE,
        store.create_session(&small, None).await?.token
    );

    let state = jobline::app::state_with(config, store.clone(), "bench-dashboard").await?;
    let router = jobline::http::router(state);
    let first = |status: &str| {
        let client = &client;
        let status = status.to_owned();
        async move {
            let row = client
                .query_one(
                    "SELECT id::text FROM jobs WHERE tenant_id = 'default' AND status = $1::text::job_status \
                     ORDER BY created_at DESC LIMIT 1",
                    &[&status],
                )
                .await?;
            anyhow::Ok(row.get::<_, String>(0))
        }
    };
    let failed_id = first("failed").await?;
    let completed_id = first("completed").await?;
    let huge_id = first("pending").await?;
    client
        .execute(
            "UPDATE jobs SET payload = $2 WHERE id = $1::text::uuid",
            &[&huge_id, &huge_payload()],
        )
        .await
        .context("huge payload")?;
    // The second page of the list: the first page's last job is its cursor.
    let list_page = render(&router, &cookie, "/dashboard/jobs").await?;
    let cursor = list_page
        .split("cursor=")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .context("the jobs page links a next page")?
        .to_owned();

    let mut pages: Vec<(&str, String)> = vec![
        ("overview", "/dashboard".into()),
        ("overview_one_type", "/dashboard?type=render".into()),
        ("jobs", "/dashboard/jobs".into()),
        ("jobs_next_page", format!("/dashboard/jobs?cursor={cursor}")),
        ("jobs_failed", "/dashboard/jobs?status=failed".into()),
        ("jobs_type", "/dashboard/jobs?type=ingest".into()),
        ("jobs_rare_type", "/dashboard/jobs?type=rare".into()),
        (
            "jobs_rare_type_failed",
            "/dashboard/jobs?status=failed&type=rare".into(),
        ),
        (
            "jobs_correlation",
            "/dashboard/jobs?correlation_id=story-4242".into(),
        ),
        ("job_completed", format!("/dashboard/jobs/{completed_id}")),
        ("job_failed", format!("/dashboard/jobs/{failed_id}")),
        ("job_huge_payload", format!("/dashboard/jobs/{huge_id}")),
        ("go_to_job", format!("/dashboard/jobs/go?id={failed_id}")),
        ("running", "/dashboard/running".into()),
        ("dead_letter", "/dashboard/dead-letter".into()),
        ("workers", "/dashboard/workers".into()),
    ];
    let mut out = Map::new();
    let mut worst: f64 = 0.0;
    let big_tenant = pages.len();
    pages.extend([
        ("small_tenant_overview", "/dashboard".to_owned()),
        ("small_tenant_jobs_type", "/dashboard/jobs?type=render".to_owned()),
        ("small_tenant_running", "/dashboard/running".to_owned()),
    ]);
    for (i, (name, path)) in pages.iter().enumerate() {
        let cookie = if i < big_tenant { &cookie } else { &small_cookie };
        render(&router, cookie, path).await?; // warm: the pool's connection, the plans
        let mut ms = Vec::with_capacity(args.calls);
        for _ in 0..args.calls {
            let t = Instant::now();
            render(&router, cookie, path).await?;
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        ms.sort_by(f64::total_cmp);
        let (p50, p99) = (percentile(&ms, 0.5), percentile(&ms, 0.99));
        worst = worst.max(p99);
        eprintln!("dashboard: {name:<18} p50 {p50:7.2} ms  p99 {p99:7.2} ms  ({path})");
        out.insert(format!("{name}_p50_ms"), json!(p50));
        out.insert(format!("{name}_p99_ms"), json!(p99));
    }
    out.insert("jobs".into(), json!(args.jobs));
    out.insert("load_seconds".into(), json!(load_s));
    out.insert("calls_per_page".into(), json!(args.calls));
    out.insert("slowest_p99_ms".into(), json!(worst));
    println!("{}", Value::Object(out));
    Ok(())
}

/// One page through the router: its body (a 200, or the 303 of `go`).
async fn render(router: &axum::Router, cookie: &str, path: &str) -> anyhow::Result<String> {
    let request = axum::http::Request::get(path)
        .header("cookie", cookie)
        .body(Body::empty())?;
    let response = router.clone().oneshot(request).await?;
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 16 * 1024 * 1024).await?;
    let body = String::from_utf8_lossy(&bytes).into_owned();
    anyhow::ensure!(
        status.is_success() || status.is_redirection() && path.contains("/go?"),
        "{path}: {status}: {}",
        body.chars().take(300).collect::<String>()
    );
    Ok(body)
}
