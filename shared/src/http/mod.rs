//! The HTTP API: one route table, served two ways from the same handlers —
//! one AWS Lambda function per route (`functions/`, via lambda_http) and all
//! routes on one port (`jobline serve`).

mod admin;
mod audit;
mod auth;
mod body;
pub mod dashboard;
mod error;
mod health;
mod jobs;
pub mod lambda;
pub mod metrics;
mod story;
mod workers;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, StatusCode};
use axum::routing::{MethodRouter, get, post};

pub use crate::domain::health::{Health, HealthThresholds};
pub use auth::Caller;
pub use error::ApiError;
pub use health::OPENAPI;

use crate::enqueue::Enqueuer;
use crate::{Config, Store};

/// What the routes need to know about the deployment.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    pub admin_key: Option<String>,
    pub max_body_bytes: usize,
    pub health: HealthThresholds,
    /// `jobline serve`'s request timeout and concurrency limit.
    pub request_timeout: std::time::Duration,
    pub max_concurrency: usize,
    /// The claims' heartbeat timeout (the audit's `stale_claims`).
    pub heartbeat_timeout: std::time::Duration,
}

impl ApiSettings {
    pub fn from_config(config: &Config) -> Self {
        Self {
            admin_key: config.admin_key.clone(),
            max_body_bytes: config.max_body_bytes,
            request_timeout: config.http_request_timeout,
            max_concurrency: config.http_max_concurrency,
            health: config.health,
            heartbeat_timeout: config.heartbeat_timeout,
        }
    }
}

/// `jobline serve`'s door: at most `permits` requests at once (503 with
/// `Retry-After` beyond), each answered within `timeout` (else 408, and the
/// connection is closed: a client trickling its body cannot hold it).
pub async fn guard(
    permits: &Arc<tokio::sync::Semaphore>,
    timeout: std::time::Duration,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let Ok(_permit) = permits.clone().try_acquire_owned() else {
        let mut busy = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "the server is at its concurrency limit; try again shortly",
        )
        .into_response();
        busy.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("1"),
        );
        return busy;
    };
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            let mut late = ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!("the request did not complete within {timeout:?}"),
            )
            .into_response();
            late.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
            late
        }
    }
}

/// Shared by every request; built once per process.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Store,
    /// The one way to create jobs (type rules, one transaction, publish).
    pub enqueuer: Enqueuer,
    pub settings: Arc<ApiSettings>,
    /// The queue's broker when it is one (the audit counts its orphaned
    /// processing lists).
    pub broker: Option<Arc<dyn crate::queue::Broker>>,
}

/// Every route of the API, named. Each is one Lambda function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteId {
    Health,
    OpenApi,
    CreateJob,
    CreateJobsBatch,
    ListJobs,
    GetJob,
    JobEvents,
    CancelJob,
    RetryJob,
    Stats,
    DeadLetterList,
    DeadLetterReplay,
    StoryScript,
    ListWorkers,
    PauseWorker,
    ResumeWorker,
    DrainWorker,
    Audit,
    /// The dashboard's pages and forms (`/dashboard` and below).
    Dashboard,
}

/// One row of the route table.
#[derive(Debug, Clone)]
pub struct RouteDef {
    pub id: RouteId,
    /// The method; `None` (`ANY` in the table) for a site of pages: every
    /// method on `path` and everything under it (the dashboard), which the
    /// OpenAPI document does not describe (its events in `template.yaml`:
    /// `ANY path` and `ANY path/{proxy+}`).
    pub method: Option<Method>,
    /// axum/OpenAPI path syntax (`{id}`).
    pub path: &'static str,
    /// The Lambda binary that serves it alone.
    pub function: &'static str,
}

macro_rules! route {
    ($id:ident, ANY, $path:literal, $function:literal) => {
        RouteDef {
            id: RouteId::$id,
            method: None,
            path: $path,
            function: $function,
        }
    };
    ($id:ident, $method:ident, $path:literal, $function:literal) => {
        RouteDef {
            id: RouteId::$id,
            method: Some(Method::$method),
            path: $path,
            function: $function,
        }
    };
}

/// The route table.
pub const ROUTES: &[RouteDef] = &[
    route!(Health, GET, "/health", "health"),
    route!(OpenApi, GET, "/openapi.json", "openapi"),
    route!(CreateJob, POST, "/v1/jobs", "create-job"),
    route!(CreateJobsBatch, POST, "/v1/jobs/batch", "create-jobs-batch"),
    route!(ListJobs, GET, "/v1/jobs", "list-jobs"),
    route!(GetJob, GET, "/v1/jobs/{id}", "get-job"),
    route!(JobEvents, GET, "/v1/jobs/{id}/events", "job-events"),
    route!(CancelJob, POST, "/v1/jobs/{id}/cancel", "cancel-job"),
    route!(RetryJob, POST, "/v1/jobs/{id}/retry", "retry-job"),
    route!(Stats, GET, "/v1/stats", "stats"),
    route!(DeadLetterList, GET, "/v1/dead-letter", "dead-letter-list"),
    route!(
        DeadLetterReplay,
        POST,
        "/v1/dead-letter/replay",
        "dead-letter-replay"
    ),
    route!(StoryScript, POST, "/api/generation/story-script", "story-script"),
    route!(ListWorkers, GET, "/v1/workers", "list-workers"),
    route!(PauseWorker, POST, "/v1/workers/{id}/pause", "pause-worker"),
    route!(ResumeWorker, POST, "/v1/workers/{id}/resume", "resume-worker"),
    route!(DrainWorker, POST, "/v1/workers/{id}/drain", "drain-worker"),
    route!(Audit, GET, "/v1/audit", "audit"),
    route!(Dashboard, ANY, "/dashboard", "dashboard"),
];

impl RouteId {
    pub fn def(self) -> &'static RouteDef {
        ROUTES
            .iter()
            .find(|r| r.id == self)
            .unwrap_or_else(|| unreachable!("every RouteId is in ROUTES"))
    }

    fn handler(self) -> MethodRouter<AppState> {
        match self {
            RouteId::Health => get(health::health),
            RouteId::OpenApi => get(health::openapi),
            RouteId::CreateJob => post(jobs::create),
            RouteId::CreateJobsBatch => post(jobs::create_batch),
            RouteId::ListJobs => get(jobs::list),
            RouteId::GetJob => get(jobs::get),
            RouteId::JobEvents => get(jobs::events),
            RouteId::CancelJob => post(jobs::cancel),
            RouteId::RetryJob => post(jobs::retry),
            RouteId::Stats => get(admin::stats),
            RouteId::DeadLetterList => get(admin::dead_letter),
            RouteId::DeadLetterReplay => post(admin::replay),
            RouteId::StoryScript => post(story::create),
            RouteId::ListWorkers => get(workers::list),
            RouteId::PauseWorker => post(workers::pause),
            RouteId::ResumeWorker => post(workers::resume),
            RouteId::DrainWorker => post(workers::drain),
            RouteId::Audit => get(audit::audit),
            // A site of pages: mounted whole by `routes` (see `site`).
            RouteId::Dashboard => MethodRouter::new(),
        }
    }

    /// The router of a site of pages (a row without a method).
    fn site(self) -> Option<Router<AppState>> {
        match self {
            RouteId::Dashboard => Some(dashboard::router()),
            _ => None,
        }
    }
}

/// The whole API (for `jobline serve` and tests).
pub fn router(state: AppState) -> Router {
    routes(state, ROUTES.iter().map(|r| r.id))
}

/// Only some routes (a Lambda function serves its own route alone).
pub fn routes(state: AppState, ids: impl IntoIterator<Item = RouteId>) -> Router {
    let mut router: Router<AppState> = Router::new();
    // Routes sharing a path share one MethodRouter.
    let mut by_path: Vec<(&'static str, MethodRouter<AppState>)> = Vec::new();
    let mut sites: Router<AppState> = Router::new();
    for id in ids {
        let def = id.def();
        if let Some(site) = id.site() {
            sites = sites.merge(site);
            continue;
        }
        match by_path.iter_mut().find(|(p, _)| *p == def.path) {
            Some((_, mr)) => *mr = std::mem::take(mr).merge(id.handler()),
            None => by_path.push((def.path, id.handler())),
        }
    }
    for (path, mr) in by_path {
        router = router.route(path, mr.fallback(method_not_allowed));
    }
    router
        .merge(sites)
        .fallback(not_found)
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method",
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Every route the router serves is in the OpenAPI document, and every
    /// operation of the document is a route.
    #[test]
    fn the_route_table_and_the_openapi_document_agree() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("valid JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        let mut documented = BTreeSet::new();
        for (path, ops) in doc["paths"].as_object().expect("paths") {
            for method in ops.as_object().expect("operations").keys() {
                if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                    documented.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        let served: BTreeSet<(String, String)> = ROUTES
            .iter()
            .filter_map(|r| Some((r.method.as_ref()?.to_string(), r.path.to_owned())))
            .collect();
        assert_eq!(served, documented);
        // Sites of pages (the dashboard) are not API operations.
        for site in ROUTES.iter().filter(|r| r.method.is_none()) {
            assert!(doc["paths"].get(site.path).is_none(), "{}", site.path);
        }
    }

    #[test]
    fn function_names_are_unique() {
        let names: BTreeSet<&str> = ROUTES.iter().map(|r| r.function).collect();
        assert_eq!(names.len(), ROUTES.len());
    }
}
