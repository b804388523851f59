//! The job status machine.
//!
//! ```text
//! pending ──claim──> processing ──complete──> completed
//!    ▲                   │  ├──fail, attempts left──> pending (run_after = now + backoff)
//!    │                   │  └──fail, spent or permanent──> failed   (the dead letter)
//!    │                   └──heartbeat timeout──> pending | failed
//! pending | processing ──cancel──> cancelled
//! failed | cancelled ──retry (operator)──> pending
//! ```
//!
//! The same picture is the header of `infra/migrations/0001_jobs.sql`; every
//! arrow is one guarded statement under `shared/src/store/sql/`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tokio_postgres::types::{FromSql, Type};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting to be claimed once `run_after` has passed.
    Pending,
    /// Claimed by one worker, which must heartbeat to keep the claim.
    Processing,
    /// Finished with a result. Terminal.
    Completed,
    /// Failed for good: permanent error or attempts spent. Terminal; the dead letter.
    Failed,
    /// Cancelled by a client or operator. Terminal.
    Cancelled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Pending,
        JobStatus::Processing,
        JobStatus::Completed,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Processing => "processing",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// No transition leaves a terminal status except an operator retry.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled
        )
    }

    pub fn can_cancel(self) -> bool {
        matches!(self, JobStatus::Pending | JobStatus::Processing)
    }

    pub fn can_retry(self) -> bool {
        matches!(self, JobStatus::Failed | JobStatus::Cancelled)
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown job status {0:?} (expected pending, processing, completed, failed or cancelled)")]
pub struct UnknownStatus(pub String);

impl FromStr for JobStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

/// Reads the `job_status` Postgres enum (and text, for casts).
impl<'a> FromSql<'a> for JobStatus {
    fn from_sql(_ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(std::str::from_utf8(raw)?.parse()?)
    }

    fn accepts(ty: &Type) -> bool {
        ty.name() == "job_status" || *ty == Type::TEXT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_round_trips_through_its_name() {
        for st in JobStatus::ALL {
            assert_eq!(st.as_str().parse::<JobStatus>().expect("known"), st);
        }
        assert!("done".parse::<JobStatus>().is_err());
    }

    #[test]
    fn only_live_jobs_can_be_cancelled_and_only_dead_ones_retried() {
        let cancellable: Vec<_> = JobStatus::ALL.into_iter().filter(|s| s.can_cancel()).collect();
        assert_eq!(cancellable, [JobStatus::Pending, JobStatus::Processing]);
        let retryable: Vec<_> = JobStatus::ALL.into_iter().filter(|s| s.can_retry()).collect();
        assert_eq!(retryable, [JobStatus::Failed, JobStatus::Cancelled]);
    }
}
