//! `GET /v1/audit?since=RFC3339`: the live audit (`store::audit`) over the
//! jobs created since `since` (default: the last 24 h), with the broker's
//! orphaned processing lists when the queue is a broker that keeps them.
//! It reads every tenant's jobs, so only the operators' tenant may run it.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};

use super::{ApiError, AppState, Caller};
use crate::store::audit::{AuditError, AuditOptions, AuditReport, DEFAULT_AUDIT_WINDOW};

pub async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<AuditReport>, ApiError> {
    if caller.require("admin")? != super::workers::OPERATOR_TENANT {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the audit reads every tenant's jobs: only an admin key of tenant 'default' may run it",
        ));
    }
    let since = match since_param(query.as_deref())? {
        Some(since) => since,
        None => state.store.now() - chrono::Duration::from_std(DEFAULT_AUDIT_WINDOW).unwrap_or_default(),
    };
    let options = AuditOptions::since(since, state.settings.heartbeat_timeout);
    let report = state
        .store
        .audit_with(&options, state.broker.as_deref())
        .await
        .map_err(from_audit)?;
    Ok(Json(report))
}

/// `since` from the query string: an RFC 3339 time, or nothing.
fn since_param(query: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or("")).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "the query string is not form-encoded",
        )
    })?;
    let mut since = None;
    for (k, v) in pairs {
        if k != "since" {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                format!("unknown query parameter {k:?} (the audit takes only since)"),
            ));
        }
        let at = DateTime::parse_from_rfc3339(&v).map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_since",
                "since must be an RFC 3339 time, such as 2026-12-01T00:00:00Z",
            )
        })?;
        since = Some(at.with_timezone(&Utc));
    }
    Ok(since)
}

fn from_audit(e: AuditError) -> ApiError {
    match e {
        AuditError::Timeout(budget) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "audit_timeout",
            format!(
                "the audit did not finish within {} ms: ask for a shorter window (since)",
                budget.as_millis()
            ),
        ),
        AuditError::Store(e) => e.into(),
        AuditError::Broker(e) => {
            tracing::warn!(error = %e, "the audit could not read the broker's processing lists");
            ApiError::unavailable()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn an_audit_out_of_time_is_a_503_audit_timeout_naming_its_budget() {
        let e = from_audit(AuditError::Timeout(Duration::from_secs(10)));
        assert_eq!(
            (e.status, e.code),
            (StatusCode::SERVICE_UNAVAILABLE, "audit_timeout")
        );
        assert!(e.message.contains("10000 ms"), "{}", e.message);
    }

    #[test]
    fn since_is_rfc3339_or_absent() {
        assert_eq!(since_param(None).expect("no query"), None);
        let at = since_param(Some("since=2026-12-01T01%3A00%3A00%2B01%3A00")).expect("a time");
        assert_eq!(
            at.map(|t| t.to_rfc3339()),
            Some("2026-12-01T00:00:00+00:00".to_owned())
        );
        let e = since_param(Some("since=24h")).expect_err("not a time");
        assert_eq!((e.status, e.code), (StatusCode::BAD_REQUEST, "invalid_since"));
        let e = since_param(Some("until=now")).expect_err("not a parameter");
        assert_eq!((e.status, e.code), (StatusCode::BAD_REQUEST, "invalid_query"));
    }
}
