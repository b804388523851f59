//! Claiming jobs and keeping a claim alive.

use chrono::{DateTime, Utc};
use tracing::instrument;
use uuid::Uuid;

use super::{Store, StoreError, sql};
use crate::domain::{Job, JobStatus};

/// The fencing token of a claim: the job and the attempt it is on. Only the
/// holder of the current token can heartbeat, complete or fail the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClaimToken {
    pub job_id: Uuid,
    pub attempt: i32,
}

/// A job this worker now holds.
#[derive(Debug, Clone)]
pub struct Claim {
    pub job: Job,
    pub worker: String,
}

impl Claim {
    pub fn token(&self) -> ClaimToken {
        ClaimToken {
            job_id: self.job.id,
            attempt: self.job.attempts,
        }
    }
}

/// What claiming one job by id came to.
#[derive(Debug, Clone)]
pub enum ClaimByIdOutcome {
    Claimed(Box<Claim>),
    /// No such job: drop the message.
    NotFound,
    /// Completed, failed or cancelled: drop the message.
    Done(JobStatus),
    /// Not due until this time: delay the message by the rest.
    NotDue(DateTime<Utc>),
    /// Another worker holds it: drop the message.
    ClaimedElsewhere {
        by: Option<String>,
    },
    /// Claimable, but not of the types this worker takes: give the message
    /// back for a worker that does.
    OtherType(String),
    /// It was claimable a moment ago and someone else just took or changed
    /// it: drop the message.
    Contended,
    /// Not claimed, and why could not be read (the database went away
    /// between the claim of a batch and the read of the rest): bring the
    /// message back later.
    Unread,
}

/// What a heartbeat learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartbeatOutcome {
    /// The claim is renewed.
    Alive,
    /// The job was cancelled: stop working on it.
    Cancelled,
    /// The claim is gone (released as stale, or the job moved on): stop; any
    /// complete or fail from this claim will change nothing.
    Lost,
}

impl Store {
    /// Claims up to `limit` due jobs, highest priority first.
    pub async fn claim(
        &self,
        worker: &str,
        limit: u32,
        types: Option<&[String]>,
    ) -> Result<Vec<Claim>, StoreError> {
        self.claim_ahead(worker, limit, limit, types).await
    }

    /// Claims up to `limit` due jobs, highest priority first, for a worker
    /// with `free` slots: beyond those, only jobs with an attempt left after
    /// this one (claims held ahead, in a local queue, lost with their worker
    /// cost an attempt; never a job's last).
    #[instrument(skip(self, types), fields(worker = worker))]
    pub async fn claim_ahead(
        &self,
        worker: &str,
        limit: u32,
        free: u32,
        types: Option<&[String]>,
    ) -> Result<Vec<Claim>, StoreError> {
        let client = self.client().await?;
        let now = self.now();
        let rows = sql::CLAIM_BATCH
            .query(
                client.on(),
                &[&now, &worker, &i64::from(limit), &types, &i64::from(free)],
            )
            .await?;
        claims(&rows, worker, "claim_batch")
    }

    /// Gives back claims `worker` took and never started (its local queue):
    /// pending again, the attempt not spent, each with a `handed_back`
    /// event and, when `republish`, an outbox row to publish it again (not
    /// for a consumer that gives its own message back). Says how many went
    /// back (a claim that moved on meanwhile, cancelled say, is left alone).
    #[instrument(skip(self, claims), fields(worker = worker, claims = claims.len()))]
    pub async fn hand_back(
        &self,
        worker: &str,
        claims: &[ClaimToken],
        republish: bool,
    ) -> Result<u64, StoreError> {
        if claims.is_empty() {
            return Ok(0);
        }
        let ids: Vec<Uuid> = claims.iter().map(|c| c.job_id).collect();
        let attempts: Vec<i32> = claims.iter().map(|c| c.attempt).collect();
        let client = self.client().await?;
        let rows = sql::HAND_BACK
            .query(
                client.on(),
                &[
                    &self.now(),
                    &ids,
                    &attempts,
                    &worker,
                    &self.settings.queue_name,
                    &republish,
                ],
            )
            .await?;
        Ok(rows.len() as u64)
    }

    /// The claims `worker` holds right now.
    pub async fn claims_of(&self, worker: &str) -> Result<Vec<Claim>, StoreError> {
        let client = self.client().await?;
        let rows = sql::CLAIMS_OF.query(client.on(), &[&worker]).await?;
        claims(&rows, worker, "claims_of")
    }

    /// Claims the one job a queue message points at, or says why not.
    pub async fn claim_by_id(&self, worker: &str, id: Uuid) -> Result<ClaimByIdOutcome, StoreError> {
        self.claim_by_id_of_types(worker, id, None).await
    }

    /// [`Store::claim_by_id`] for a worker that takes only `types`.
    pub async fn claim_by_id_of_types(
        &self,
        worker: &str,
        id: Uuid,
        types: Option<&[String]>,
    ) -> Result<ClaimByIdOutcome, StoreError> {
        let mut outcomes = self.claim_by_ids(worker, &[id], types).await?;
        Ok(outcomes.pop().unwrap_or(ClaimByIdOutcome::NotFound))
    }

    /// Claims the jobs of a batch of queue messages in one statement (an id
    /// twice: claimed once, the second told [`ClaimByIdOutcome::ClaimedElsewhere`]);
    /// says, in the order of `ids`, what became of each. Those not claimed
    /// are read in one more statement, only when there are any.
    #[instrument(skip(self, ids, types), fields(jobs = ids.len(), worker = worker))]
    pub async fn claim_by_ids(
        &self,
        worker: &str,
        ids: &[Uuid],
        types: Option<&[String]>,
    ) -> Result<Vec<ClaimByIdOutcome>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.now();
        let rows = {
            let client = self.client().await?;
            sql::CLAIM_BY_IDS
                .query(client.on(), &[&now, &worker, &ids, &types])
                .await?
        };
        let mut claimed: std::collections::HashMap<Uuid, Job> = rows
            .iter()
            .map(|row| Job::from_row(row).map(|job| (job.id, job)))
            .collect::<Result<_, _>>()
            .map_err(|e| StoreError::from_db("claim_by_ids", e))?;
        let rest: Vec<Uuid> = ids
            .iter()
            .filter(|id| !claimed.contains_key(id))
            .copied()
            .collect();
        // The claims are committed: a failed read of the others must not
        // lose them (those others come back later, `Unread`).
        let others: Option<std::collections::HashMap<Uuid, Job>> = if rest.is_empty() {
            Some(Default::default())
        } else {
            match self.jobs_by_ids(&rest).await {
                Ok(jobs) => Some(jobs),
                Err(e) => {
                    tracing::warn!(error = %e, unread = rest.len(), "could not read the jobs not claimed");
                    None
                }
            }
        };
        Ok(ids
            .iter()
            .map(|id| match claimed.remove(id) {
                Some(job) => ClaimByIdOutcome::Claimed(Box::new(Claim {
                    job,
                    worker: worker.to_owned(),
                })),
                // Claimed for this batch's first message of the same job.
                None if !rest.contains(id) => ClaimByIdOutcome::ClaimedElsewhere {
                    by: Some(worker.to_owned()),
                },
                None => match others.as_ref().map(|o| o.get(id)) {
                    None => ClaimByIdOutcome::Unread,
                    Some(None) => ClaimByIdOutcome::NotFound,
                    Some(Some(job)) => unclaimable(job, now, types),
                },
            })
            .collect())
    }

    async fn jobs_by_ids(&self, ids: &[Uuid]) -> Result<std::collections::HashMap<Uuid, Job>, StoreError> {
        let client = self.client().await?;
        sql::JOBS_BY_IDS
            .query(client.on(), &[&ids])
            .await?
            .iter()
            .map(|row| Job::from_row(row).map(|job| (job.id, job)))
            .collect::<Result<_, _>>()
            .map_err(|e| StoreError::from_db("jobs_by_ids", e))
    }

    /// Renews the claim; records `stage` and `progress` (0-100) when given.
    #[instrument(skip(self, stage), fields(job_id = %token.job_id, attempt = token.attempt))]
    pub async fn heartbeat(
        &self,
        token: ClaimToken,
        stage: Option<&str>,
        progress: Option<f32>,
    ) -> Result<HeartbeatOutcome, StoreError> {
        let now = self.now();
        let progress = progress.map(|p| p.clamp(0.0, 100.0));
        let renewed = {
            let client = self.client().await?;
            !sql::HEARTBEAT
                .query(
                    client.on(),
                    &[
                        &now,
                        &token.job_id,
                        &token.attempt,
                        &stage.map(|s| super::lifecycle::storable(s).into_owned()),
                        &progress,
                    ],
                )
                .await?
                .is_empty()
        };
        if renewed {
            return Ok(HeartbeatOutcome::Alive);
        }
        Ok(match self.get_any(token.job_id).await? {
            Some(job) if job.status == JobStatus::Cancelled => HeartbeatOutcome::Cancelled,
            _ => HeartbeatOutcome::Lost,
        })
    }
}

/// Why a job a message points at was not claimable.
fn unclaimable(job: &Job, now: DateTime<Utc>, types: Option<&[String]>) -> ClaimByIdOutcome {
    match job.status {
        s if s.is_terminal() => ClaimByIdOutcome::Done(s),
        JobStatus::Processing => ClaimByIdOutcome::ClaimedElsewhere {
            by: job.locked_by.clone(),
        },
        _ if job.run_after > now => ClaimByIdOutcome::NotDue(job.run_after),
        _ if types.is_some_and(|t| !t.contains(&job.job_type)) => {
            ClaimByIdOutcome::OtherType(job.job_type.clone())
        }
        _ => ClaimByIdOutcome::Contended,
    }
}

/// Job rows held by `worker`, as claims (`what` names the statement in errors).
fn claims(rows: &[tokio_postgres::Row], worker: &str, what: &'static str) -> Result<Vec<Claim>, StoreError> {
    rows.iter()
        .map(|row| {
            Job::from_row(row).map(|job| Claim {
                job,
                worker: worker.to_owned(),
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StoreError::from_db(what, e))
}
