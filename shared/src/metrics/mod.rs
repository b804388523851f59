//! Metrics in the Prometheus text format (the `prometheus` crate, one
//! [`prometheus::Registry`] per process, built once at start):
//!
//! - [`ApiMetrics`]: what `jobline serve` answers on `GET /metrics` (the
//!   operators' admin key): the queue's gauges ([`queue`], read from
//!   Postgres at scrape time with indexed queries) and the API's own
//!   requests ([`http`], counted by a middleware).
//! - [`worker::WorkerMetrics`]: what `jobline worker --metrics-listen ADDR`
//!   serves on its own listener: claims, attempts by outcome, handler run
//!   time by job type, jobs in flight.
//! - [`emf`]: the queue's gauges as one CloudWatch Embedded Metric Format
//!   line, which the sweeper Lambda prints each pass.

pub mod emf;
pub mod http;
pub mod queue;
pub mod worker;

use prometheus::{Registry, TextEncoder};

/// The `Content-Type` of the text exposition format (0.0.4).
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// A metric that could not be built or registered (a name or label the
/// crate refuses, or a name registered twice: a programming error, caught by
/// the tests), or an exposition that could not be written.
#[derive(Debug, thiserror::Error)]
#[error("metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

/// Everything registered in `registry`, in the Prometheus text format.
pub fn encode(registry: &Registry) -> Result<String, MetricsError> {
    Ok(TextEncoder::new().encode_to_string(&registry.gather())?)
}

/// `jobline serve`'s metrics: its requests and the queue's gauges, in one
/// registry, built once per server.
#[derive(Debug)]
pub struct ApiMetrics {
    registry: Registry,
    pub http: std::sync::Arc<http::HttpMetrics>,
    pub queue: queue::QueueGauges,
}

impl ApiMetrics {
    pub fn new() -> Result<Self, MetricsError> {
        let registry = Registry::new();
        Ok(Self {
            http: std::sync::Arc::new(http::HttpMetrics::register(&registry)?),
            queue: queue::QueueGauges::register(&registry)?,
            registry,
        })
    }

    /// The exposition after reading the queue's gauges from `store` (one
    /// scrape at a time, so two scrapes never interleave their updates).
    pub async fn scrape(&self, store: &crate::Store) -> Result<String, ScrapeError> {
        let _one_at_a_time = self.queue.scraping.lock().await;
        let snapshot = queue::QueueSnapshot::read(store).await?;
        self.queue.set(&snapshot);
        Ok(encode(&self.registry)?)
    }
}

/// Why a scrape got no exposition.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error(transparent)]
    Store(#[from] crate::StoreError),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
}
