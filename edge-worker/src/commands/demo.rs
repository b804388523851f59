//! A short tour of the lifecycle through the store: create, claim,
//! heartbeat, complete (and one retry), printing each job's timeline.

use anyhow::bail;
use jobline::store::{ClaimByIdOutcome, JobFailure, Settled};
use jobline::{Config, NewJob};
use serde_json::json;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// How many jobs to create.
    #[arg(long, default_value_t = 3)]
    jobs: u32,
}

pub async fn run(config: &Config, args: DemoArgs) -> anyhow::Result<()> {
    let store = jobline::connect(config)?;
    let worker = format!("demo-{}", std::process::id());
    let story = uuid::Uuid::new_v4().to_string();
    let news: Vec<NewJob> = (0..args.jobs)
        .map(|i| NewJob::new("noop", json!({ "step": i })).correlation_id(story.clone()))
        .collect();
    let queue = jobline::app::queue(config, &store).await?;
    let enqueuer = jobline::app::enqueuer(config, &store, queue, "demo");
    let created = enqueuer.enqueue_many("default", "demo", news).await?;
    println!("created {} jobs for story {story}", created.len());
    for (i, c) in created.iter().enumerate() {
        let ClaimByIdOutcome::Claimed(mut claim) = store.claim_by_id(&worker, c.job.id).await? else {
            bail!("job {} was not claimable", c.job.id);
        };
        store
            .heartbeat(claim.token(), Some("working"), Some(50.0))
            .await?;
        if i == 0 {
            // The first job fails once and is retried, to show the backoff path.
            store
                .fail_with_jitter(
                    &claim,
                    &JobFailure::retryable("DEMO", "first attempt fails on purpose"),
                    0.0,
                )
                .await?;
            let due = store.get_any(c.job.id).await?.map(|j| j.run_after);
            println!("job {} failed once; retry due at {:?}", c.job.id, due);
            let wait = (due.unwrap_or_else(|| store.now()) - store.now())
                .to_std()
                .unwrap_or_default();
            tokio::time::sleep(wait).await;
            claim = match store.claim_by_id(&worker, c.job.id).await? {
                ClaimByIdOutcome::Claimed(claim) => claim,
                other => bail!("job {} not claimable after backoff: {other:?}", c.job.id),
            };
        }
        match store.complete(&claim, Some(json!({ "ok": true })), None).await? {
            Settled::Applied(job) => {
                println!("job {} {} after {} attempt(s)", job.id, job.status, job.attempts)
            }
            Settled::Stale => bail!("job {} claim went stale", c.job.id),
        }
        let events = store.timeline(None, c.job.id).await?.unwrap_or_default();
        let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
        println!("  timeline: {}", names.join(" → "));
    }
    let stats = store.stats(Some("default")).await?;
    println!("stats: {}", serde_json::to_string(&stats)?);
    Ok(())
}
