//! Creating and reading jobs.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tracing::instrument;
use uuid::Uuid;

use super::{Store, StoreError, sql};
use crate::domain::job::Schedule;
use crate::domain::{Job, JobEvent, JobStatus, NewJob};

/// The answer to a create: the job, and whether the idempotency key had
/// already made it.
#[derive(Debug, Clone, PartialEq)]
pub struct Created {
    pub job: Job,
    pub already_existed: bool,
    /// The outbox row to publish after commit (`None` when it already existed).
    pub outbox_id: Option<i64>,
}

/// Filters for listing a tenant's jobs.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub status: Option<JobStatus>,
    pub job_type: Option<String>,
    pub correlation_id: Option<String>,
}

/// Where the next page starts: the last job of the previous page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageCursor {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

impl PageCursor {
    /// An opaque string for clients.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}|{}", self.created_at.timestamp_micros(), self.id))
    }

    /// `None` for anything this process did not hand out.
    pub fn decode(s: &str) -> Option<Self> {
        let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(s).ok()?).ok()?;
        let (micros, id) = raw.split_once('|')?;
        Some(Self {
            created_at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            id: id.parse().ok()?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct JobPage {
    pub jobs: Vec<Job>,
    pub next_cursor: Option<PageCursor>,
}

impl Store {
    /// Creates one job, its outbox row and its `created` event in one
    /// transaction. The same idempotency key with the same request returns the
    /// existing job; with a different request it is a conflict.
    /// `actor` (who asks: an API key, `cli`, a process) is written to the
    /// `created` event; `new.initiated_by` is data.
    #[instrument(skip_all, fields(tenant = tenant, job_type = %new.job_type))]
    pub async fn create(&self, tenant: &str, actor: &str, new: NewJob) -> Result<Created, StoreError> {
        let client = self.client().await?;
        let mut created = self.insert_jobs(client.on(), tenant, actor, vec![new]).await?;
        Ok(created.remove(0))
    }

    /// Creates many jobs, all or nothing, answering in input order.
    #[instrument(skip_all, fields(tenant = tenant, count = news.len()))]
    pub async fn create_many(
        &self,
        tenant: &str,
        actor: &str,
        news: Vec<NewJob>,
    ) -> Result<Vec<Created>, StoreError> {
        if news.is_empty() {
            return Ok(Vec::new());
        }
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(|e| StoreError::from_db("begin", e))?;
        let created = self
            .insert_jobs(
                sql::On::Tx(&tx, self.settings.prepared_statements),
                tenant,
                actor,
                news,
            )
            .await?;
        tx.commit().await.map_err(|e| StoreError::from_db("commit", e))?;
        Ok(created)
    }

    async fn insert_jobs(
        &self,
        on: sql::On<'_>,
        tenant: &str,
        actor: &str,
        news: Vec<NewJob>,
    ) -> Result<Vec<Created>, StoreError> {
        let now = self.now();
        let n = news.len();
        let mut ids = Vec::with_capacity(n);
        let mut types = Vec::with_capacity(n);
        let mut payloads: Vec<Value> = Vec::with_capacity(n);
        let mut priorities = Vec::with_capacity(n);
        let mut run_afters = Vec::with_capacity(n);
        let mut delays = Vec::with_capacity(n);
        let mut max_attempts = Vec::with_capacity(n);
        let mut correlations = Vec::with_capacity(n);
        let mut keys = Vec::with_capacity(n);
        let mut initiators = Vec::with_capacity(n);
        let mut legacy_hashes = Vec::with_capacity(n);
        for new in &news {
            ids.push(Uuid::now_v7());
            types.push(new.job_type.clone());
            payloads.push(new.payload.clone());
            priorities.push(new.priority.get());
            // As the request gave them: the request hash (in SQL) covers
            // the schedule and max_attempts as asked, not as resolved.
            let (at, delay) = match new.schedule {
                Schedule::Now => (None, None),
                Schedule::At(at) => (Some(at), None),
                Schedule::AfterSeconds(s) => (None, Some(i32::try_from(s).unwrap_or(i32::MAX))),
            };
            run_afters.push(at);
            delays.push(delay);
            max_attempts.push(new.max_attempts);
            correlations.push(new.correlation_id.clone());
            keys.push(new.idempotency_key.clone());
            initiators.push(new.initiated_by.clone());
            legacy_hashes.push(new.legacy_request_hash());
        }
        let tenant = tenant.to_owned();
        let rows = sql::CREATE_JOBS
            .query(
                on,
                &[
                    &now,
                    &tenant,
                    &self.settings.queue_name,
                    &self.outbox_due(now),
                    &actor,
                    &self.settings.default_max_attempts,
                    &ids,
                    &types,
                    &payloads,
                    &priorities,
                    &run_afters,
                    &delays,
                    &max_attempts,
                    &correlations,
                    &keys,
                    &initiators,
                    &legacy_hashes,
                ],
            )
            .await?;
        let db = |e| StoreError::from_db("create_jobs", e);
        let mut out = Vec::with_capacity(n);
        for (row, key) in rows.iter().zip(&keys) {
            let key = key.clone().unwrap_or_default();
            let id: Option<Uuid> = row.try_get("id").map_err(db)?;
            if id.is_none() {
                // The key's owner vanished after the insert saw it (deleted
                // by retention): the caller may simply try again.
                return Err(StoreError::Unavailable(format!(
                    "idempotency key {key:?} was released by a concurrent request; try again"
                )));
            }
            let job = Job::from_row(row).map_err(db)?;
            if row.try_get::<_, bool>("conflict").map_err(db)? {
                return Err(StoreError::IdempotencyConflict {
                    key,
                    existing: job.id,
                });
            }
            out.push(Created {
                job,
                already_existed: row.try_get("already_existed").map_err(db)?,
                outbox_id: row.try_get("outbox_id").map_err(db)?,
            });
        }
        if out.len() != n {
            return Err(StoreError::Unavailable(format!(
                "create_jobs answered {} rows for {n} jobs",
                out.len()
            )));
        }
        Ok(out)
    }

    /// One job of `tenant`; `None` if it does not exist or is another tenant's.
    pub async fn get(&self, tenant: &str, id: Uuid) -> Result<Option<Job>, StoreError> {
        self.fetch(Some(tenant), id).await
    }

    /// One job, whatever its tenant (workers and operators).
    pub async fn get_any(&self, id: Uuid) -> Result<Option<Job>, StoreError> {
        self.fetch(None, id).await
    }

    pub(crate) async fn fetch(&self, tenant: Option<&str>, id: Uuid) -> Result<Option<Job>, StoreError> {
        let client = self.client().await?;
        let tenant = tenant.map(str::to_owned);
        let rows = sql::GET_JOB.query(client.on(), &[&id, &tenant]).await?;
        rows.first()
            .map(Job::from_row)
            .transpose()
            .map_err(|e| StoreError::from_db("get_job", e))
    }

    /// A page of the tenant's jobs, newest first.
    pub async fn list(
        &self,
        tenant: &str,
        filter: &JobFilter,
        limit: u32,
        after: Option<PageCursor>,
    ) -> Result<JobPage, StoreError> {
        let client = self.client().await?;
        let limit = i64::from(limit.clamp(1, 1000));
        let status = filter.status.map(|s| s.as_str().to_owned());
        let rows = sql::LIST_JOBS
            .query(
                client.on(),
                &[
                    &tenant.to_owned(),
                    &status,
                    &filter.job_type,
                    &filter.correlation_id,
                    &after.map(|c| c.created_at),
                    &after.map(|c| c.id),
                    &(limit + 1),
                ],
            )
            .await?;
        let mut jobs = rows
            .iter()
            .map(Job::from_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::from_db("list_jobs", e))?;
        let next_cursor = if jobs.len() as i64 > limit {
            jobs.truncate(limit as usize);
            jobs.last().map(|j| PageCursor {
                created_at: j.created_at,
                id: j.id,
            })
        } else {
            None
        };
        Ok(JobPage { jobs, next_cursor })
    }

    /// The job's timeline, oldest first; `None` when the job is not the tenant's.
    pub async fn timeline(
        &self,
        tenant: Option<&str>,
        id: Uuid,
    ) -> Result<Option<Vec<JobEvent>>, StoreError> {
        let client = self.client().await?;
        let tenant = tenant.map(str::to_owned);
        let rows = sql::JOB_TIMELINE.query(client.on(), &[&id, &tenant]).await?;
        if rows.is_empty() {
            // Every job has at least its `created` event.
            return Ok(None);
        }
        rows.iter()
            .map(JobEvent::from_row)
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
            .map_err(|e| StoreError::from_db("job_timeline", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_survives_its_round_trip_and_garbage_is_refused() {
        let c = PageCursor {
            created_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).expect("valid"),
            id: Uuid::now_v7(),
        };
        assert_eq!(PageCursor::decode(&c.encode()), Some(c));
        assert_eq!(PageCursor::decode("not a cursor"), None);
        assert_eq!(PageCursor::decode(&URL_SAFE_NO_PAD.encode("1|nope")), None);
    }
}
