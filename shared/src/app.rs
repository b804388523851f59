//! Building a process's shared state once: the store, the queue adapter and
//! the publisher. Every binary calls [`state`] at start (once per Lambda cold
//! start), never per request.

use std::sync::Arc;

use crate::config::QueueChoice;
use crate::http::{ApiSettings, AppState};
use crate::queue::postgres::PostgresQueue;
use crate::queue::redis::{RedisOptions, RedisQueue};
use crate::queue::sqs::SqsQueue;
use crate::queue::upstash::{UpstashOptions, UpstashQueue};
use crate::queue::{Publisher, Queue};
use crate::{Config, StartError, Store};

/// The queue adapter the configuration chose (`JOBLINE_QUEUE`, or what is
/// configured), logged with the reason.
pub async fn queue(config: &Config, store: &Store) -> Result<Arc<dyn Queue>, StartError> {
    let queue: Arc<dyn Queue> = match &config.queue {
        QueueChoice::Postgres => Arc::new(PostgresQueue::new(store.clone(), config.database_url.clone())),
        QueueChoice::Sqs { queue_url } => Arc::new(SqsQueue::from_env(queue_url.clone()).await),
        QueueChoice::Redis { url } => {
            Arc::new(RedisQueue::connect(url, &config.queue_name, RedisOptions::default()).await?)
        }
        QueueChoice::Upstash { url, token } => Arc::new(UpstashQueue::new(
            url,
            token,
            &config.queue_name,
            UpstashOptions::default(),
        )?),
    };
    tracing::info!(
        queue = queue.kind(),
        name = %config.queue_name,
        reason = %config.queue_reason,
        "queue adapter chosen"
    );
    Ok(queue)
}

/// A publisher over the configured queue; `actor` names this process in
/// timelines (`published`).
pub async fn publisher(config: &Config, store: &Store, actor: &str) -> Result<Publisher, StartError> {
    Ok(Publisher::new(store.clone(), queue(config, store).await?, actor))
}

/// The API's state; `actor` names this process in timelines (`published`).
pub async fn state(config: &Config, actor: &str) -> Result<AppState, StartError> {
    let store = crate::connect(config)?;
    state_with(config, store, actor).await
}

/// The API's state over an existing store (tests pass one with a manual clock).
pub async fn state_with(config: &Config, store: Store, actor: &str) -> Result<AppState, StartError> {
    Ok(AppState {
        publisher: publisher(config, &store, actor).await?,
        store,
        settings: Arc::new(ApiSettings::from_config(config)),
    })
}

/// Serves the whole API on `listener` until `shutdown` resolves (graceful:
/// requests in flight finish).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, crate::http::router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
