//! The dashboard's one error type: every refusal is an HTML page with its
//! status; a 5xx says only that something failed (the detail is logged).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;

use crate::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// No such page or job, or not this tenant's (404, never 403).
    #[error("{0}")]
    NotFound(String),
    /// A POST without a valid CSRF token or from another site, or a key
    /// without the scope it needs.
    #[error("{0}")]
    Forbidden(&'static str),
    /// A form or query the dashboard did not make.
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl DashboardError {
    fn status_and_text(&self) -> (StatusCode, String) {
        match self {
            DashboardError::NotFound(what) => (StatusCode::NOT_FOUND, what.clone()),
            DashboardError::Forbidden(why) => (StatusCode::FORBIDDEN, (*why).to_owned()),
            DashboardError::BadRequest(why) => (StatusCode::BAD_REQUEST, why.clone()),
            DashboardError::Store(StoreError::NotFound(_)) => {
                (StatusCode::NOT_FOUND, "no such job".to_owned())
            }
            DashboardError::Store(StoreError::Unavailable(detail)) => {
                tracing::warn!(target: crate::telemetry::REPORT, error = %detail, "database unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the database is unavailable; this page tries again shortly".to_owned(),
                )
            }
            DashboardError::Store(StoreError::Database { statement, source })
                if source.code() == Some(&tokio_postgres::error::SqlState::QUERY_CANCELED) =>
            {
                tracing::warn!(statement, "dashboard: a statement ran past its timeout");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "this page took too long to read; it tries again shortly".to_owned(),
                )
            }
            DashboardError::Store(other) => {
                tracing::error!(error = %other, "dashboard: internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error".to_owned())
            }
        }
    }
}

impl IntoResponse for DashboardError {
    fn into_response(self) -> Response {
        let (status, text) = self.status_and_text();
        let testid = match status {
            StatusCode::NOT_FOUND => "not-found",
            StatusCode::FORBIDDEN => "forbidden",
            _ => "error",
        };
        let body = super::layout::bare(
            status.canonical_reason().unwrap_or("Error"),
            html! {
                main #main {
                    h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("Error")) }
                    p data-testid=(testid) { (text) }
                    p { a href="/dashboard" { "Back to the overview" } }
                }
            },
        );
        (status, body).into_response()
    }
}
