//! The edge worker's loop: at most `concurrency` jobs in flight, fed by the
//! queue (or, with the `postgres` adapter, by claiming straight from
//! `jobs`), until told to stop, drained (`once`) or a job limit is reached.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::processor::{Disposition, Finished, Processor};
use crate::queue::Queue;
use crate::store::JobFailure;
use crate::store::workers::{WorkerBeat, WorkerCommand};

#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Jobs in flight at most.
    pub concurrency: usize,
    /// How long to wait for work before looking again.
    pub poll_interval: Duration,
    /// Drain what is due, then exit.
    pub once: bool,
    /// Exit after starting this many jobs.
    pub limit: Option<u64>,
    /// Only these job types (`None`: every registered type).
    pub types: Option<Vec<String>>,
    /// On shutdown, how long in-flight jobs may take to finish before they
    /// are released back to pending.
    pub shutdown_grace: Duration,
    /// Register in the `workers` table and obey pause/resume/drain.
    pub register: bool,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            concurrency: 4,
            poll_interval: Duration::from_secs(1),
            once: false,
            limit: None,
            types: None,
            shutdown_grace: Duration::from_secs(30),
            register: true,
        }
    }
}

/// What a worker run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Jobs this worker claimed and ran.
    pub processed: u64,
    pub succeeded: u64,
    /// Failed for good.
    pub failed: u64,
    /// Failed, will be retried.
    pub retried: u64,
    /// Messages dropped or jobs whose claim was lost.
    pub dropped: u64,
}

#[derive(Debug, Default)]
struct Counters {
    processed: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    dropped: AtomicU64,
}

impl Counters {
    fn record(&self, f: Finished) {
        self.processed.fetch_add(1, Ordering::Relaxed);
        let c = match f {
            Finished::Completed => &self.succeeded,
            Finished::Failed => &self.failed,
            Finished::Retrying(_) => &self.retried,
            Finished::Stale => &self.dropped,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn summary(&self) -> Summary {
        Summary {
            processed: self.processed.load(Ordering::Relaxed),
            succeeded: self.succeeded.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

/// Runs until `shutdown` turns true (then finishes or releases in-flight
/// jobs within the grace), or `once`/`limit` says to stop.
pub async fn run(
    processor: Processor,
    queue: Arc<dyn Queue>,
    options: WorkerOptions,
    mut shutdown: watch::Receiver<bool>,
) -> Summary {
    // The types this worker takes: claims (direct) and deliveries (brokers)
    // both filter in the claiming statement itself.
    let types = options
        .types
        .clone()
        .unwrap_or_else(|| processor.registry().types());
    let processor = Arc::new(processor.with_types(Some(types.clone())));
    let types = Some(types);
    let counters = Arc::new(Counters::default());
    let permits = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let mut tasks: JoinSet<()> = JoinSet::new();
    let direct = queue.kind() == "postgres";
    let mut started: u64 = 0;
    let mut registry = Registration::new(&processor, queue.kind(), &options);
    tracing::info!(
        worker = processor.worker(),
        queue = queue.kind(),
        concurrency = options.concurrency,
        "worker started"
    );
    loop {
        if *shutdown.borrow() || options.limit.is_some_and(|l| started >= l) {
            break;
        }
        while tasks.try_join_next().is_some() {}
        let in_flight = options.concurrency.max(1) - permits.available_permits();
        match registry.beat(&processor, &counters, in_flight, "running").await {
            WorkerCommand::Running => {}
            WorkerCommand::Draining => {
                tracing::info!("draining on request: finishing in-flight jobs, then exiting");
                break;
            }
            WorkerCommand::Paused => {
                tokio::select! {
                    () = tokio::time::sleep(options.poll_interval) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
        }
        // Wait for a free slot (or shutdown).
        let free = tokio::select! {
            p = permits.clone().acquire_many_owned(1) => match p { Ok(p) => p, Err(_) => break },
            _ = shutdown.changed() => continue,
        };
        drop(free);
        // Completions come back together (they share statements): let the
        // other finishing tasks free their slots, then claim for all of them
        // in one statement.
        tokio::task::yield_now().await;
        let available = permits.available_permits().max(1);
        let want = match options.limit {
            Some(l) => available.min((l - started) as usize),
            None => available,
        };
        let mut got_work = false;
        if direct {
            match processor
                .store()
                .claim(processor.worker(), want as u32, types.as_deref())
                .await
            {
                Ok(claims) => {
                    got_work = !claims.is_empty();
                    for claim in claims {
                        started += 1;
                        let Ok(permit) = permits.clone().acquire_owned().await else {
                            break;
                        };
                        let (p, c) = (processor.clone(), counters.clone());
                        tasks.spawn(async move {
                            c.record(p.run_claim(claim).await);
                            drop(permit);
                        });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "claim failed; retrying after the poll interval"),
            }
            if !got_work {
                if options.once {
                    break;
                }
                // Sleep until a NOTIFY or the poll interval.
                tokio::select! {
                    r = queue.receive(processor.worker(), 1, options.poll_interval) => { let _ = r; }
                    _ = shutdown.changed() => {}
                }
            }
        } else {
            let wait = if options.once {
                Duration::ZERO
            } else {
                options.poll_interval
            };
            let deliveries = tokio::select! {
                r = queue.receive(processor.worker(), want.min(10), wait) => r,
                _ = shutdown.changed() => continue,
            };
            match deliveries {
                Ok(ds) => {
                    got_work = !ds.is_empty();
                    for d in ds {
                        started += 1;
                        let Ok(permit) = permits.clone().acquire_owned().await else {
                            break;
                        };
                        let (p, c, q) = (processor.clone(), counters.clone(), queue.clone());
                        tasks.spawn(async move {
                            let worker = p.worker().to_owned();
                            let (outcome, finished) = p.handle_delivery(&d).await;
                            match finished {
                                Some(f) => c.record(f),
                                None => {
                                    c.dropped.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            let result = match outcome {
                                Disposition::Ack => q.ack(&worker, &d).await,
                                Disposition::Retry(delay) => q.nack(&worker, &d, delay).await,
                            };
                            if let Err(e) = result {
                                tracing::warn!(error = %e, "could not settle the message with the broker");
                            }
                            drop(permit);
                        });
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "receive failed; retrying after the poll interval");
                    tokio::select! {
                        () = tokio::time::sleep(options.poll_interval) => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }
            if !got_work && options.once {
                break;
            }
        }
    }
    // Stop taking work; let in-flight jobs finish within the grace.
    let drained = tokio::time::timeout(options.shutdown_grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            in_flight = tasks.len(),
            "grace period over: releasing in-flight jobs"
        );
        tasks.abort_all();
        release_mine(&processor).await;
    }
    registry.last_beat = None;
    registry.beat(&processor, &counters, 0, "stopped").await;
    let summary = counters.summary();
    tracing::info!(?summary, "worker stopped");
    summary
}

/// The worker's row in `workers`: refreshed at most once per poll interval.
struct Registration {
    enabled: bool,
    beat: WorkerBeat,
    every: Duration,
    last_beat: Option<tokio::time::Instant>,
    last_command: WorkerCommand,
}

impl Registration {
    fn new(processor: &Processor, queue: &str, options: &WorkerOptions) -> Self {
        Self {
            enabled: options.register,
            beat: WorkerBeat {
                id: processor.worker().to_owned(),
                host: host_name(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                queue: queue.to_owned(),
                concurrency: i32::try_from(options.concurrency.max(1)).unwrap_or(i32::MAX),
                started_at: processor.store().now(),
                in_flight: 0,
                processed: 0,
                failed: 0,
                state: "running".into(),
            },
            every: options.poll_interval.min(Duration::from_secs(5)),
            last_beat: None,
            last_command: WorkerCommand::Running,
        }
    }

    async fn beat(
        &mut self,
        processor: &Processor,
        counters: &Counters,
        in_flight: usize,
        state: &str,
    ) -> WorkerCommand {
        if !self.enabled {
            return WorkerCommand::Running;
        }
        if self.last_beat.is_some_and(|t| t.elapsed() < self.every) {
            return self.last_command;
        }
        self.last_beat = Some(tokio::time::Instant::now());
        let summary = counters.summary();
        self.beat.in_flight = i32::try_from(in_flight).unwrap_or(i32::MAX);
        self.beat.processed = i64::try_from(summary.processed).unwrap_or(i64::MAX);
        self.beat.failed = i64::try_from(summary.failed).unwrap_or(i64::MAX);
        self.beat.state = match (state, self.last_command) {
            ("running", WorkerCommand::Paused) => "paused".into(),
            ("running", WorkerCommand::Draining) => "draining".into(),
            (s, _) => s.to_owned(),
        };
        match processor.store().worker_beat(&self.beat).await {
            Ok(command) => {
                if command != self.last_command {
                    tracing::info!(?command, "operator instruction");
                }
                self.last_command = command;
            }
            Err(e) => tracing::warn!(error = %e, "could not refresh the worker registration"),
        }
        self.last_command
    }
}

/// Puts this worker's claims back to pending (counted as a failed attempt
/// with `WORKER_SHUTDOWN`, retried after backoff).
async fn release_mine(processor: &Processor) {
    let store = processor.store();
    let Ok(running) = store.claims_of(processor.worker()).await else {
        return;
    };
    for claim in running {
        let failure = JobFailure::retryable("WORKER_SHUTDOWN", "the worker stopped before the job finished");
        let _ = store.fail(&claim, &failure).await;
    }
}

/// This machine's name (for worker ids and the registry), `unknown` when
/// it cannot be read.
pub fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}
