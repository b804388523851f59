//! `jobline drill --mode simulate|live [--report FILE]`: the worker
//! reliability drill (its steps: [`steps`]).

use std::sync::Arc;

use anyhow::Context as _;
use jobline::Config;
use jobline::queue::Feed;
use jobline::queue::postgres::PostgresQueue;

mod steps;

use steps::Drill;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// A throwaway database on the configured server, the postgres adapter.
    Simulate,
    /// The configured database and queue (jobs of tenant `drill`).
    Live,
}

#[derive(Debug, clap::Args)]
pub struct DrillArgs {
    #[arg(long, value_enum)]
    pub mode: Mode,
    /// Write a Markdown report here.
    #[arg(long)]
    pub report: Option<std::path::PathBuf>,
}

pub async fn run(config: &Config, args: DrillArgs) -> anyhow::Result<()> {
    let url = config.require_database_url()?.to_owned();
    let (drill, throwaway) = match args.mode {
        Mode::Live => {
            let store = jobline::connect(config)?;
            let feed = jobline::app::feed(config, &store).await?;
            (
                Drill {
                    store,
                    feed,
                    mode: "live".into(),
                    stale_after: config.heartbeat_timeout,
                    token: format!("drill-{}", uuid::Uuid::new_v4().simple()),
                    audit_grace: jobline::store::audit::DEFAULT_AUDIT_GRACE,
                },
                None,
            )
        }
        Mode::Simulate => {
            let name = format!("jobline_drill_{}", uuid::Uuid::new_v4().simple());
            let admin = jobline::connect(config)?;
            admin
                .pool()
                .get()
                .await
                .context("connecting to create the throwaway database")?
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .await
                .context("creating the throwaway database")?;
            let (base, _) = url.split_once('?').unwrap_or((&url, ""));
            let (server, _) = base
                .rsplit_once('/')
                .context("DATABASE_URL has no database name")?;
            let db_url = format!("{server}/{name}");
            jobline::store::migrate::run_url(&db_url).await?;
            let mut sim = config.clone();
            sim.database_url = Some(db_url.clone());
            let store = jobline::connect(&sim)?;
            let feed = Feed::Claim(Arc::new(PostgresQueue::new(store.clone(), Some(db_url))));
            (
                Drill {
                    store,
                    feed,
                    mode: "simulate".into(),
                    stale_after: std::time::Duration::from_secs(1),
                    token: format!("drill-{}", uuid::Uuid::new_v4().simple()),
                    audit_grace: std::time::Duration::ZERO,
                },
                Some((admin, name)),
            )
        }
    };
    let report = drill.run().await;
    drop(drill);
    if let Some((admin, name)) = throwaway {
        // Connections of the drill's pool close as it drops; force the rest.
        let client = admin.pool().get().await?;
        let _ = client
            .batch_execute(&format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'; DROP DATABASE IF EXISTS {name}"
            ))
            .await;
    }
    let md = report.markdown();
    if let Some(path) = &args.report {
        std::fs::write(path, &md).with_context(|| format!("writing {}", path.display()))?;
        println!("report written to {}", path.display());
    }
    let passed = report.steps.iter().filter(|s| s.outcome.is_ok()).count();
    println!("{} passed, {} failed", passed, report.steps.len() - passed);
    if !report.passed() {
        anyhow::bail!("the drill failed");
    }
    Ok(())
}
