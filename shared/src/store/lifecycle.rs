//! Finishing, failing, cancelling, retrying and releasing jobs.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tracing::instrument;
use uuid::Uuid;

use super::batcher::Completion;
use super::{Claim, Store, StoreError, sql};
use crate::domain::{FailureKind, Job, JobStatus, NextStep};

/// The answer of an operation guarded by a claim's fencing token.
#[derive(Debug, Clone)]
pub enum Settled<T> {
    /// The change was applied.
    Applied(T),
    /// The claim was no longer current (released, cancelled, or finished by
    /// someone else): nothing changed.
    Stale,
}

impl<T> Settled<T> {
    pub fn is_stale(&self) -> bool {
        matches!(self, Settled::Stale)
    }
}

/// A failed attempt, as the handler reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFailure {
    /// Machine-readable, e.g. `HTTP_503`, `TIMEOUT`, `PANIC`.
    pub code: String,
    pub message: String,
    pub kind: FailureKind,
}

impl JobFailure {
    pub fn retryable(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            kind: FailureKind::Retryable,
        }
    }

    pub fn permanent(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            kind: FailureKind::Permanent,
        }
    }
}

/// Where a failed attempt left the job.
#[derive(Debug, Clone)]
pub enum FailOutcome {
    /// Back to `pending`, due again at `job.run_after`.
    Retrying(Job),
    /// `failed`: the dead letter.
    Failed(Job),
}

/// A job put back to `pending` by an operator, with the outbox row that
/// will wake a worker for it.
#[derive(Debug, Clone)]
pub struct Requeued {
    pub job: Job,
    pub outbox_id: i64,
}

/// What one stale-release pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReleaseReport {
    /// Back to `pending` for another attempt.
    pub requeued: Vec<Uuid>,
    /// Attempts spent: `failed` with `HEARTBEAT_TIMEOUT`.
    pub failed: Vec<Uuid>,
}

impl ReleaseReport {
    pub fn total(&self) -> usize {
        self.requeued.len() + self.failed.len()
    }
}

const MAX_REASON_CHARS: usize = 4000;

impl Store {
    /// processing → completed, only with the current claim. Concurrent
    /// completions of this store share one statement (see
    /// [`super::batcher`]); each is still fenced by its own claim.
    #[instrument(skip(self, claim, result), fields(job_id = %claim.job.id, attempt = claim.job.attempts))]
    pub async fn complete(
        &self,
        claim: &Claim,
        result: Option<Value>,
        result_uri: Option<&str>,
    ) -> Result<Settled<Job>, StoreError> {
        let completion = Completion {
            token: claim.token(),
            result,
            result_uri: result_uri.map(str::to_owned),
            worker: claim.worker.clone(),
        };
        self.batchers.complete.run(self, completion).await
    }

    /// processing → completed for many claims in one statement, answering
    /// in input order; a completion whose claim is no longer current is
    /// `Stale` and changes nothing.
    pub async fn complete_many(&self, completions: &[Completion]) -> Result<Vec<Settled<Job>>, StoreError> {
        if completions.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = completions.iter().map(|c| c.token.job_id).collect();
        let attempts: Vec<i32> = completions.iter().map(|c| c.token.attempt).collect();
        let results: Vec<Option<&Value>> = completions.iter().map(|c| c.result.as_ref()).collect();
        let uris: Vec<Option<&str>> = completions.iter().map(|c| c.result_uri.as_deref()).collect();
        let workers: Vec<&str> = completions.iter().map(|c| c.worker.as_str()).collect();
        let client = self.client().await?;
        let rows = sql::COMPLETE_MANY
            .query(
                client.on(),
                &[&self.now(), &ids, &attempts, &results, &uris, &workers],
            )
            .await?;
        // Keyed by the claim (job and attempt): a batch may hold an outdated
        // and the current claim of one job, and only the current one applied.
        let mut done: HashMap<(Uuid, i32), Job> = HashMap::with_capacity(rows.len());
        for row in &rows {
            let job = Job::from_row(row).map_err(|e| StoreError::from_db("complete_many", e))?;
            done.insert((job.id, job.attempts), job);
        }
        Ok(completions
            .iter()
            .map(|c| match done.remove(&(c.token.job_id, c.token.attempt)) {
                Some(job) => Settled::Applied(job),
                None => Settled::Stale,
            })
            .collect())
    }

    /// processing → pending (backoff) or failed, as the retry policy decides,
    /// only with the current claim. `jitter` is a draw in [0, 1).
    #[instrument(skip(self, claim, failure), fields(job_id = %claim.job.id, attempt = claim.job.attempts, code = %failure.code))]
    pub async fn fail(
        &self,
        claim: &Claim,
        failure: &JobFailure,
    ) -> Result<Settled<FailOutcome>, StoreError> {
        self.fail_with_jitter(claim, failure, rand::random::<f64>()).await
    }

    pub async fn fail_with_jitter(
        &self,
        claim: &Claim,
        failure: &JobFailure,
        jitter: f64,
    ) -> Result<Settled<FailOutcome>, StoreError> {
        let now = self.now();
        let token = claim.token();
        let step =
            self.settings
                .retry
                .decide(now, token.attempt, claim.job.max_attempts, failure.kind, jitter);
        let (next, run_after): (&str, Option<DateTime<Utc>>) = match step {
            NextStep::Retry { run_after, .. } => ("pending", Some(run_after)),
            NextStep::Fail => ("failed", None),
        };
        // Postgres cannot store a NUL character in text: a handler's error
        // text may hold one, and the failure must be recorded all the same.
        let reason: String = storable(&failure.message)
            .chars()
            .take(MAX_REASON_CHARS)
            .collect();
        let code: String = storable(&failure.code).chars().take(64).collect();
        let client = self.client().await?;
        let rows = sql::FAIL
            .query(
                client.on(),
                &[
                    &now,
                    &token.job_id,
                    &token.attempt,
                    &next.to_owned(),
                    &run_after,
                    &code,
                    &reason,
                    &claim.worker,
                ],
            )
            .await?;
        Ok(match settled(rows.first(), "fail")? {
            Settled::Stale => Settled::Stale,
            Settled::Applied(job) if job.status == JobStatus::Failed => {
                Settled::Applied(FailOutcome::Failed(job))
            }
            Settled::Applied(job) => Settled::Applied(FailOutcome::Retrying(job)),
        })
    }

    /// pending | processing → cancelled. `tenant` `None` is an operator acting
    /// on any tenant's job.
    #[instrument(skip(self), fields(job_id = %id))]
    pub async fn cancel(&self, tenant: Option<&str>, id: Uuid, actor: &str) -> Result<Job, StoreError> {
        let rows = {
            let client = self.client().await?;
            sql::CANCEL
                .query(
                    client.on(),
                    &[&self.now(), &id, &tenant.map(str::to_owned), &actor.to_owned()],
                )
                .await?
        };
        self.transition_result(rows.first(), tenant, id, "cancel").await
    }

    /// failed | cancelled → pending with `extra_attempts` more attempts, and
    /// a new message to publish.
    #[instrument(skip(self), fields(job_id = %id))]
    pub async fn retry(
        &self,
        tenant: Option<&str>,
        id: Uuid,
        actor: &str,
        extra_attempts: Option<i32>,
    ) -> Result<Requeued, StoreError> {
        let event = "retried";
        let now = self.now();
        let extra = extra_attempts
            .unwrap_or(self.settings.default_max_attempts)
            .clamp(1, 100);
        let rows = {
            let client = self.client().await?;
            sql::RETRY
                .query(
                    client.on(),
                    &[
                        &now,
                        &id,
                        &tenant.map(str::to_owned),
                        &actor.to_owned(),
                        &extra,
                        &event.to_owned(),
                        &self.settings.queue_name,
                        &self.outbox_due(now),
                    ],
                )
                .await?
        };
        let job = self.transition_result(rows.first(), tenant, id, "retry").await?;
        let outbox_id = rows
            .first()
            .map(|r| r.try_get("outbox_id"))
            .transpose()
            .map_err(|e| StoreError::from_db("retry", e))?
            .unwrap_or_default();
        Ok(Requeued { job, outbox_id })
    }

    /// Releases up to `limit` claims whose heartbeat is older than `timeout`:
    /// back to `pending`, or `failed` with `HEARTBEAT_TIMEOUT` when attempts
    /// are spent. Safe to run in several processes at once.
    #[instrument(skip(self))]
    pub async fn release_stale(
        &self,
        timeout: std::time::Duration,
        limit: u32,
    ) -> Result<ReleaseReport, StoreError> {
        let now = self.now();
        let client = self.client().await?;
        let rows = sql::RELEASE_STALE
            .query(
                client.on(),
                &[
                    &now,
                    &timeout.as_secs_f64(),
                    &i64::from(limit),
                    &self.settings.queue_name,
                    &"sweeper".to_owned(),
                ],
            )
            .await?;
        let mut report = ReleaseReport::default();
        for row in rows {
            let id: Uuid = row
                .try_get("id")
                .map_err(|e| StoreError::from_db("release_stale", e))?;
            let status: JobStatus = row
                .try_get("status")
                .map_err(|e| StoreError::from_db("release_stale", e))?;
            if status == JobStatus::Failed {
                report.failed.push(id);
            } else {
                report.requeued.push(id);
            }
        }
        if report.total() > 0 {
            tracing::warn!(
                requeued = report.requeued.len(),
                failed = report.failed.len(),
                "released stale claims"
            );
        }
        Ok(report)
    }

    async fn transition_result(
        &self,
        row: Option<&tokio_postgres::Row>,
        tenant: Option<&str>,
        id: Uuid,
        action: &'static str,
    ) -> Result<Job, StoreError> {
        if let Some(row) = row {
            return Job::from_row(row).map_err(|e| StoreError::from_db(action, e));
        }
        match self.fetch(tenant, id).await? {
            None => Err(StoreError::NotFound(id)),
            Some(job) => Err(StoreError::InvalidTransition {
                id,
                status: job.status,
                action,
            }),
        }
    }
}

fn settled(row: Option<&tokio_postgres::Row>, statement: &'static str) -> Result<Settled<Job>, StoreError> {
    match row {
        None => Ok(Settled::Stale),
        Some(row) => Job::from_row(row)
            .map(Settled::Applied)
            .map_err(|e| StoreError::from_db(statement, e)),
    }
}

/// `text` as Postgres can store it: a NUL character becomes U+FFFD.
pub(crate) fn storable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        std::borrow::Cow::Owned(text.replace('\0', "\u{fffd}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}
