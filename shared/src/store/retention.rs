//! Retention: what keeps the tables the size of the recent past. Terminal
//! jobs older than their status's retention are deleted with their events
//! and outbox rows (`prune_jobs.sql`), replay tokens with the dead letter
//! (`prune_replays.sql`), and the appended rows of `job_counts` are folded
//! (`compact_job_counts.sql`). Each call is one small statement; the sweeper
//! repeats them within its budget.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Store, StoreError, sql};

/// How long finished jobs are kept, per terminal status; `None` keeps them
/// forever (`JOBLINE_RETENTION_*_SECONDS`, `0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub completed: Option<Duration>,
    pub cancelled: Option<Duration>,
    /// The dead letter: kept longer by default, so there is time to look.
    pub failed: Option<Duration>,
}

impl Default for Retention {
    fn default() -> Self {
        const DAY: u64 = 24 * 3600;
        Self {
            completed: Some(Duration::from_secs(7 * DAY)),
            cancelled: Some(Duration::from_secs(7 * DAY)),
            failed: Some(Duration::from_secs(30 * DAY)),
        }
    }
}

impl Retention {
    /// Keeps everything.
    pub const FOREVER: Self = Self {
        completed: None,
        cancelled: None,
        failed: None,
    };

    pub fn keeps_everything(&self) -> bool {
        *self == Self::FOREVER
    }

    fn cutoff(now: DateTime<Utc>, keep: Option<Duration>) -> Option<DateTime<Utc>> {
        // A retention longer than the calendar allows keeps everything from
        // the epoch on (the configuration caps it at ten years).
        keep.map(|k| {
            chrono::Duration::from_std(k)
                .ok()
                .and_then(|k| now.checked_sub_signed(k))
                .unwrap_or(DateTime::UNIX_EPOCH)
        })
    }
}

/// A replay token is kept at least this long, whatever the failed jobs'
/// retention (a token's promise: the same token twice replays nothing).
pub const REPLAY_TOKEN_MIN_AGE: Duration = Duration::from_secs(30 * 24 * 3600);

/// One pass of [`Store::prune_jobs`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PrunedJobs {
    pub completed: usize,
    pub cancelled: usize,
    pub failed: usize,
}

impl PrunedJobs {
    pub fn total(&self) -> usize {
        self.completed + self.cancelled + self.failed
    }

    pub fn add(&mut self, other: PrunedJobs) {
        self.completed += other.completed;
        self.cancelled += other.cancelled;
        self.failed += other.failed;
    }
}

impl Store {
    /// Deletes up to `limit` terminal jobs past their retention, with their
    /// events and outbox rows, in one statement. Jobs another transaction
    /// holds (a retry, a replay) are skipped, not waited for.
    pub async fn prune_jobs(&self, retention: &Retention, limit: u32) -> Result<PrunedJobs, StoreError> {
        let now = self.now();
        let client = self.client().await?;
        let rows = sql::PRUNE_JOBS
            .query(
                client.on(),
                &[
                    &now,
                    &Retention::cutoff(now, retention.completed),
                    &Retention::cutoff(now, retention.cancelled),
                    &Retention::cutoff(now, retention.failed),
                    &i64::from(limit.max(1)),
                ],
            )
            .await?;
        let mut pruned = PrunedJobs::default();
        for row in &rows {
            let status: &str = row
                .try_get("status")
                .map_err(|e| StoreError::from_db("prune_jobs", e))?;
            match status {
                "completed" => pruned.completed += 1,
                "cancelled" => pruned.cancelled += 1,
                _ => pruned.failed += 1,
            }
        }
        Ok(pruned)
    }

    /// Deletes up to `limit` dead-letter replay tokens older than the failed
    /// jobs' retention, and at least [`REPLAY_TOKEN_MIN_AGE`] old (nothing
    /// when the dead letter is kept forever): a client retrying a replay
    /// with its token within that time replays nothing twice.
    pub async fn prune_replays(&self, retention: &Retention, limit: u32) -> Result<usize, StoreError> {
        let keep = retention.failed.map(|f| f.max(REPLAY_TOKEN_MIN_AGE));
        let Some(cutoff) = Retention::cutoff(self.now(), keep) else {
            return Ok(0);
        };
        let client = self.client().await?;
        let rows = sql::PRUNE_REPLAYS
            .query(client.on(), &[&cutoff, &i64::from(limit.max(1))])
            .await?;
        Ok(rows.len())
    }

    /// Folds the rows of `job_counts` that need it (see
    /// `compact_job_counts.sql`); answers how many it took (0: compact).
    pub async fn compact_job_counts(&self) -> Result<usize, StoreError> {
        let now = self.now();
        let hour_ago = now - chrono::Duration::hours(1);
        let day_ago = now - chrono::Duration::days(1);
        let client = self.client().await?;
        let rows = sql::COMPACT_JOB_COUNTS
            .query(client.on(), &[&hour_ago, &day_ago])
            .await?;
        let taken: i64 = rows
            .first()
            .map(|r| r.try_get("taken"))
            .transpose()
            .map_err(|e| StoreError::from_db("compact_job_counts", e))?
            .unwrap_or(0);
        Ok(usize::try_from(taken).unwrap_or(0))
    }
}
