//! `jobline-bench enqueue`: a backlog of N jobs, written in batches of one
//! transaction each, `--parallel` batches in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::bail;
use jobline::enqueue::Enqueuer;
use jobline::{Config, NewJob};
use serde_json::json;

use crate::ACTOR;

#[derive(Debug, clap::Args)]
pub struct EnqueueArgs {
    /// How many jobs to create.
    #[arg(long, default_value_t = 20_000)]
    jobs: usize,
    /// Jobs per transaction.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Batches in flight at once.
    #[arg(long, default_value_t = 1)]
    parallel: usize,
    /// Publish each batch after its commit through the configured queue.
    #[arg(long)]
    publish: bool,
    #[arg(long = "type", default_value = "noop")]
    job_type: String,
    #[arg(long, default_value = "default")]
    tenant: String,
}

pub async fn run(config: &Config, args: EnqueueArgs) -> anyhow::Result<()> {
    if args.batch == 0 || args.parallel == 0 {
        bail!("--batch and --parallel must be at least 1");
    }
    let store = jobline::connect(config)?;
    let queue = jobline::app::queue(config, &store).await?;
    let enqueuer = jobline::app::enqueuer(config, &store, queue, ACTOR);
    // Every job of the run has the same type: refuse it once, before anything
    // is written, exactly as the enqueuer would.
    enqueuer.check_type(0, &args.job_type)?;
    let batches = args.jobs.div_ceil(args.batch);
    let next = Arc::new(AtomicUsize::new(0));
    let args = Arc::new(args);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.parallel.min(batches.max(1)) {
        let (enqueuer, next, args) = (enqueuer.clone(), next.clone(), args.clone());
        tasks.spawn(async move {
            let mut published = 0usize;
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= batches {
                    return anyhow::Ok(published);
                }
                let n = args.batch.min(args.jobs - b * args.batch);
                let news = (0..n)
                    .map(|_| NewJob::new(args.job_type.clone(), json!({})))
                    .collect();
                published += write_batch(&enqueuer, &args, news).await?;
            }
        });
    }
    let mut published = 0;
    while let Some(r) = tasks.join_next().await {
        published += r??;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({
            "jobs": args.jobs,
            "batch": args.batch,
            "parallel": args.parallel,
            "published": published,
            "seconds": secs,
            "jobs_per_s": args.jobs as f64 / secs,
        })
    );
    Ok(())
}

/// Writes one batch in one transaction; answers how many messages the queue
/// took for it (0 without `--publish`).
async fn write_batch(enqueuer: &Enqueuer, args: &EnqueueArgs, news: Vec<NewJob>) -> anyhow::Result<usize> {
    // The type was checked once for the whole run (`check_type` in `run`).
    let created = enqueuer.store().create_many(&args.tenant, ACTOR, news).await?;
    if !args.publish {
        // Without --publish the batch is written and deliberately NOT
        // published: this is the backlog the drain benchmark then times a
        // worker on (`jobline worker --once` claims from the table). Publishing
        // it would NOTIFY (or fill a broker with) every message before the
        // worker starts, and time the publish inside the enqueue figure. Its
        // outbox rows stay pending (a relay would publish them later). This is
        // why the store is called here rather than `Enqueuer::enqueue_many`,
        // which always publishes.
        return Ok(0);
    }
    // What `Enqueuer::enqueue_many` does after its commit, done here so the
    // outcome is seen: `published` counts the messages the queue took, not
    // the outbox rows written; a failed publish fails the run instead of
    // being reported as published.
    let outcome = enqueuer.publisher().publish_created(&created).await;
    if outcome.failed > 0 {
        bail!(
            "publishing failed for {} of {} jobs",
            outcome.failed,
            created.len()
        );
    }
    Ok(outcome.published)
}
