//! The worker registry: each worker upserts its row on every beat and reads
//! back what the operator wants (`running`, `paused`, `draining`).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Store, StoreError, sql};

/// What an operator can ask of a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerCommand {
    /// Take work as usual.
    Running,
    /// Finish what is in flight, take nothing new, stay up.
    Paused,
    /// Finish what is in flight, then exit.
    Draining,
}

impl WorkerCommand {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerCommand::Running => "running",
            WorkerCommand::Paused => "paused",
            WorkerCommand::Draining => "draining",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "paused" => WorkerCommand::Paused,
            "draining" => WorkerCommand::Draining,
            _ => WorkerCommand::Running,
        }
    }
}

/// A worker's report of itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerBeat {
    pub id: String,
    pub host: String,
    pub version: String,
    pub queue: String,
    pub concurrency: i32,
    pub started_at: DateTime<Utc>,
    pub in_flight: i32,
    pub processed: i64,
    pub failed: i64,
    /// `running`, `paused`, `draining` or `stopped`.
    pub state: String,
    /// The job types it serves (`None`: every type).
    pub job_types: Option<Vec<String>>,
}

/// A registered worker as operators see it: its last report (with `state`
/// as seen now: `gone` when it has not beaten for a while), when that was,
/// and what the operator asked of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerInfo {
    #[serde(flatten)]
    pub worker: WorkerBeat,
    pub last_seen_at: DateTime<Utc>,
    pub last_seen_seconds_ago: f64,
    /// What the operator asked for.
    pub desired_state: String,
}

impl Store {
    /// Registers or refreshes a worker; answers what it should do now.
    pub async fn worker_beat(&self, beat: &WorkerBeat) -> Result<WorkerCommand, StoreError> {
        let client = self.client().await?;
        let rows = sql::WORKER_BEAT
            .query(
                client.on(),
                &[
                    &self.now(),
                    &beat.id,
                    &beat.host,
                    &beat.version,
                    &beat.queue,
                    &beat.concurrency,
                    &beat.started_at,
                    &beat.in_flight,
                    &beat.processed,
                    &beat.failed,
                    &beat.state,
                    &beat.job_types,
                ],
            )
            .await?;
        let desired: String = rows
            .first()
            .map(|r| r.try_get(0))
            .transpose()
            .map_err(|e| StoreError::from_db("worker_beat", e))?
            .unwrap_or_default();
        Ok(WorkerCommand::parse(&desired))
    }

    /// Every registered worker; `gone_after` without a beat means gone.
    pub async fn workers(&self, gone_after: std::time::Duration) -> Result<Vec<WorkerInfo>, StoreError> {
        let now = self.now();
        let cutoff = now - chrono::Duration::from_std(gone_after).unwrap_or_default();
        let client = self.client().await?;
        let rows = sql::WORKER_LIST.query(client.on(), &[&now, &cutoff]).await?;
        rows.iter()
            .map(|r| {
                Ok(WorkerInfo {
                    worker: WorkerBeat {
                        id: r.try_get("id")?,
                        host: r.try_get("host")?,
                        version: r.try_get("version")?,
                        queue: r.try_get("queue")?,
                        concurrency: r.try_get("concurrency")?,
                        started_at: r.try_get("started_at")?,
                        in_flight: r.try_get("in_flight")?,
                        processed: r.try_get("processed")?,
                        failed: r.try_get("failed")?,
                        state: r.try_get("state")?,
                        job_types: r.try_get("job_types")?,
                    },
                    last_seen_at: r.try_get("last_seen_at")?,
                    last_seen_seconds_ago: r.try_get("last_seen_seconds_ago")?,
                    desired_state: r.try_get("desired_state")?,
                })
            })
            .collect::<Result<Vec<_>, tokio_postgres::Error>>()
            .map_err(|e| StoreError::from_db("worker_list", e))
    }

    /// Deletes up to `limit` registrations not seen for `older_than`; how
    /// many it deleted.
    pub async fn forget_workers(
        &self,
        older_than: std::time::Duration,
        limit: u32,
    ) -> Result<usize, StoreError> {
        let cutoff = self.now() - chrono::Duration::from_std(older_than).unwrap_or_default();
        let client = self.client().await?;
        let rows = sql::FORGET_WORKERS
            .query(client.on(), &[&cutoff, &i64::from(limit)])
            .await?;
        Ok(rows.len())
    }

    /// Asks a worker to run, pause or drain; `false` when no such worker.
    pub async fn steer_worker(&self, id: &str, command: WorkerCommand) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let rows = sql::WORKER_STEER
            .query(client.on(), &[&id.to_owned(), &command.as_str().to_owned()])
            .await?;
        Ok(!rows.is_empty())
    }
}
