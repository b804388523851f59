//! `jobline outbox relay` and `jobline dead-letter list|replay`.

use jobline::Config;
use jobline::queue::relay::relay_all;

pub async fn relay(config: &Config) -> anyhow::Result<()> {
    let store = jobline::connect(config)?;
    let publisher = jobline::app::publisher(config, &store, "relay").await?;
    let report = relay_all(&store, &publisher, 500).await?;
    println!(
        "leased={} published={} deferred={} failed={}",
        report.leased, report.published, report.deferred, report.failed
    );
    Ok(())
}

#[derive(Debug, clap::Subcommand)]
pub enum DeadLetterCommand {
    /// Failed jobs and dead-lettered outbox rows of a tenant.
    List {
        #[arg(long, default_value = "default")]
        tenant: String,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Put them back; the same token twice changes nothing (`updated=0`).
    Replay {
        #[arg(long)]
        token: String,
        #[arg(long, default_value = "default")]
        tenant: String,
        /// Only these jobs (comma-separated ids).
        #[arg(long, value_delimiter = ',')]
        jobs: Option<Vec<uuid::Uuid>>,
    },
}

pub async fn dead_letter(config: &Config, cmd: DeadLetterCommand) -> anyhow::Result<()> {
    let store = jobline::connect(config)?;
    match cmd {
        DeadLetterCommand::List { tenant, limit } => {
            let failed = jobline::store::JobFilter {
                status: Some(jobline::JobStatus::Failed),
                ..Default::default()
            };
            for job in store.list(&tenant, &failed, limit, None).await?.jobs {
                println!(
                    "job    {}  {:<16} attempts={} {}: {}",
                    job.id,
                    job.job_type,
                    job.attempts,
                    job.error_code.unwrap_or_default(),
                    job.failure_reason.unwrap_or_default()
                );
            }
            for row in store.dead_letter_outbox(&tenant, limit).await? {
                println!(
                    "outbox {}  job {} attempts={} {}",
                    row.id,
                    row.job_id,
                    row.attempts,
                    row.last_error.unwrap_or_default()
                );
            }
        }
        DeadLetterCommand::Replay { token, tenant, jobs } => {
            let report = store
                .replay_dead_letter(&tenant, &token, "cli", jobs.as_deref(), None)
                .await?;
            println!(
                "updated={} jobs={} outbox={} already_used={}",
                report.updated, report.jobs_replayed, report.outbox_replayed, report.already_used
            );
        }
    }
    Ok(())
}
