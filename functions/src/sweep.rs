//! The sweeper Lambda, run on a schedule (an EventBridge rule; any JSON
//! payload is accepted and ignored): one [`jobline::sweeper::sweep_once`]
//! per invocation, answered with its report as JSON. Safe to run in
//! parallel with itself (overlapping schedules, retried invocations).

use jobline::queue::Publisher;
use jobline::sweeper::{SweepConfig, SweepReport, sweep_once};
use jobline::{StartError, Store, StoreError};

/// The sweeper, built once per cold start.
#[derive(Debug, Clone)]
pub struct Sweeper {
    store: Store,
    publisher: Publisher,
    config: SweepConfig,
}

impl Sweeper {
    pub fn new(store: Store, publisher: Publisher, config: SweepConfig) -> Self {
        Self {
            store,
            publisher,
            config,
        }
    }

    /// The store and the queue adapter the configuration chose.
    pub async fn from_config(config: &jobline::Config) -> Result<Self, StartError> {
        let store = jobline::connect(config)?;
        let publisher = jobline::app::publisher(config, &store, "sweeper").await?;
        Ok(Self::new(store, publisher, SweepConfig::from_config(config)))
    }

    pub fn config(&self) -> &SweepConfig {
        &self.config
    }

    /// One sweep.
    pub async fn sweep(&self) -> Result<SweepReport, StoreError> {
        sweep_once(&self.store, &self.publisher, &self.config).await
    }

    /// One invocation: the event is ignored, the answer is the report.
    pub async fn handle(
        &self,
        _event: serde_json::Value,
    ) -> Result<serde_json::Value, lambda_runtime::Error> {
        let report = self.sweep().await?;
        Ok(serde_json::to_value(report)?)
    }
}

/// Runs the Lambda runtime loop for the sweeper.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    let config = jobline::Config::from_env()?;
    jobline::telemetry::init(&config);
    let sweeper = Sweeper::from_config(&config).await?;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| {
            let sweeper = sweeper.clone();
            async move { sweeper.handle(event.payload).await }
        },
    ))
    .await
}
