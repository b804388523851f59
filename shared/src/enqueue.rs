//! The one way jobs are created. Every entry point (the create, batch and
//! story routes, `jobline jobs create`, the benchmark) goes through an
//! [`Enqueuer`]: it checks each job's type (a valid [`JobType`], and one the
//! deployment takes: `JOBLINE_JOB_TYPES`), writes the jobs, their outbox
//! rows and their `created` events in one transaction, then publishes them
//! after the commit. The `created` event's actor is always the caller (an
//! API key's id, `cli`, a process), never a value from the request body.
//!
//! Operator retries put jobs back through the same publisher
//! ([`Enqueuer::retry`]), so the publish-after-commit step lives here only.

use std::sync::Arc;

use uuid::Uuid;

use crate::Store;
use crate::domain::{Job, JobType, NewJob};
use crate::queue::Publisher;
use crate::store::{Created, StoreError};

/// Why a create was refused before anything was written.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    /// `index` is the job's position in the request (0 for a single create).
    #[error("job {index}: {job_type:?} is not a valid job type: {}", JobType::RULE)]
    InvalidType { index: usize, job_type: String },
    #[error("job {index}: {job_type:?} is not a job type of this deployment")]
    UnknownType { index: usize, job_type: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates jobs and publishes them; built once per process ([`crate::app::enqueuer`]).
#[derive(Debug, Clone)]
pub struct Enqueuer {
    publisher: Publisher,
    /// `JOBLINE_JOB_TYPES`: when set, only these types may be created.
    allowed: Option<Arc<[String]>>,
}

impl Enqueuer {
    pub fn new(publisher: Publisher, allowed: Option<Vec<String>>) -> Self {
        Self {
            publisher,
            allowed: allowed.map(Arc::from),
        }
    }

    pub fn store(&self) -> &Store {
        self.publisher.store()
    }

    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    /// Is `job_type` a type this deployment creates? `index` names the job
    /// in the error.
    pub fn check_type(&self, index: usize, job_type: &str) -> Result<JobType, EnqueueError> {
        let parsed = JobType::parse(job_type).map_err(|_| EnqueueError::InvalidType {
            index,
            job_type: job_type.to_owned(),
        })?;
        if let Some(allowed) = &self.allowed
            && !allowed.iter().any(|t| t == job_type)
        {
            return Err(EnqueueError::UnknownType {
                index,
                job_type: job_type.to_owned(),
            });
        }
        Ok(parsed)
    }

    /// Creates one job for `tenant` on behalf of `actor`, then publishes it.
    pub async fn enqueue(&self, tenant: &str, actor: &str, new: NewJob) -> Result<Created, EnqueueError> {
        self.check_type(0, &new.job_type)?;
        let created = self.store().create(tenant, actor, new).await?;
        self.publisher
            .publish_created(std::slice::from_ref(&created))
            .await;
        Ok(created)
    }

    /// Creates many jobs, all or nothing (every type is checked before
    /// anything is written), then publishes them; answers in input order.
    pub async fn enqueue_many(
        &self,
        tenant: &str,
        actor: &str,
        news: Vec<NewJob>,
    ) -> Result<Vec<Created>, EnqueueError> {
        for (index, new) in news.iter().enumerate() {
            self.check_type(index, &new.job_type)?;
        }
        let created = self.store().create_many(tenant, actor, news).await?;
        self.publisher.publish_created(&created).await;
        Ok(created)
    }

    /// Puts a `failed` or `cancelled` job back to pending with
    /// `extra_attempts` more attempts (`tenant` `None`: any tenant, for
    /// operators), then publishes it.
    pub async fn retry(
        &self,
        tenant: Option<&str>,
        id: Uuid,
        actor: &str,
        extra_attempts: Option<i32>,
    ) -> Result<Job, StoreError> {
        let requeued = self.store().retry(tenant, id, actor, extra_attempts).await?;
        self.publisher.publish_requeued(&requeued).await;
        Ok(requeued.job)
    }
}
