//! Building a process's shared state once: the store, the queue adapter and
//! the publisher. Every binary calls [`state`] at start (once per Lambda cold
//! start), never per request.

use std::sync::Arc;

use crate::http::{ApiSettings, AppState};
use crate::queue::postgres::PostgresQueue;
use crate::queue::{Publisher, Queue};
use crate::{Config, StartError, Store};

/// The queue adapter the configuration asks for.
pub fn queue(config: &Config, store: &Store) -> Arc<dyn Queue> {
    let queue = Arc::new(PostgresQueue::new(store.clone(), config.database_url.clone()));
    tracing::info!(
        queue = queue.kind(),
        channel = queue.channel(),
        "queue adapter chosen"
    );
    queue
}

/// The API's state; `actor` names this process in timelines (`published`).
pub fn state(config: &Config, actor: &str) -> Result<AppState, StartError> {
    let store = crate::connect(config)?;
    Ok(state_with(config, store, actor))
}

/// The API's state over an existing store (tests pass one with a manual clock).
pub fn state_with(config: &Config, store: Store, actor: &str) -> AppState {
    let queue = queue(config, &store);
    AppState {
        publisher: Publisher::new(store.clone(), queue, actor),
        store,
        settings: Arc::new(ApiSettings::from_config(config)),
    }
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
