//! Building a process's parts once, from its one [`Config`]: the store, the
//! queue adapter (as the [`Feed`] its consumers need and the [`Queue`] its
//! publishers need), the handler registry, the processor, the enqueuer and
//! the API's state. Every binary calls these at start (once per Lambda cold
//! start), never per request.

use std::sync::Arc;

use crate::config::QueueChoice;
use crate::enqueue::Enqueuer;
use crate::http::{ApiSettings, AppState};
use crate::queue::postgres::PostgresQueue;
use crate::queue::redis::{RedisOptions, RedisQueue};
use crate::queue::sqs::SqsQueue;
use crate::queue::upstash::{UpstashOptions, UpstashQueue};
use crate::queue::{Feed, Publisher, Queue};
use crate::worker::{Processor, Registry};
use crate::{Config, StartError, Store};

/// The queue adapter the configuration chose (`JOBLINE_QUEUE`, or what is
/// configured), as the feed its consumers take, logged with the reason.
pub async fn feed(config: &Config, store: &Store) -> Result<Feed, StartError> {
    let feed = match &config.queue {
        QueueChoice::Postgres => Feed::Claim(Arc::new(PostgresQueue::new(
            store.clone(),
            config.database_url.clone(),
        ))),
        QueueChoice::Sqs { queue_url } => {
            Feed::Deliveries(Arc::new(SqsQueue::from_env(queue_url.clone()).await))
        }
        QueueChoice::Redis { url } => Feed::Deliveries(Arc::new(
            RedisQueue::connect(url, &config.queue_name, RedisOptions::default()).await?,
        )),
        QueueChoice::Upstash { url, token } => Feed::Deliveries(Arc::new(UpstashQueue::new(
            url,
            token,
            &config.queue_name,
            UpstashOptions::default(),
        )?)),
    };
    tracing::info!(
        queue = feed.kind(),
        name = %config.queue_name,
        reason = %config.queue_reason,
        "queue adapter chosen"
    );
    Ok(feed)
}

/// The configured adapter's publishing side.
pub async fn queue(config: &Config, store: &Store) -> Result<Arc<dyn Queue>, StartError> {
    Ok(feed(config, store).await?.queue())
}

/// A publisher over the configured queue; `actor` names this process in
/// timelines (`published`).
pub async fn publisher(config: &Config, store: &Store, actor: &str) -> Result<Publisher, StartError> {
    Ok(Publisher::new(store.clone(), queue(config, store).await?, actor))
}

/// The one way to create jobs, over `queue`: the job-type rules of
/// `config`, one transaction, the publish after commit.
pub fn enqueuer(config: &Config, store: &Store, queue: Arc<dyn Queue>, actor: &str) -> Enqueuer {
    Enqueuer::new(
        Publisher::new(store.clone(), queue, actor),
        config.job_types.clone(),
    )
}

/// The handlers a deployment runs (built-ins, `webhook`, `story_script`),
/// configured from `config`'s sections.
pub fn registry(config: &Config) -> Registry {
    crate::handlers::production(config)
}

/// The processing core for a consumer named `worker`: the production
/// registry and the configured heartbeat.
pub fn processor(config: &Config, store: Store, worker: impl Into<String>) -> Processor {
    Processor::new(
        store,
        Arc::new(registry(config)),
        config.heartbeat_interval,
        worker,
    )
}

/// The API's state; `actor` names this process in timelines (`published`).
pub async fn state(config: &Config, actor: &str) -> Result<AppState, StartError> {
    let store = crate::connect(config)?;
    state_with(config, store, actor).await
}

/// The API's state over an existing store (tests pass one with a manual clock).
pub async fn state_with(config: &Config, store: Store, actor: &str) -> Result<AppState, StartError> {
    let feed = feed(config, &store).await?;
    Ok(state_on(config, store, &feed, actor))
}

/// The API's state over an existing store and queue adapter (`jobline dev`
/// shares its adapter with its worker).
pub fn state_on(config: &Config, store: Store, feed: &Feed, actor: &str) -> AppState {
    AppState {
        enqueuer: enqueuer(config, &store, feed.queue(), actor),
        store,
        settings: Arc::new(ApiSettings::from_config(config)),
        broker: feed.broker(),
    }
}

/// Serves the whole API on `listener` until `shutdown` resolves (graceful:
/// requests in flight finish). A slow or hostile client cannot hold the
/// server: headers must arrive within the request timeout (else the
/// connection is closed), a request not answered within it gets 408 and its
/// connection closed, and beyond the concurrency limit a request gets 503
/// with `Retry-After` at once. Besides the route table, it serves `GET
/// /metrics` ([`crate::http::metrics`]) and counts every request
/// ([`crate::metrics::http`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use tower::ServiceExt as _;

    let timeout = state.settings.request_timeout;
    let permits = Arc::new(tokio::sync::Semaphore::new(state.settings.max_concurrency.max(1)));
    // One registry per server: its requests, and the queue's gauges read at
    // scrape time (`GET /metrics`, serve-only: not a Lambda route).
    let metrics = Arc::new(crate::metrics::ApiMetrics::new().map_err(std::io::Error::other)?);
    let http_metrics = metrics.http.clone();
    let app = crate::http::router(state.clone())
        .merge(crate::http::metrics::serve_only_routes(state, metrics))
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let permits = permits.clone();
                async move { crate::http::guard(&permits, timeout, req, next).await }
            },
        ))
        // Outside the guard: its 503 and 408 answers are counted too.
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                crate::metrics::http::track(http_metrics.clone(), req, next)
            },
        ));
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        while connections.try_join_next().is_some() {}
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: wait a moment.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let service = hyper_util::service::TowerToHyperService::new(
            app.clone()
                .map_request(|r: http::Request<hyper::body::Incoming>| r.map(axum::body::Body::new)),
        );
        let mut stopping = stopping.clone();
        connections.spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(timeout)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended");
                    }
                }
                _ = stopping.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    let _ = stop.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Starts the outbox relay's listener ([`crate::queue::relay::listen`]) for
/// a long-running process (`jobline worker`, `serve`, `dev`), so jobs
/// enqueued by SQL are published at once; `None` without a direct database
/// URL. It stops when `stop` turns true.
pub fn spawn_outbox_listener(
    config: &Config,
    publisher: Publisher,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let url = config.database_url.clone()?;
    Some(tokio::spawn(crate::queue::relay::listen(publisher, url, stop)))
}
