//! Queue health in numbers.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Store, StoreError, sql};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    /// Every status, zero included.
    pub by_status: BTreeMap<String, i64>,
    pub total: i64,
    /// How long the oldest due `pending` job has waited (0 when none waits).
    pub oldest_pending_age_seconds: f64,
    /// Failed jobs plus dead-lettered outbox rows.
    pub dead_letter: i64,
    pub dead_letter_jobs: i64,
    pub dead_letter_outbox: i64,
    /// Run time of jobs completed in the last 24 hours.
    pub p50_seconds: Option<f64>,
    pub p95_seconds: Option<f64>,
    /// Types of due pending jobs that no live worker and no configured
    /// consumer serves: they wait until one does.
    pub unserved_types: Vec<String>,
}

/// A job that is running now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunningJob {
    pub id: uuid::Uuid,
    pub job_type: String,
    pub locked_by: Option<String>,
    pub attempts: i32,
    pub stage: Option<String>,
    pub progress: Option<f32>,
    pub running_seconds: f64,
    pub heartbeat_age_seconds: f64,
}

impl RunningJob {
    /// The rows of `running.sql` or `running_for.sql`.
    pub(super) fn from_rows(rows: &[tokio_postgres::Row]) -> Result<Vec<Self>, tokio_postgres::Error> {
        rows.iter()
            .map(|r| {
                Ok(RunningJob {
                    id: r.try_get("id")?,
                    job_type: r.try_get("job_type")?,
                    locked_by: r.try_get("locked_by")?,
                    attempts: r.try_get("attempts")?,
                    stage: r.try_get("stage")?,
                    progress: r.try_get("progress")?,
                    running_seconds: r.try_get("running_seconds")?,
                    heartbeat_age_seconds: r.try_get("heartbeat_age_seconds")?,
                })
            })
            .collect()
    }
}

impl Store {
    /// Every running job with its stage, progress, running time and
    /// heartbeat age.
    pub async fn running(&self) -> Result<Vec<RunningJob>, StoreError> {
        let client = self.client().await?;
        let rows = sql::RUNNING.query(client.on(), &[&self.now()]).await?;
        RunningJob::from_rows(&rows).map_err(|e| StoreError::from_db("running", e))
    }

    /// Stats for one tenant, or for all with `None`.
    pub async fn stats(&self, tenant: Option<&str>) -> Result<Stats, StoreError> {
        let client = self.client().await?;
        let now = self.now();
        let live = now - chrono::Duration::from_std(super::WORKER_GONE_AFTER).unwrap_or_default();
        let rows = sql::STATS
            .query(
                client.on(),
                &[
                    &tenant.map(str::to_owned),
                    &now,
                    &live,
                    &self.settings.consumer_job_types,
                ],
            )
            .await?;
        let row = rows
            .first()
            .ok_or_else(|| StoreError::Unavailable("stats returned no row".into()))?;
        let err = |e| StoreError::from_db("stats", e);
        let counts: serde_json::Value = row.try_get("by_status").map_err(err)?;
        let mut by_status: BTreeMap<String, i64> = crate::domain::JobStatus::ALL
            .iter()
            .map(|s| (s.as_str().to_owned(), 0))
            .collect();
        if let Some(map) = counts.as_object() {
            for (status, n) in map {
                by_status.insert(status.clone(), n.as_i64().unwrap_or(0));
            }
        }
        let durations: Option<Vec<Option<f64>>> = row.try_get("durations").map_err(err)?;
        let durations = durations.unwrap_or_default();
        let dead_letter_jobs: i64 = row.try_get("dead_letter_jobs").map_err(err)?;
        let dead_letter_outbox: i64 = row.try_get("dead_letter_outbox").map_err(err)?;
        let oldest: Option<f64> = row.try_get("oldest_pending_age_seconds").map_err(err)?;
        let unserved: serde_json::Value = row.try_get("unserved_types").map_err(err)?;
        let unserved_types = unserved
            .as_array()
            .map(|a| a.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        Ok(Stats {
            total: by_status.values().sum(),
            by_status,
            oldest_pending_age_seconds: oldest.unwrap_or(0.0).max(0.0),
            dead_letter: dead_letter_jobs + dead_letter_outbox,
            dead_letter_jobs,
            dead_letter_outbox,
            p50_seconds: durations.first().copied().flatten(),
            p95_seconds: durations.get(1).copied().flatten(),
            unserved_types,
        })
    }
}

/// One bucket of `job_counts` for one status: how many jobs entered and
/// left it (the dashboard's charts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeriesRow {
    pub bucket: chrono::DateTime<chrono::Utc>,
    pub status: String,
    pub entered: i64,
    pub exited: i64,
}

impl Store {
    /// What entered and left each status per bucket since `since`, for a
    /// tenant and optionally one job type (from `job_counts`, never `jobs`).
    pub async fn count_series(
        &self,
        tenant: &str,
        since: chrono::DateTime<chrono::Utc>,
        job_type: Option<&str>,
    ) -> Result<Vec<SeriesRow>, StoreError> {
        let client = self.client().await?;
        let rows = sql::DASHBOARD_SERIES
            .query(
                client.on(),
                &[&tenant.to_owned(), &since, &job_type.map(str::to_owned)],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(SeriesRow {
                    bucket: r.try_get("bucket")?,
                    status: r.try_get("status")?,
                    entered: r.try_get("entered")?,
                    exited: r.try_get("exited")?,
                })
            })
            .collect::<Result<Vec<_>, tokio_postgres::Error>>()
            .map_err(|e| StoreError::from_db("dashboard_series", e))
    }
}
