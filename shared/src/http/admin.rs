//! Operator routes: stats with a health verdict, the dead letter and its
//! replay.

use axum::Json;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use serde::Serialize;
use serde_json::{Value, json};

use super::body::{Fields, json_object};
use super::{ApiError, AppState, Caller};
use crate::store::{JobFilter, Stats};

/// When the queue counts as degraded or unhealthy (see README, "Stats").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthThresholds {
    /// `JOBLINE_HEALTH_DEGRADED_PENDING_SECONDS` (60).
    pub degraded_pending_age: f64,
    /// `JOBLINE_HEALTH_UNHEALTHY_PENDING_SECONDS` (600).
    pub unhealthy_pending_age: f64,
    /// `JOBLINE_HEALTH_DEGRADED_DEAD_LETTER` (1).
    pub degraded_dead_letter: i64,
    /// `JOBLINE_HEALTH_UNHEALTHY_DEAD_LETTER` (100).
    pub unhealthy_dead_letter: i64,
}

impl Default for HealthThresholds {
    fn default() -> Self {
        Self {
            degraded_pending_age: 60.0,
            unhealthy_pending_age: 600.0,
            degraded_dead_letter: 1,
            unhealthy_dead_letter: 100,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Healthy,
    Degraded,
    Unhealthy,
}

impl HealthThresholds {
    /// The verdict and the reasons for it.
    pub fn classify(&self, stats: &Stats) -> (Health, Vec<String>) {
        let mut health = Health::Healthy;
        let mut reasons = Vec::new();
        let age = stats.oldest_pending_age_seconds;
        if age >= self.unhealthy_pending_age {
            health = Health::Unhealthy;
            reasons.push(format!(
                "oldest pending job has waited {age:.0}s (unhealthy at {:.0}s)",
                self.unhealthy_pending_age
            ));
        } else if age >= self.degraded_pending_age {
            health = Health::Degraded;
            reasons.push(format!(
                "oldest pending job has waited {age:.0}s (degraded at {:.0}s)",
                self.degraded_pending_age
            ));
        }
        let dead = stats.dead_letter;
        if dead >= self.unhealthy_dead_letter {
            health = Health::Unhealthy;
            reasons.push(format!(
                "{dead} in the dead letter (unhealthy at {})",
                self.unhealthy_dead_letter
            ));
        } else if dead >= self.degraded_dead_letter {
            if health == Health::Healthy {
                health = Health::Degraded;
            }
            reasons.push(format!(
                "{dead} in the dead letter (degraded at {})",
                self.degraded_dead_letter
            ));
        }
        (health, reasons)
    }
}

pub async fn stats(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let tenant = caller.require("admin")?;
    let stats = state.store.stats(Some(tenant)).await?;
    let (health, reasons) = state.settings.health.classify(&stats);
    let mut body = serde_json::to_value(&stats).unwrap_or_else(|_| json!({}));
    if let Some(obj) = body.as_object_mut() {
        obj.insert("health".into(), json!(health));
        obj.insert("health_reasons".into(), json!(reasons));
    }
    Ok(Json(body))
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
    let jobs = state.store.list(tenant, &failed, limit, None).await?.jobs;
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn stats(age: f64, dead: i64) -> Stats {
        Stats {
            by_status: BTreeMap::new(),
            total: 0,
            oldest_pending_age_seconds: age,
            dead_letter: dead,
            dead_letter_jobs: dead,
            dead_letter_outbox: 0,
            p50_seconds: None,
            p95_seconds: None,
        }
    }

    #[test]
    fn a_quiet_queue_is_healthy() {
        let (h, reasons) = HealthThresholds::default().classify(&stats(5.0, 0));
        assert_eq!(h, Health::Healthy);
        assert!(reasons.is_empty());
    }

    #[test]
    fn waits_and_dead_letters_degrade_then_break_health() {
        let t = HealthThresholds::default();
        assert_eq!(t.classify(&stats(60.0, 0)).0, Health::Degraded);
        assert_eq!(t.classify(&stats(0.0, 1)).0, Health::Degraded);
        assert_eq!(t.classify(&stats(600.0, 0)).0, Health::Unhealthy);
        assert_eq!(t.classify(&stats(0.0, 100)).0, Health::Unhealthy);
        let (h, reasons) = t.classify(&stats(700.0, 3));
        assert_eq!(h, Health::Unhealthy);
        assert_eq!(reasons.len(), 2);
    }
}
