//! `GET /metrics`: the queue's gauges and the API's own request metrics in
//! the Prometheus text format. Served by `jobline serve` (and `jobline
//! dev`) only, not a Lambda function: it is not in the route table
//! ([`super::ROUTES`]) nor in the OpenAPI document of the Lambda stack (whose
//! sweeper writes the same gauges as CloudWatch metrics instead). The
//! metrics cover every tenant, so only the operators' tenant (`default`)
//! with the admin scope may read them, as for `/v1/workers`.

use std::sync::Arc;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use axum::{Extension, Router};

use super::workers::OPERATOR_TENANT;
use super::{ApiError, AppState, Caller};
use crate::metrics::{ApiMetrics, ScrapeError};

/// The path of the scrape route.
pub const PATH: &str = "/metrics";

/// The routes `jobline serve` adds to the route table's: `GET /metrics`.
pub fn serve_only_routes(state: AppState, metrics: Arc<ApiMetrics>) -> Router {
    Router::new()
        .route(PATH, get(scrape))
        .layer(Extension(metrics))
        .with_state(state)
}

async fn scrape(
    axum::extract::State(state): axum::extract::State<AppState>,
    Extension(metrics): Extension<Arc<ApiMetrics>>,
    caller: Caller,
) -> Result<Response, ApiError> {
    if caller.require("admin")? != OPERATOR_TENANT {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "metrics cover every tenant: only an admin key of tenant 'default' may read them",
        ));
    }
    let text = metrics.scrape(&state.store).await.map_err(|e| match e {
        ScrapeError::Store(e) => ApiError::from(e),
        ScrapeError::Metrics(e) => {
            tracing::error!(error = %e, "could not encode the metrics");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
        }
    })?;
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/metrics` is serve's own: no Lambda function, no operation of the
    /// stack's OpenAPI document.
    #[test]
    fn the_scrape_route_is_neither_a_lambda_route_nor_in_the_openapi_document() {
        assert!(super::super::ROUTES.iter().all(|r| r.path != PATH));
        let doc: serde_json::Value = serde_json::from_str(super::super::OPENAPI).expect("valid JSON");
        assert!(doc["paths"].get(PATH).is_none());
    }
}
