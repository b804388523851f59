//! The outbox: marking messages published or failed, the dead letter of
//! undeliverable messages, and replaying it.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tracing::instrument;
use uuid::Uuid;

use super::batcher::Published;
use super::{Store, StoreError, sql};

/// Failed jobs one replay puts back at most (the oldest first).
pub const REPLAY_LIMIT: i64 = 10_000;
/// An outbox row that exhausted its publish attempts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetterOutboxRow {
    pub id: i64,
    pub job_id: Uuid,
    pub queue: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// What a publish failure did to its rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishFailure {
    /// Will be retried by the relay after backoff.
    pub retrying: Vec<i64>,
    /// Out of attempts: in the dead letter until replayed.
    pub dead_lettered: Vec<i64>,
}

/// What a dead-letter replay did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ReplayReport {
    pub updated: i64,
    pub jobs_replayed: i64,
    pub outbox_replayed: i64,
    /// The token had been used before: nothing changed.
    pub already_used: bool,
}

/// Publish attempts an outbox row gets before it is dead-lettered.
pub const OUTBOX_MAX_ATTEMPTS: i32 = 8;

/// An outbox row the relay leased: publish it, then mark it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeasedRow {
    pub outbox_id: i64,
    pub job_id: Uuid,
    pub run_after: DateTime<Utc>,
}

impl Store {
    /// How long until the next outbox row is due (zero when one is due now),
    /// `None` when none waits: the relay listener's timer.
    pub async fn next_outbox_due(&self) -> Result<Option<std::time::Duration>, StoreError> {
        let client = self.client().await?;
        let rows = sql::OUTBOX_NEXT_DUE.query(client.on(), &[]).await?;
        let at: Option<chrono::DateTime<chrono::Utc>> = rows
            .first()
            .map(|r| r.try_get("at"))
            .transpose()
            .map_err(|e| StoreError::from_db("outbox_next_due", e))?
            .flatten();
        Ok(at.map(|at| (at - self.now()).to_std().unwrap_or_default()))
    }

    /// Leases up to `limit` due outbox rows for `lease` (another relay will
    /// not see them meanwhile).
    pub async fn relay_claim(
        &self,
        limit: u32,
        lease: std::time::Duration,
    ) -> Result<Vec<LeasedRow>, StoreError> {
        let client = self.client().await?;
        let rows = sql::RELAY_CLAIM
            .query(
                client.on(),
                &[&self.now(), &i64::from(limit), &lease.as_secs_f64()],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(LeasedRow {
                    outbox_id: r.try_get("id")?,
                    job_id: r.try_get("job_id")?,
                    run_after: r.try_get("run_after")?,
                })
            })
            .collect::<Result<Vec<_>, tokio_postgres::Error>>()
            .map_err(|e| StoreError::from_db("relay_claim", e))
    }

    /// Marks outbox rows sent and writes each job's `published` event.
    /// Returns how many rows this call marked (rows another publisher already
    /// marked are not counted twice). Concurrent calls share one statement
    /// (see `store::batcher`).
    pub async fn mark_published(&self, outbox_ids: &[i64], actor: &str) -> Result<u64, StoreError> {
        if outbox_ids.is_empty() {
            return Ok(0);
        }
        let item = Published {
            outbox_ids: outbox_ids.to_vec(),
            actor: actor.to_owned(),
        };
        self.batchers.mark_published.run(self, item).await
    }

    /// `mark_published` for many callers in one statement, answering in
    /// input order.
    pub(crate) async fn mark_published_many(&self, items: &[Published]) -> Result<Vec<u64>, StoreError> {
        let ids: Vec<i64> = items.iter().flat_map(|i| i.outbox_ids.iter().copied()).collect();
        let actors: Vec<&str> = items
            .iter()
            .flat_map(|i| std::iter::repeat_n(i.actor.as_str(), i.outbox_ids.len()))
            .collect();
        let client = self.client().await?;
        let rows = sql::MARK_PUBLISHED
            .query(client.on(), &[&self.now(), &ids, &actors])
            .await?;
        let marked: HashSet<i64> = rows
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<Result<_, _>>()
            .map_err(|e| StoreError::from_db("mark_published", e))?;
        Ok(items
            .iter()
            .map(|i| i.outbox_ids.iter().filter(|id| marked.contains(id)).count() as u64)
            .collect())
    }

    /// Records a failed publish: backoff, and the dead letter after
    /// [`OUTBOX_MAX_ATTEMPTS`].
    pub async fn mark_publish_failed(
        &self,
        outbox_ids: &[i64],
        error: &str,
    ) -> Result<PublishFailure, StoreError> {
        if outbox_ids.is_empty() {
            return Ok(PublishFailure::default());
        }
        let client = self.client().await?;
        let retry = self.settings.retry;
        let rows = sql::MARK_PUBLISH_FAILED
            .query(
                client.on(),
                &[
                    &self.now(),
                    &outbox_ids.to_vec(),
                    &error.to_owned(),
                    &OUTBOX_MAX_ATTEMPTS,
                    &retry.base.as_secs_f64(),
                    &retry.cap.as_secs_f64(),
                ],
            )
            .await?;
        let mut out = PublishFailure::default();
        for row in rows {
            let id: i64 = row
                .try_get("id")
                .map_err(|e| StoreError::from_db("mark_publish_failed", e))?;
            let status: String = row
                .try_get("status")
                .map_err(|e| StoreError::from_db("mark_publish_failed", e))?;
            if status == "dead_letter" {
                out.dead_lettered.push(id);
            } else {
                out.retrying.push(id);
            }
        }
        Ok(out)
    }

    /// The tenant's dead-lettered outbox rows, newest first.
    pub async fn dead_letter_outbox(
        &self,
        tenant: &str,
        limit: u32,
    ) -> Result<Vec<DeadLetterOutboxRow>, StoreError> {
        let client = self.client().await?;
        let rows = sql::DEAD_LETTER_OUTBOX
            .query(client.on(), &[&tenant.to_owned(), &i64::from(limit)])
            .await?;
        rows.iter()
            .map(|r| {
                Ok(DeadLetterOutboxRow {
                    id: r.try_get("id")?,
                    job_id: r.try_get("job_id")?,
                    queue: r.try_get("queue")?,
                    attempts: r.try_get("attempts")?,
                    last_error: r.try_get("last_error")?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect::<Result<Vec<_>, tokio_postgres::Error>>()
            .map_err(|e| StoreError::from_db("dead_letter_outbox", e))
    }

    /// Gives up to `limit` dead-lettered outbox rows that lack their
    /// tenant (an older release dead-lettered them) their job's tenant;
    /// how many (the sweeper's step 8).
    pub async fn adopt_dead_letter_tenants(&self, limit: u32) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let rows = sql::DEAD_LETTER_ADOPT
            .query(client.on(), &[&i64::from(limit.max(1))])
            .await?;
        Ok(rows.len())
    }

    /// Replays the tenant's dead letter (failed jobs, the oldest
    /// [`REPLAY_LIMIT`] a call, and dead-lettered outbox rows; only
    /// `job_ids` when given) under `token`, at most once per token.
    #[instrument(skip(self, job_ids), fields(tenant = tenant))]
    pub async fn replay_dead_letter(
        &self,
        tenant: &str,
        token: &str,
        actor: &str,
        job_ids: Option<&[Uuid]>,
        extra_attempts: Option<i32>,
    ) -> Result<ReplayReport, StoreError> {
        let client = self.client().await?;
        let extra = extra_attempts
            .unwrap_or(self.settings.default_max_attempts)
            .clamp(1, 100);
        let rows = sql::REPLAY_DEAD_LETTER
            .query(
                client.on(),
                &[
                    &self.now(),
                    &tenant.to_owned(),
                    &token.to_owned(),
                    &actor.to_owned(),
                    &job_ids.map(<[Uuid]>::to_vec),
                    &extra,
                    &self.settings.queue_name,
                    &REPLAY_LIMIT,
                ],
            )
            .await?;
        let row = rows
            .first()
            .ok_or_else(|| StoreError::Unavailable("replay returned no row".into()))?;
        let err = |e| StoreError::from_db("replay_dead_letter", e);
        let jobs_replayed: i64 = row.try_get("jobs_replayed").map_err(err)?;
        let outbox_replayed: i64 = row.try_get("outbox_replayed").map_err(err)?;
        Ok(ReplayReport {
            updated: jobs_replayed + outbox_replayed,
            jobs_replayed,
            outbox_replayed,
            already_used: row.try_get("already_used").map_err(err)?,
        })
    }
}
