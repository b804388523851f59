//! Counts for the metrics: jobs by status and type, and the outbox rows
//! that are due.

use serde::Serialize;

use super::{Store, StoreError, sql};

/// How many jobs of one type are in one status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobCount {
    pub status: String,
    pub job_type: String,
    pub n: i64,
}

impl Store {
    /// Jobs by status and type, of one tenant or of all with `None`; only
    /// the pairs that have jobs.
    pub async fn job_counts(&self, tenant: Option<&str>) -> Result<Vec<JobCount>, StoreError> {
        let client = self.client().await?;
        let rows = sql::JOB_COUNTS
            .query(client.on(), &[&tenant.map(str::to_owned)])
            .await?;
        rows.iter()
            .map(|r| {
                Ok(JobCount {
                    status: r.try_get("status")?,
                    job_type: r.try_get("job_type")?,
                    n: r.try_get("n")?,
                })
            })
            .collect::<Result<Vec<_>, tokio_postgres::Error>>()
            .map_err(|e| StoreError::from_db("job_counts", e))
    }

    /// Outbox rows due for publishing now (pending or failed, their next
    /// attempt come), over every tenant.
    pub async fn outbox_due_count(&self) -> Result<i64, StoreError> {
        let client = self.client().await?;
        let rows = sql::OUTBOX_DUE.query(client.on(), &[&self.now()]).await?;
        let row = rows
            .first()
            .ok_or_else(|| StoreError::Unavailable("outbox_due returned no row".into()))?;
        row.try_get("n").map_err(|e| StoreError::from_db("outbox_due", e))
    }
}
