//! The one error type of the API. Every error answers
//! `{"error": {"code": "...", "message": "..."}}`; 5xx details are logged,
//! never sent.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::StoreError;
use crate::domain::JobType;
use crate::enqueue::EnqueueError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid API key is required (Authorization: Bearer <key> or X-Api-Key: <key>)",
        )
    }

    pub fn forbidden(scope: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this key lacks the {scope} scope"),
        )
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    pub fn invalid_json(detail: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body is not valid JSON: {detail}"),
        )
    }

    pub fn validation(field: &str, problem: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            format!("{field}: {problem}"),
        )
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than {limit} bytes"),
        )
    }

    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the service is temporarily unavailable; try again",
        )
    }

    fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
    }
}

impl ApiError {
    /// An enqueue refusal, naming the type field of the job it is about
    /// (`field(index)`: `type` for a single create, `jobs[i].type` in a batch).
    pub fn from_enqueue(e: EnqueueError, field: impl Fn(usize) -> String) -> Self {
        match e {
            EnqueueError::InvalidType { index, .. } => ApiError::validation(&field(index), JobType::RULE),
            EnqueueError::UnknownType { index, job_type } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_job_type",
                format!(
                    "{}: {job_type:?} is not a job type of this deployment",
                    field(index)
                ),
            ),
            EnqueueError::Store(e) => e.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(id) => ApiError::not_found(format!("job {id} not found")),
            StoreError::InvalidTransition { status, action, .. } => ApiError::new(
                StatusCode::CONFLICT,
                "invalid_state",
                format!("the job is {status}: cannot {action} it"),
            ),
            StoreError::IdempotencyConflict { key, existing } => ApiError::new(
                StatusCode::CONFLICT,
                "idempotency_conflict",
                format!("idempotency key {key:?} was already used with a different request (job {existing})"),
            ),
            StoreError::Rejected(message) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", message)
            }
            StoreError::Unavailable(detail) => {
                tracing::warn!(target: crate::telemetry::REPORT, error = %detail, "database unavailable");
                ApiError::unavailable()
            }
            other => {
                tracing::error!(error = %other, "internal error");
                ApiError::internal()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        (self.status, Json(body)).into_response()
    }
}
