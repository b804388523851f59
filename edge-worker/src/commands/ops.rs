//! Operator commands over the store.

use anyhow::Context as _;
use jobline::Config;

pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let url = config.require_database_url()?;
    let report = jobline::store::migrate::run_url(url).await.context("migrating")?;
    if report.applied.is_empty() {
        println!("schema up to date ({} migrations)", report.already_applied);
    } else {
        println!(
            "applied migrations {:?} ({} already applied)",
            report.applied, report.already_applied
        );
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// Only this tenant's jobs.
    #[arg(long)]
    tenant: Option<String>,
}

pub async fn stats(config: &Config, args: StatsArgs) -> anyhow::Result<()> {
    let store = jobline::connect(config)?;
    let stats = store.stats(args.tenant.as_deref()).await?;
    println!("{}", serde_json::to_string_pretty(&stats)?);
    Ok(())
}

pub async fn release_stale(config: &Config) -> anyhow::Result<()> {
    let store = jobline::connect(config)?;
    let mut total = jobline::store::ReleaseReport::default();
    loop {
        let report = store.release_stale(config.heartbeat_timeout, 500).await?;
        let done = report.total() < 500;
        total.requeued.extend(report.requeued);
        total.failed.extend(report.failed);
        if done {
            break;
        }
    }
    println!(
        "released={} requeued={} failed={}",
        total.total(),
        total.requeued.len(),
        total.failed.len()
    );
    Ok(())
}

/// One sweeper pass (what the sweeper Lambda does on its schedule).
pub async fn sweep(config: &Config) -> anyhow::Result<()> {
    let store = jobline::connect(config)?;
    let queue = jobline::app::queue(config, &store).await?;
    let publisher = jobline::queue::Publisher::new(store.clone(), queue, "sweeper");
    let report = jobline::sweeper::sweep_once(
        &store,
        &publisher,
        &jobline::sweeper::SweepConfig::from_config(config),
    )
    .await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
