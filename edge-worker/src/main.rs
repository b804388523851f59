//! `jobline`: the edge worker and operator CLI.

mod commands;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "jobline",
    version,
    about = "Durable job pipeline: edge worker and operator CLI"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply pending schema migrations (a no-op when up to date).
    Migrate,
    /// Create a few jobs and drive them to `completed` through the store.
    Demo(commands::demo::DemoArgs),
    /// Counts by status, oldest pending age, dead letter, p50/p95.
    Stats(commands::ops::StatsArgs),
    /// The live audit: the promises checked over the jobs of a window (the
    /// report of GET /v1/audit); exits 1 when any is broken.
    Audit(commands::audit::AuditArgs),
    /// Release claims whose heartbeat timed out.
    ReleaseStale,
    /// One sweeper pass: release stale claims, relay the outbox, re-wake due
    /// jobs whose message was lost (`--every SECS` to keep sweeping).
    Sweep(commands::ops::SweepArgs),
    /// Serve every route of the HTTP API on one port.
    Serve(commands::serve::ServeArgs),
    /// API keys: create, list, revoke.
    #[command(subcommand)]
    Keys(commands::keys::KeysCommand),
    /// The outbox: `relay` publishes what is due.
    #[command(subcommand)]
    Outbox(OutboxCommand),
    /// The dead letter: list, replay.
    #[command(subcommand)]
    DeadLetter(commands::outbox::DeadLetterCommand),
    /// Run the edge worker: take jobs from the queue and run their handlers.
    Worker(commands::worker::WorkerArgs),
    /// Everything on one machine: migrate, then the API, a worker and the
    /// sweeper in one process; prints curl lines to try it.
    Dev(commands::dev::DevArgs),
    /// One job: show, cancel, retry.
    #[command(subcommand)]
    Jobs(commands::jobs::JobsCommand),
    /// Running jobs: stage, progress, running time, heartbeat age.
    ShowRunning,
    /// The worker reliability drill: inject the failures jobline promises to
    /// survive and check each is recovered from.
    Drill(commands::drill::DrillArgs),
    /// The webhook signing secret of one tenant (derived from
    /// JOBLINE_WEBHOOK_SECRET), for that tenant's receivers to verify with.
    WebhookSecret {
        #[arg(long)]
        tenant: String,
    },
    /// Registered workers (list) and steering them (pause, resume, drain).
    Workers {
        #[command(subcommand)]
        cmd: Option<commands::workers::WorkersCommand>,
    },
}

#[derive(Debug, Subcommand)]
enum OutboxCommand {
    /// Publish every due outbox row (safe to run anywhere, any number of times).
    Relay,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let config = match jobline::Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("jobline: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let _telemetry = jobline::telemetry::init(&config);
    let outcome = match cli.command {
        Command::Migrate => commands::ops::migrate(&config).await,
        Command::Demo(args) => commands::demo::run(&config, args).await,
        Command::Stats(args) => commands::ops::stats(&config, args).await,
        Command::Audit(args) => commands::audit::run(&config, args).await,
        Command::ReleaseStale => commands::ops::release_stale(&config).await,
        Command::Sweep(args) => commands::ops::sweep(&config, args).await,
        Command::Serve(args) => commands::serve::run(&config, args).await,
        Command::Keys(cmd) => commands::keys::run(&config, cmd).await,
        Command::Outbox(OutboxCommand::Relay) => commands::outbox::relay(&config).await,
        Command::DeadLetter(cmd) => commands::outbox::dead_letter(&config, cmd).await,
        Command::Worker(args) => commands::worker::run_worker(&config, args).await,
        Command::Dev(args) => commands::dev::run_dev(&config, args).await,
        Command::Jobs(cmd) => commands::jobs::run(&config, cmd).await,
        Command::ShowRunning => commands::jobs::show_running(&config).await,
        Command::Workers { cmd } => commands::workers::run(&config, cmd).await,
        Command::Drill(args) => commands::drill::run(&config, args).await,
        Command::WebhookSecret { tenant } => commands::keys::webhook_secret(&config, &tenant),
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jobline: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
