//! The edge worker's own metrics, served by `jobline worker
//! --metrics-listen ADDR` on a listener of its own ([`serve`]): claims,
//! attempts by outcome, handler run time by job type, jobs in flight.
//!
//! The worker records them per job from many tasks at ~25,000 jobs/s, so
//! the loop only touches [`WorkerInstruments`]: the label children fetched
//! once at start (one atomic add per counter, no lock, no allocation).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

use super::MetricsError;
use crate::http::ApiError;
use crate::worker::Finished;

/// Handler run times' buckets, in seconds: from a no-op to the default
/// handler timeout (15 min).
const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
];

/// The outcomes of an attempt, as the `outcome` label says them.
const OUTCOMES: [&str; 4] = ["completed", "retry", "failed", "stale"];

/// One worker process's metrics, in their own registry.
#[derive(Debug, Clone)]
pub struct WorkerMetrics {
    registry: Registry,
    claims: IntCounter,
    attempts: IntCounterVec,
    duration: HistogramVec,
    in_flight: IntGauge,
}

impl WorkerMetrics {
    pub fn new() -> Result<Self, MetricsError> {
        let registry = Registry::new();
        let metrics = Self {
            claims: IntCounter::new(
                "jobline_worker_claims_total",
                "Jobs this worker claimed (from a claim batch or a delivery).",
            )?,
            attempts: IntCounterVec::new(
                Opts::new(
                    "jobline_worker_attempts_total",
                    "Attempts this worker ran to their end, by outcome: completed; retry (failed, \
                     pending again after its backoff); failed (for good); stale (the claim was no \
                     longer this worker's: cancelled or released under it, nothing recorded).",
                ),
                &["outcome"],
            )?,
            duration: HistogramVec::new(
                HistogramOpts::new(
                    "jobline_worker_job_duration_seconds",
                    "Handler run time of this worker's attempts, by job type.",
                )
                .buckets(DURATION_BUCKETS.to_vec()),
                &["type"],
            )?,
            in_flight: IntGauge::new(
                "jobline_worker_jobs_in_flight",
                "Jobs whose handler is running on this worker now.",
            )?,
            registry,
        };
        metrics.registry.register(Box::new(metrics.claims.clone()))?;
        metrics.registry.register(Box::new(metrics.attempts.clone()))?;
        metrics.registry.register(Box::new(metrics.duration.clone()))?;
        metrics.registry.register(Box::new(metrics.in_flight.clone()))?;
        // Every outcome shows from the start, at 0.
        for outcome in OUTCOMES {
            metrics.attempts.with_label_values(&[outcome]);
        }
        Ok(metrics)
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The exposition.
    pub fn encode(&self) -> Result<String, MetricsError> {
        super::encode(&self.registry)
    }

    /// The label children the loop records into, fetched once for `types`
    /// (the types this worker claims): every type shows from then on, at 0.
    pub fn instruments(&self, types: &[String]) -> WorkerInstruments {
        let [completed, retry, failed, stale] = OUTCOMES.map(|o| self.attempts.with_label_values(&[o]));
        WorkerInstruments {
            claims: self.claims.clone(),
            completed,
            retry,
            failed,
            stale,
            in_flight: self.in_flight.clone(),
            durations: types
                .iter()
                .map(|t| (t.clone(), self.duration.with_label_values(&[t.as_str()])))
                .collect(),
            duration: self.duration.clone(),
        }
    }
}

/// What the worker loop records into (cheap to share: behind an `Arc`).
#[derive(Debug)]
pub struct WorkerInstruments {
    claims: IntCounter,
    completed: IntCounter,
    retry: IntCounter,
    failed: IntCounter,
    stale: IntCounter,
    in_flight: IntGauge,
    /// Per type this worker claims, fetched once.
    durations: HashMap<String, Histogram>,
    /// For a type it was not told of (never claimed: the claim filters by
    /// type; kept so a surprise is still counted).
    duration: HistogramVec,
}

impl WorkerInstruments {
    pub fn claimed(&self, n: usize) {
        self.claims.inc_by(n as u64);
    }

    /// An attempt ended as `finished`.
    pub fn finished(&self, finished: Finished) {
        match finished {
            Finished::Completed => &self.completed,
            Finished::Retrying(_) => &self.retry,
            Finished::Failed => &self.failed,
            Finished::Stale => &self.stale,
        }
        .inc();
    }

    /// A handler of `job_type` starts: in flight until the returned guard
    /// is finished (its run time observed) or dropped (an aborted task: no
    /// run time).
    pub fn start(&self, job_type: &str) -> Running<'_> {
        self.in_flight.inc();
        let histogram = match self.durations.get(job_type) {
            Some(h) => Cow::Borrowed(h),
            None => Cow::Owned(self.duration.with_label_values(&[job_type])),
        };
        Running {
            in_flight: &self.in_flight,
            histogram,
            started: std::time::Instant::now(),
        }
    }
}

/// A handler running ([`WorkerInstruments::start`]).
#[derive(Debug)]
pub struct Running<'a> {
    in_flight: &'a IntGauge,
    histogram: Cow<'a, Histogram>,
    started: std::time::Instant,
}

impl Running<'_> {
    /// The handler ended: its run time goes into its type's histogram.
    pub fn finish(self) {
        self.histogram.observe(self.started.elapsed().as_secs_f64());
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.in_flight.dec();
    }
}

/// Serves `GET /metrics` (and nothing else) on `listener` until `shutdown`
/// resolves. No key: bind it to loopback or a private network.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: WorkerMetrics,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let metrics = Arc::new(metrics);
    let app = Router::new()
        .route("/metrics", get(move || exposition(metrics.clone())))
        .fallback(|| async { ApiError::not_found("no such route: this listener serves GET /metrics") });
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

async fn exposition(metrics: Arc<WorkerMetrics>) -> Response {
    match metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, super::CONTENT_TYPE)], text).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "could not encode the worker's metrics");
            ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            )
            .into_response()
        }
    }
}
