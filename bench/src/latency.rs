//! `jobline-bench latency`: jobs enqueued one at a time at a fixed interval
//! while a worker runs; reports `started_at - created_at` of each job, read
//! back from the table. `--via api`: created and published as the API's
//! create does; `--via sql`: the SQL API's `enqueue_job` on a connection of
//! its own, committed, so only the worker's relay listener publishes it.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use jobline::{Config, NewJob};
use serde_json::json;
use uuid::Uuid;

use crate::ACTOR;
use crate::stats::percentile;

#[derive(Debug, clap::Args)]
pub struct LatencyArgs {
    /// How many jobs to create.
    #[arg(long, default_value_t = 200)]
    jobs: usize,
    /// Milliseconds between two creates.
    #[arg(long, default_value_t = 20)]
    interval_ms: u64,
    /// Seconds to wait for the last job to start.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    #[arg(long = "type", default_value = "noop")]
    job_type: String,
    #[arg(long, default_value = "default")]
    tenant: String,
    /// `api` (the enqueuer, publishing after commit) or `sql` (enqueue_job).
    #[arg(long, default_value = "api", value_parser = ["api", "sql"])]
    via: String,
}

pub async fn run(config: &Config, args: LatencyArgs) -> anyhow::Result<()> {
    let store = jobline::connect(config)?;
    let queue = jobline::app::queue(config, &store).await?;
    let enqueuer = jobline::app::enqueuer(config, &store, queue, ACTOR);
    // Open the pool's connection before the first timed create.
    store.ping().await?;
    let sql = if args.via == "sql" {
        let url = config.require_database_url()?;
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .context("connecting for enqueue_job")?;
        tokio::spawn(connection);
        Some(client)
    } else {
        None
    };
    let mut ids: Vec<Uuid> = Vec::with_capacity(args.jobs);
    let mut ticker = tokio::time::interval(Duration::from_millis(args.interval_ms.max(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for _ in 0..args.jobs {
        ticker.tick().await;
        let id = match &sql {
            // Committed on its own; the worker's relay listener publishes it.
            Some(client) => client
                .query_one(
                    "SELECT job_id FROM enqueue_job($1, $2, '{}')",
                    &[&args.tenant, &args.job_type],
                )
                .await
                .context("enqueue_job")?
                .get(0),
            // Created and published after commit, as the API's create does.
            None => {
                enqueuer
                    .enqueue(&args.tenant, ACTOR, NewJob::new(args.job_type.clone(), json!({})))
                    .await?
                    .job
                    .id
            }
        };
        ids.push(id);
    }
    let deadline = Instant::now() + Duration::try_from_secs_f64(args.timeout)?;
    let mut latencies_ms = Vec::with_capacity(ids.len());
    for id in &ids {
        loop {
            let job = store.get_any(*id).await?.context("a created job vanished")?;
            if let Some(started) = job.started_at {
                let d = started - job.created_at;
                latencies_ms.push(d.num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0);
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "job {id} had not started after {} s: is a worker running?",
                    args.timeout
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    latencies_ms.sort_by(f64::total_cmp);
    let mean = latencies_ms.iter().sum::<f64>() / latencies_ms.len().max(1) as f64;
    println!(
        "{}",
        json!({
            "jobs": ids.len(),
            "via": args.via,
            "interval_ms": args.interval_ms,
            "p50_ms": percentile(&latencies_ms, 0.50),
            "p95_ms": percentile(&latencies_ms, 0.95),
            "p99_ms": percentile(&latencies_ms, 0.99),
            "min_ms": latencies_ms.first().copied().unwrap_or(0.0),
            "max_ms": latencies_ms.last().copied().unwrap_or(0.0),
            "mean_ms": mean,
        })
    );
    Ok(())
}
