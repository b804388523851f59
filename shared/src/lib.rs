//! jobline: a durable job pipeline for serverless back ends.
//!
//! Everything the binaries run lives here: the domain ([`domain`]), the
//! Postgres store ([`store`]), the one way to create jobs ([`enqueue`]), the
//! queue adapters ([`queue`]), the engine that runs jobs ([`worker`]) apart
//! from the handlers it runs ([`handlers`]), the HTTP API ([`http`]), the
//! sweeper ([`sweeper`]), configuration ([`config`]), logging
//! ([`telemetry`]) and metrics ([`metrics`]); [`app`] builds a process's
//! parts from its config. The binaries in `functions/` and `edge-worker/`
//! only wire these together. See `docs/architecture.md`.

pub mod alerts;
pub mod app;
pub mod config;
pub mod domain;
pub mod enqueue;
pub mod handlers;
pub mod http;
pub mod metrics;
pub mod queue;
pub mod store;
pub mod sweeper;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod worker;

pub use async_trait::async_trait;
pub use config::{Config, ConfigError};
pub use domain::{Job, JobStatus, NewJob};
pub use store::{Store, StoreError, StoreSettings};

/// Connects the store described by `config` (the pool is lazy: nothing
/// connects until first use).
pub fn connect(config: &Config) -> Result<Store, StartError> {
    let url = config.require_database_url()?;
    let pool = store::pool::build(&store::pool::PoolOptions::new(url, config.pool_size))?;
    Ok(Store::new(pool, StoreSettings::from_config(config)))
}

/// Errors that stop a process at start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] queue::QueueError),
    #[error("could not build the alerts' HTTP client: {0}")]
    Alerts(String),
}
