//! `jobline dev`: the whole stack on one machine — the API, a worker and
//! the sweeper's chores in one process, over the configured Postgres (the
//! README's `scripts/dev` starts a throwaway one).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use jobline::Config;
use jobline::worker::WorkerOptions;
use jobline::worker::runner::run;
use tokio::sync::watch;

#[derive(Debug, clap::Args)]
pub struct DevArgs {
    #[arg(long, default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
}

/// Without `DATABASE_URL`, a throwaway Postgres from the repository's
/// `scripts/pg-up` (found from the current directory upwards).
fn throwaway_postgres() -> anyhow::Result<String> {
    let mut dir = std::env::current_dir()?;
    let script = loop {
        let candidate = dir.join("scripts/pg-up");
        if candidate.is_file() {
            break candidate;
        }
        if !dir.pop() {
            anyhow::bail!(
                "DATABASE_URL is not set and no scripts/pg-up was found to start a throwaway Postgres; set DATABASE_URL"
            );
        }
    };
    eprintln!(
        "DATABASE_URL is not set: starting a throwaway Postgres with {}",
        script.display()
    );
    let out = std::process::Command::new(&script)
        .arg("pg")
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        anyhow::bail!("{} failed", script.display());
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("export DATABASE_URL=").map(str::to_owned))
        .context("scripts/pg-up printed no DATABASE_URL")
}

pub async fn run_dev(config: &Config, args: DevArgs) -> anyhow::Result<()> {
    let mut config = config.clone();
    if config.database_url.is_none() {
        config.database_url = Some(throwaway_postgres()?);
    }
    let config = &config;
    let url = config.require_database_url()?.to_owned();
    let report = jobline::store::migrate::run_url(&url)
        .await
        .context("migrating")?;
    eprintln!("schema ready (applied {:?})", report.applied);
    let store = jobline::connect(config)?;
    // One adapter for both sides: the API publishes on it, the worker is fed by it.
    let feed = jobline::app::feed(config, &store).await?;
    let state = jobline::app::state_on(config, store, &feed, "dev");
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

    let processor = jobline::app::processor(
        config,
        state.store.clone(),
        jobline::worker::runner::unique_worker_id("dev"),
    );
    let broker = feed.broker();
    let worker = tokio::spawn(run(
        processor,
        feed,
        WorkerOptions {
            concurrency: args.concurrency,
            poll_interval: Duration::from_secs(1),
            ..WorkerOptions::default()
        },
        rx.clone(),
    ));
    let relay = jobline::app::spawn_outbox_listener(config, state.enqueuer.publisher().clone(), rx.clone());
    let sweeper = tokio::spawn(super::ops::sweep_forever(
        state.store.clone(),
        state.enqueuer.publisher().clone(),
        broker,
        jobline::sweeper::SweepConfig::from_config(config)?,
        Duration::from_secs(5),
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
    println!("Dashboard: {base}/dashboard (log in with the API key above)");

    let shutdown = async move {
        super::serve::shutdown_signal().await;
        let _ = tx.send(true);
    };
    jobline::app::serve(listener, state, shutdown).await?;
    let summary = worker.await?;
    let _ = sweeper.await;
    if let Some(relay) = relay {
        let _ = relay.await;
    }
    println!("stopped; the worker processed {} jobs", summary.processed);
    Ok(())
}
