//! Operator routes: stats with a health verdict, the dead letter and its
//! replay.

use axum::Json;
use axum::body::Body;
use axum::extract::{RawQuery, State};

use serde_json::{Value, json};

use super::body::{Fields, json_object};
use super::{ApiError, AppState, Caller};
use crate::store::JobFilter;

pub async fn stats(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let tenant = caller.require("admin")?;
    let stats = state.store.stats(Some(tenant)).await?;
    let (health, reasons) = verdict(&state.settings.health, &stats);
    let mut body = serde_json::to_value(&stats).unwrap_or_else(|_| json!({}));
    if let Some(obj) = body.as_object_mut() {
        obj.insert("health".into(), json!(health));
        obj.insert("health_reasons".into(), json!(reasons));
    }
    Ok(Json(body))
}

/// The health verdict of `stats` and its reasons (`/v1/stats` and the
/// dashboard's overview): the thresholds, and degraded while a due job's
/// type has no worker.
pub(super) fn verdict(
    thresholds: &crate::domain::health::HealthThresholds,
    stats: &crate::store::Stats,
) -> (crate::domain::health::Health, Vec<String>) {
    let (mut health, mut reasons) = thresholds.classify(stats.oldest_pending_age_seconds, stats.dead_letter);
    if !stats.unserved_types.is_empty() {
        health = health.max(crate::domain::health::Health::Degraded);
        reasons.push(format!(
            "no worker serves job type(s) {}: their jobs wait",
            stats.unserved_types.join(", ")
        ));
    }
    (health, reasons)
}

pub async fn dead_letter(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let tenant = caller.require("admin")?;
    let mut limit = 100u32;
    for (k, v) in form_pairs(query.as_deref()) {
        match k.as_str() {
            "limit" => {
                limit =
                    v.parse().ok().filter(|n| (1..=500).contains(n)).ok_or_else(|| {
                        ApiError::validation("limit", "must be a whole number from 1 to 500")
                    })?;
            }
            other => return Err(ApiError::validation(other, "unknown query parameter")),
        }
    }
    let failed = JobFilter {
        status: Some(crate::JobStatus::Failed),
        ..JobFilter::default()
    };
    let jobs = caller.view_jobs(state.store.list(tenant, &failed, limit, None).await?.jobs);
    let outbox = state.store.dead_letter_outbox(tenant, limit).await?;
    Ok(Json(json!({ "jobs": jobs, "outbox": outbox })))
}

fn form_pairs(query: Option<&str>) -> Vec<(String, String)> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query.unwrap_or("")).unwrap_or_default()
}

pub async fn replay(
    State(state): State<AppState>,
    caller: Caller,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let tenant = caller.require("admin")?;
    let map = json_object(body, state.settings.max_body_bytes).await?;
    let f = Fields::new(&map, "");
    f.only(&["token", "job_ids", "max_attempts"])?;
    let token = f.required_string("token", 128)?;
    let job_ids = f.uuids("job_ids", 1000)?;
    let extra = f.integer("max_attempts", 1, 100)?.map(|n| n as i32);
    let report = state
        .store
        .replay_dead_letter(tenant, &token, &caller.actor(), job_ids.as_deref(), extra)
        .await?;
    if report.updated > 0 {
        // Replayed rows are due now: the relay publishes them on its next pass.
        tracing::info!(token = %token, jobs = report.jobs_replayed, outbox = report.outbox_replayed, "dead letter replayed");
    }
    Ok(Json(json!({
        "token": token,
        "updated": report.updated,
        "jobs_replayed": report.jobs_replayed,
        "outbox_replayed": report.outbox_replayed,
        "already_used": report.already_used,
    })))
}
