//! `jobline dev`: the whole stack on one machine — the API, a worker and
//! the sweeper's chores in one process, over the configured Postgres (the
//! README's `scripts/dev` starts a throwaway one).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use jobline::Config;
use jobline::queue::Publisher;
use jobline::worker::runner::run;
use jobline::worker::{Processor, WorkerOptions};
use tokio::sync::watch;

#[derive(Debug, clap::Args)]
pub struct DevArgs {
    #[arg(long, default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
}

pub async fn run_dev(config: &Config, args: DevArgs) -> anyhow::Result<()> {
    let url = config.require_database_url()?.to_owned();
    let report = jobline::store::migrate::run_url(&url)
        .await
        .context("migrating")?;
    eprintln!("schema ready (applied {:?})", report.applied);
    let state = jobline::app::state(config, "dev").await?;
    let key = match &config.admin_key {
        Some(k) => k.clone(),
        None => {
            let scopes = ["jobs:read", "jobs:write", "admin"].map(String::from);
            state
                .store
                .create_api_key("default", &scopes, Some("jobline dev"))
                .await?
                .key
        }
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let base = format!("http://{}", listener.local_addr()?);
    let (tx, rx) = watch::channel(false);

    let processor = Processor::new(
        state.store.clone(),
        Arc::new(super::worker::registry()?),
        config.heartbeat_interval,
        format!("dev-{}", std::process::id()),
    );
    let worker = tokio::spawn(run(
        processor,
        state.publisher.queue().clone(),
        WorkerOptions {
            concurrency: args.concurrency,
            poll_interval: Duration::from_secs(1),
            ..WorkerOptions::default()
        },
        rx.clone(),
    ));
    let sweeper = tokio::spawn(sweep_forever(
        state.store.clone(),
        state.publisher.clone(),
        jobline::sweeper::SweepConfig::from_config(config),
        rx.clone(),
    ));

    println!(
        "jobline is running: API on {base}, a worker (concurrency {}), the sweeper",
        args.concurrency
    );
    println!("API key (tenant default, all scopes): {key}");
    println!();
    println!("Create a job:");
    println!(
        "  curl -s -X POST {base}/v1/jobs -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' -d '{{\"type\": \"sleep\", \"payload\": {{\"ms\": 500}}}}'"
    );
    println!("Read it back (put the id from the answer in place of JOB_ID):");
    println!("  curl -s {base}/v1/jobs/JOB_ID -H 'Authorization: Bearer {key}'");
    println!("  curl -s {base}/v1/jobs/JOB_ID/events -H 'Authorization: Bearer {key}'");
    println!("Health: curl -s {base}/health    Stop: ctrl-c");

    let shutdown = async move {
        super::serve::shutdown_signal().await;
        let _ = tx.send(true);
    };
    jobline::app::serve(listener, state, shutdown).await?;
    let summary = worker.await?;
    let _ = sweeper.await;
    println!("stopped; the worker processed {} jobs", summary.processed);
    Ok(())
}

/// The sweeper's chores every few seconds: release stale claims, relay the
/// outbox, re-wake due jobs whose message was lost.
async fn sweep_forever(
    store: jobline::Store,
    publisher: Publisher,
    config: jobline::sweeper::SweepConfig,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if let Err(e) = jobline::sweeper::sweep_once(&store, &publisher, &config).await {
            tracing::warn!(error = %e, "sweep failed");
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = stop.changed() => return,
        }
    }
}
