//! `jobline workers [list|pause|resume|drain ID]`.

use jobline::Config;
use jobline::store::workers::WorkerCommand;

#[derive(Debug, clap::Subcommand)]
pub enum WorkersCommand {
    /// Registered workers and their state (the default).
    List,
    /// Take no new jobs; in-flight ones finish; the worker stays up.
    Pause { id: String },
    /// Take jobs again.
    Resume { id: String },
    /// Finish in-flight jobs, then exit.
    Drain { id: String },
}

pub async fn run(config: &Config, cmd: Option<WorkersCommand>) -> anyhow::Result<()> {
    let store = jobline::connect(config)?;
    let (id, command) = match cmd.unwrap_or(WorkersCommand::List) {
        WorkersCommand::List => {
            for info in store.workers(jobline::store::WORKER_GONE_AFTER).await? {
                let w = &info.worker;
                println!(
                    "{:<32} {:<9} queue={:<8} concurrency={:<3} in_flight={:<3} processed={:<7} failed={:<5} seen {:.0}s ago (v{}, {})",
                    w.id,
                    w.state,
                    w.queue,
                    w.concurrency,
                    w.in_flight,
                    w.processed,
                    w.failed,
                    info.last_seen_seconds_ago,
                    w.version,
                    w.host
                );
            }
            return Ok(());
        }
        WorkersCommand::Pause { id } => (id, WorkerCommand::Paused),
        WorkersCommand::Resume { id } => (id, WorkerCommand::Running),
        WorkersCommand::Drain { id } => (id, WorkerCommand::Draining),
    };
    if !store.steer_worker(&id, command).await? {
        anyhow::bail!("no worker {id}");
    }
    println!("{id}: {} (obeyed within one poll interval)", command.as_str());
    Ok(())
}
