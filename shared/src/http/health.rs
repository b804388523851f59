//! `GET /health` (no key; says nothing secret) and `GET /openapi.json`.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;

/// The OpenAPI 3.1 document of the whole API.
pub const OPENAPI: &str = include_str!("openapi.json");

const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

pub async fn health(State(state): State<AppState>) -> Response {
    let db = tokio::time::timeout(CHECK_TIMEOUT, state.store.ping()).await;
    let db_ok = matches!(db, Ok(Ok(())));
    let queue = tokio::time::timeout(CHECK_TIMEOUT, state.enqueuer.publisher().queue().check()).await;
    let queue_ok = matches!(queue, Ok(Ok(())));
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    let status = if db_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": match (db_ok, queue_ok) {
            (true, true) => "ok",
            (true, false) => "degraded",
            _ => "unavailable",
        },
        "checks": { "database": word(db_ok), "queue": word(queue_ok) },
        "version": env!("CARGO_PKG_VERSION"),
    });
    (status, Json(body)).into_response()
}

pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}
