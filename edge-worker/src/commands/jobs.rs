//! `jobline jobs show|cancel|retry ID` and `jobline show-running`.

use jobline::Config;

#[derive(Debug, clap::Subcommand)]
pub enum JobsCommand {
    /// Create a job (and publish it); prints its id.
    Create {
        #[arg(long = "type")]
        job_type: String,
        /// JSON payload.
        #[arg(long, default_value = "{}")]
        payload: String,
        #[arg(long, default_value = "default")]
        tenant: String,
        #[arg(long)]
        max_attempts: Option<i32>,
    },
    /// A job and its timeline.
    Show { id: uuid::Uuid },
    /// Cancel a pending or running job.
    Cancel { id: uuid::Uuid },
    /// Put a failed or cancelled job back to pending (and publish it).
    Retry {
        id: uuid::Uuid,
        /// Fresh attempts to grant (default JOBLINE_MAX_ATTEMPTS).
        #[arg(long)]
        attempts: Option<i32>,
    },
}

pub async fn run(config: &Config, cmd: JobsCommand) -> anyhow::Result<()> {
    let store = jobline::connect(config)?;
    match cmd {
        JobsCommand::Create {
            job_type,
            payload,
            tenant,
            max_attempts,
        } => {
            let payload: serde_json::Value =
                serde_json::from_str(&payload).map_err(|e| anyhow::anyhow!("--payload is not JSON: {e}"))?;
            let mut new = jobline::NewJob::new(job_type, payload);
            new.max_attempts = max_attempts;
            new.initiated_by = Some("cli".into());
            let queue = jobline::app::queue(config, &store).await?;
            let enqueuer = jobline::app::enqueuer(config, &store, queue, "cli");
            let created = enqueuer.enqueue(&tenant, "cli", new).await?;
            println!("{}", created.job.id);
        }
        JobsCommand::Show { id } => {
            let Some(job) = store.get_any(id).await? else {
                anyhow::bail!("no job {id}");
            };
            println!("{}", serde_json::to_string_pretty(&job)?);
            for e in store.timeline(None, id).await?.unwrap_or_default() {
                println!(
                    "{}  {:<18} {:>10} -> {:<10} attempt={} by {}",
                    e.at.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
                    e.event,
                    e.from_status.map(|s| s.to_string()).unwrap_or_default(),
                    e.to_status.map(|s| s.to_string()).unwrap_or_default(),
                    e.attempt.unwrap_or_default(),
                    e.actor.unwrap_or_default()
                );
            }
        }
        JobsCommand::Cancel { id } => {
            let job = store.cancel(None, id, "cli").await?;
            println!("{} {}", job.id, job.status);
        }
        JobsCommand::Retry { id, attempts } => {
            let queue = jobline::app::queue(config, &store).await?;
            let enqueuer = jobline::app::enqueuer(config, &store, queue, "cli");
            let job = enqueuer.retry(None, id, "cli", attempts).await?;
            println!("{} {} (max_attempts {})", job.id, job.status, job.max_attempts);
        }
    }
    Ok(())
}

pub async fn show_running(config: &Config) -> anyhow::Result<()> {
    let store = jobline::connect(config)?;
    let running = store.running().await?;
    if running.is_empty() {
        println!("nothing is running");
    }
    for r in running {
        println!(
            "{}  {:<16} {:<24} stage={:<14} progress={:>5} running={:>7.1}s heartbeat_age={:>5.1}s attempt={}",
            r.id,
            r.job_type,
            r.locked_by.unwrap_or_default(),
            r.stage.unwrap_or_else(|| "-".into()),
            r.progress
                .map(|p| format!("{p:.0}%"))
                .unwrap_or_else(|| "-".into()),
            r.running_seconds,
            r.heartbeat_age_seconds,
            r.attempts
        );
    }
    Ok(())
}
