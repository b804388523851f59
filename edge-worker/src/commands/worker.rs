//! `jobline worker`: the long-running edge worker.

use std::time::Duration;

use anyhow::Context as _;

use jobline::Config;
use jobline::worker::WorkerOptions;
use jobline::worker::runner::run;
use tokio::sync::watch;

#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    /// Jobs in flight at most.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Claimed jobs held ready beyond the free slots, at most: the local
    /// queue. It holds what the worker finished in the last quarter second,
    /// so slow jobs are claimed a slot at a time; 0 claims only for free
    /// slots.
    #[arg(long, default_value_t = jobline::worker::runner::DEFAULT_LOCAL_QUEUE)]
    pub local_queue: usize,
    /// Seconds to wait for work before looking again.
    #[arg(long, default_value_t = 1.0)]
    pub poll_interval: f64,
    /// Drain what is due, then exit.
    #[arg(long)]
    pub once: bool,
    /// Exit after this many jobs.
    #[arg(long)]
    pub limit: Option<u64>,
    /// Only these job types (comma-separated; default `JOBLINE_JOB_TYPES`,
    /// else every registered type).
    #[arg(long, value_delimiter = ',')]
    pub types: Option<Vec<String>>,
    /// Seconds in-flight jobs get to finish on SIGTERM/ctrl-c before they
    /// are released back to pending.
    #[arg(long, default_value_t = 30.0)]
    pub grace: f64,
    /// Worker id (default: host-pid-random, unique per process start).
    #[arg(long)]
    pub id: Option<String>,
    /// Serve this worker's metrics (Prometheus text format) on `GET
    /// /metrics` at this address (default `JOBLINE_WORKER_METRICS_LISTEN`;
    /// unset: none). No key: bind it to loopback or a private network.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

impl WorkerArgs {
    pub fn options(&self) -> anyhow::Result<WorkerOptions> {
        if self.concurrency == 0 {
            anyhow::bail!("--concurrency must be at least 1");
        }
        if self.poll_interval.is_nan() || self.poll_interval < 0.01 {
            anyhow::bail!("--poll-interval must be at least 0.01 seconds");
        }
        Ok(WorkerOptions {
            concurrency: self.concurrency,
            local_queue: self.local_queue,
            poll_interval: Duration::try_from_secs_f64(self.poll_interval)?,
            once: self.once,
            limit: self.limit,
            types: self.types.clone(),
            shutdown_grace: Duration::try_from_secs_f64(self.grace)?,
            register: true,
            metrics: None,
        })
    }
}

pub fn default_worker_id() -> String {
    jobline::worker::runner::unique_worker_id(&jobline::worker::runner::host_name())
}

pub async fn run_worker(config: &Config, args: WorkerArgs) -> anyhow::Result<()> {
    let mut options = args.options()?;
    if options.types.is_none() {
        options.types = config.job_types.clone();
    }
    let store = jobline::connect(config)?;
    let feed = jobline::app::feed(config, &store).await?;
    let id = args.id.clone().unwrap_or_else(default_worker_id);
    let (tx, rx) = watch::channel(false);
    // Jobs enqueued by SQL are published at once by the relay listener,
    // until the worker stops (a signal, --once, a drain).
    let (relay_stop, relay_stopped) = watch::channel(false);
    let relay = jobline::app::spawn_outbox_listener(
        config,
        jobline::queue::Publisher::new(store.clone(), feed.queue(), "relay"),
        relay_stopped,
    );
    let processor = jobline::app::processor(config, store, id);
    if let Some(addr) = args.metrics_listen.or(config.worker_metrics_listen) {
        let metrics = jobline::metrics::worker::WorkerMetrics::new()?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening on {addr} for the worker's metrics"))?;
        let local = listener.local_addr()?;
        tracing::info!(listen = %local, "serving the worker's metrics");
        eprintln!("worker metrics on http://{local}/metrics");
        let mut stopped = rx.clone();
        let served = jobline::metrics::worker::serve(listener, metrics.clone(), async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        });
        tokio::spawn(async move {
            if let Err(e) = served.await {
                tracing::error!(error = %e, "the worker's metrics listener stopped");
            }
        });
        options.metrics = Some(metrics);
    }
    tokio::spawn(async move {
        super::serve::shutdown_signal().await;
        let _ = tx.send(true);
    });
    let summary = run(processor, feed, options, rx).await;
    let _ = relay_stop.send(true);
    if let Some(relay) = relay {
        let _ = relay.await;
    }
    println!(
        "processed={} succeeded={} failed={} retried={} dropped={}",
        summary.processed, summary.succeeded, summary.failed, summary.retried, summary.dropped
    );
    Ok(())
}
