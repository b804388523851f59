//! Operator commands over the store.

use std::time::Duration;

use anyhow::Context as _;
use jobline::Config;
use tokio::sync::watch;

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

#[derive(Debug, clap::Args)]
pub struct SweepArgs {
    /// Sweep again every this many seconds until SIGTERM or ctrl-c (the
    /// sweeper Lambda's schedule, on a host without one). Without it: one
    /// pass, its report printed as JSON.
    #[arg(long)]
    every: Option<f64>,
}

/// One sweeper pass (what the sweeper Lambda does on its schedule), or one
/// every `--every` seconds.
pub async fn sweep(config: &Config, args: SweepArgs) -> anyhow::Result<()> {
    let store = jobline::connect(config)?;
    let feed = jobline::app::feed(config, &store).await?;
    let publisher = jobline::queue::Publisher::new(store.clone(), feed.queue(), "sweeper");
    let broker = feed.broker();
    let sweep_config = jobline::sweeper::SweepConfig::from_config(config)?;
    let Some(every) = args.every else {
        let report =
            jobline::sweeper::sweep_once(&store, &publisher, broker.as_deref(), &sweep_config).await?;
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    };
    let interval = Duration::try_from_secs_f64(every)
        .ok()
        .filter(|d| !d.is_zero())
        .context("--every must be a positive number of seconds")?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        super::serve::shutdown_signal().await;
        let _ = tx.send(true);
    });
    sweep_forever(store, publisher, broker, sweep_config, interval, rx).await;
    Ok(())
}

/// Sweeps every `interval` until `stop` changes. A failed sweep is logged
/// and tried again at the next tick (every step is idempotent).
pub async fn sweep_forever(
    store: jobline::Store,
    publisher: jobline::queue::Publisher,
    broker: Option<std::sync::Arc<dyn jobline::queue::Broker>>,
    config: jobline::sweeper::SweepConfig,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        match jobline::sweeper::sweep_once(&store, &publisher, broker.as_deref(), &config).await {
            Ok(r) => tracing::debug!(
                released = r.released.requeued + r.released.failed,
                relayed = r.relayed.published,
                rewoken = r.rewoken.rewoken,
                recovered = r.recovered,
                "sweep"
            ),
            Err(e) => tracing::warn!(error = %e, "sweep failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
    }
}
