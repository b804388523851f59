//! `jobline-bench`: the small, precise helpers `scripts/bench` (through
//! `bench/bench.py`) drives. Not part of the product: the `jobline` binary
//! does not ship them.
//!
//! - `enqueue`: the fast path for a backlog, in batches of one transaction
//!   each (jobs, outbox rows, `created` events), optionally published after
//!   commit through the configured queue exactly as the API publishes
//!   (brokers need the messages; the `postgres` adapter NOTIFYs).
//! - `latency`: jobs enqueued one at a time at a fixed interval (created and
//!   published like the API does) while a worker runs; reports
//!   `started_at - created_at` of each job, read back from the table.
//! - `http`: a closed-loop HTTP/1.1 load generator: a fixed number of
//!   keep-alive connections, each sending the next request as soon as the
//!   previous answer is in; reports requests/s, jobs/s and latency
//!   percentiles.
//! - `retention`: a million expired jobs loaded, stats timed over them, then
//!   pruned while claims are timed, against claims timed alone.
//! - `dashboard`: a million jobs loaded, each dashboard page rendered
//!   in-process through the router and timed.
//!
//! Every subcommand prints one JSON object on stdout.

mod dashboard;
mod enqueue;
mod http;
mod latency;
mod retention;
mod stats;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The actor of the `created` and `published` events these helpers write.
const ACTOR: &str = "bench";

#[derive(Debug, Parser)]
#[command(
    name = "jobline-bench",
    version,
    about = "Benchmark helpers for scripts/bench: enqueue, latency, http, retention, dashboard"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create N jobs in batches of one transaction each (optionally published).
    Enqueue(enqueue::EnqueueArgs),
    /// Enqueue-to-start latency: jobs created at a fixed interval while a worker runs.
    Latency(latency::LatencyArgs),
    /// HTTP load generator: fixed connections, closed loop, for a duration.
    Http(http::HttpArgs),
    /// Retention: stats over expired history, then pruning it while claims run.
    Retention(retention::RetentionArgs),
    /// Dashboard: every page's server time over a million jobs.
    Dashboard(dashboard::DashboardArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match jobline::Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("jobline-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let _telemetry = jobline::telemetry::init(&config);
    let outcome = match cli.command {
        Command::Enqueue(args) => enqueue::run(&config, args).await,
        Command::Latency(args) => latency::run(&config, args).await,
        Command::Http(args) => http::run(args).await,
        Command::Retention(args) => retention::run(&config, args).await,
        Command::Dashboard(args) => dashboard::run(&config, args).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jobline-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
