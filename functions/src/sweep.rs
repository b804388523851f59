//! The sweeper Lambda, run on a schedule (an EventBridge rule; any JSON
//! payload is accepted and ignored): one [`jobline::sweeper::sweep_once`]
//! per invocation, answered with its report as JSON. Safe to run in
//! parallel with itself (overlapping schedules, retried invocations).
//!
//! Each pass also prints the queue's gauges (oldest pending age, dead
//! letter, outbox due, pending and processing jobs) as one CloudWatch
//! Embedded Metric Format line on stdout ([`jobline::metrics::emf`]):
//! CloudWatch Logs turns it into the `Jobline` metrics the template's
//! alarms watch.

use std::sync::Arc;

use jobline::metrics::emf;
use jobline::metrics::queue::QueueSnapshot;
use jobline::queue::{Broker, Publisher};
use jobline::sweeper::{SweepConfig, SweepReport, sweep_once};
use jobline::{StartError, Store, StoreError};

/// The sweeper, built once per cold start.
#[derive(Debug, Clone)]
pub struct Sweeper {
    store: Store,
    publisher: Publisher,
    /// The broker whose stopped consumers' messages the sweep recovers
    /// (Redis, Upstash); `None` with the postgres adapter.
    broker: Option<Arc<dyn Broker>>,
    config: SweepConfig,
    metrics_out: MetricsOut,
}

/// Where each pass's EMF line goes: stdout (the function's log), or what a
/// test gives.
#[derive(Clone)]
pub struct MetricsOut(Arc<dyn Fn(&str) + Send + Sync>);

impl MetricsOut {
    /// One line per call on stdout, flushed.
    pub fn stdout() -> Self {
        Self(Arc::new(|line: &str| {
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }))
    }

    pub fn to(write: impl Fn(&str) + Send + Sync + 'static) -> Self {
        Self(Arc::new(write))
    }
}

impl std::fmt::Debug for MetricsOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsOut")
    }
}

impl Sweeper {
    pub fn new(store: Store, publisher: Publisher, config: SweepConfig) -> Self {
        Self {
            store,
            publisher,
            broker: None,
            config,
            metrics_out: MetricsOut::stdout(),
        }
    }

    /// Writes each pass's EMF line to `out` instead of stdout.
    pub fn with_metrics_out(mut self, out: MetricsOut) -> Self {
        self.metrics_out = out;
        self
    }

    /// Also recovers the in-flight messages of `broker`'s stopped consumers.
    pub fn with_broker(mut self, broker: Option<Arc<dyn Broker>>) -> Self {
        self.broker = broker;
        self
    }

    /// The store and the queue adapter the configuration chose.
    pub async fn from_config(config: &jobline::Config) -> Result<Self, StartError> {
        let store = jobline::connect(config)?;
        let feed = jobline::app::feed(config, &store).await?;
        let publisher = Publisher::new(store.clone(), feed.queue(), "sweeper");
        Ok(Self::new(store, publisher, SweepConfig::from_config(config)?).with_broker(feed.broker()))
    }

    pub fn config(&self) -> &SweepConfig {
        &self.config
    }

    /// One sweep.
    pub async fn sweep(&self) -> Result<SweepReport, StoreError> {
        sweep_once(&self.store, &self.publisher, self.broker.as_deref(), &self.config).await
    }

    /// One sweep within `budget` (the invocation's remaining time, less a
    /// margin to answer).
    pub async fn sweep_within(&self, budget: std::time::Duration) -> Result<SweepReport, StoreError> {
        let config = SweepConfig {
            budget: Some(budget),
            ..self.config.clone()
        };
        sweep_once(&self.store, &self.publisher, self.broker.as_deref(), &config).await
    }

    /// One pass of an invocation: the sweep (within `budget` when given),
    /// then the queue's gauges as one EMF line, whether or not the sweep
    /// succeeded (a gauge that cannot be read is logged, and the pass goes
    /// on: the sweep's outcome is the answer).
    pub async fn pass(&self, budget: Option<std::time::Duration>) -> Result<SweepReport, StoreError> {
        let report = match budget {
            Some(budget) => self.sweep_within(budget).await,
            None => self.sweep().await,
        };
        self.write_metrics().await;
        report
    }

    /// Reads the queue's gauges and writes them as one EMF line.
    pub async fn write_metrics(&self) {
        match QueueSnapshot::read(&self.store).await {
            Ok(snapshot) => {
                let queue = &self.store.settings().queue_name;
                let line = emf::line(&snapshot, queue, self.store.now().timestamp_millis());
                (self.metrics_out.0)(&line.to_string());
            }
            Err(e) => tracing::warn!(error = %e, "could not read the queue's gauges for the metrics"),
        }
    }

    /// One invocation: the event is ignored, the answer is the report.
    pub async fn handle(
        &self,
        _event: serde_json::Value,
    ) -> Result<serde_json::Value, lambda_runtime::Error> {
        let report = self.pass(None).await?;
        Ok(serde_json::to_value(report)?)
    }
}

/// Runs the Lambda runtime loop for the sweeper.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    let config = crate::secrets::config_from_env().await?;
    let _telemetry = jobline::telemetry::init(&config);
    let sweeper = Sweeper::from_config(&config).await?;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| {
            let sweeper = sweeper.clone();
            async move {
                let report = sweeper.pass(Some(remaining(&event.context))).await;
                jobline::telemetry::flush(jobline::telemetry::LAMBDA_FLUSH);
                Ok::<_, lambda_runtime::Error>(serde_json::to_value(report?)?)
            }
        },
    ))
    .await
}

/// What is left of the invocation's time, less a margin to answer and log
/// (at least one second, so a nearly spent invocation still does a little).
pub fn remaining(context: &lambda_runtime::Context) -> std::time::Duration {
    crate::time_left(context)
        .unwrap_or_default()
        .saturating_sub(std::time::Duration::from_secs(2))
        .max(std::time::Duration::from_secs(1))
}
