//! Jobs as the store keeps them and as clients submit them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio_postgres::Row;
use uuid::Uuid;

use super::status::JobStatus;

/// 0 = P0, the highest; 3 the lowest. Claims take lower numbers first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Priority(i16);

impl Priority {
    pub const HIGHEST: Priority = Priority(0);
    pub const DEFAULT: Priority = Priority(2);
    pub const LOWEST: Priority = Priority(3);

    pub fn new(p: i64) -> Option<Self> {
        (0..=3).contains(&p).then_some(Priority(p as i16))
    }

    pub fn get(self) -> i16 {
        self.0
    }

    /// `"P0"` … `"P3"` (seed 003 sends priorities this way).
    pub fn parse_label(label: &str) -> Option<Self> {
        match label {
            "P0" => Some(Priority(0)),
            "P1" => Some(Priority(1)),
            "P2" => Some(Priority(2)),
            "P3" => Some(Priority(3)),
            _ => None,
        }
    }
}

impl Default for Priority {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A job type's name: 1 to 64 characters of letters, digits and
/// `_ . : -`, starting with a letter or digit. Whether a deployment takes
/// it is the [`Enqueuer`](crate::enqueue::Enqueuer)'s allow-list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JobType(String);

impl JobType {
    pub const MAX_LEN: usize = 64;
    /// What a valid name looks like (for error messages).
    pub const RULE: &'static str =
        "1 to 64 letters, digits and _ . : - only, starting with a letter or digit";

    pub fn parse(name: &str) -> Result<Self, JobTypeError> {
        let valid = name.len() <= Self::MAX_LEN
            && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'));
        if valid {
            Ok(Self(name.to_owned()))
        } else {
            Err(JobTypeError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for JobType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A name that is not a valid [`JobType`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a job type is {}", JobType::RULE)]
pub struct JobTypeError;

/// When a new job becomes due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    Now,
    At(DateTime<Utc>),
    AfterSeconds(u32),
}

impl Schedule {
    pub fn run_after(self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Schedule::Now => now,
            Schedule::At(at) => at,
            Schedule::AfterSeconds(s) => now + chrono::Duration::seconds(i64::from(s)),
        }
    }
}

/// A job as a client asks for it, already validated by its parser.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewJob {
    pub job_type: String,
    pub payload: Value,
    pub priority: Priority,
    pub schedule: Schedule,
    /// `None`: the deployment's default (`JOBLINE_MAX_ATTEMPTS`).
    pub max_attempts: Option<i32>,
    pub correlation_id: Option<String>,
    #[serde(skip)]
    pub idempotency_key: Option<String>,
    pub initiated_by: Option<String>,
}

impl NewJob {
    pub fn new(job_type: impl Into<String>, payload: Value) -> Self {
        Self {
            job_type: job_type.into(),
            payload,
            priority: Priority::DEFAULT,
            schedule: Schedule::Now,
            max_attempts: None,
            correlation_id: None,
            idempotency_key: None,
            initiated_by: None,
        }
    }

    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    pub fn priority(mut self, p: Priority) -> Self {
        self.priority = p;
        self
    }

    pub fn schedule(mut self, s: Schedule) -> Self {
        self.schedule = s;
        self
    }

    pub fn max_attempts(mut self, n: i32) -> Self {
        self.max_attempts = Some(n);
        self
    }

    pub fn correlation_id(mut self, c: impl Into<String>) -> Self {
        self.correlation_id = Some(c.into());
        self
    }

    /// The fingerprint creates stored before migration 0010 (everything but
    /// the idempotency key, as serde_json writes it). Since 0010 the hash is
    /// computed in SQL (`jobline_request_hash`, shared with the SQL API);
    /// this one is only matched against keys stored before it, so a client
    /// retrying across the upgrade is not refused. Remove it once 0010 is
    /// older than the longest retention.
    pub fn legacy_request_hash(&self) -> String {
        let canonical = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(Sha256::digest(&canonical))
    }
}

/// A job as the store holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    pub id: Uuid,
    #[serde(skip)]
    pub tenant_id: String,
    #[serde(rename = "type")]
    pub job_type: String,
    pub status: JobStatus,
    pub priority: i16,
    pub payload: Value,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_after: DateTime<Utc>,
    pub correlation_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub stage: Option<String>,
    pub progress: Option<f32>,
    pub result: Option<Value>,
    pub result_uri: Option<String>,
    pub failure_reason: Option<String>,
    pub error_code: Option<String>,
    pub initiated_by: Option<String>,
    pub locked_by: Option<String>,
    pub heartbeat_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
}

impl Job {
    /// Reads a row of `jobs.*` (or a statement returning the same columns).
    pub fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            tenant_id: row.try_get("tenant_id")?,
            job_type: row.try_get("job_type")?,
            status: row.try_get("status")?,
            priority: row.try_get("priority")?,
            payload: row.try_get("payload")?,
            attempts: row.try_get("attempts")?,
            max_attempts: row.try_get("max_attempts")?,
            run_after: row.try_get("run_after")?,
            correlation_id: row.try_get("correlation_id")?,
            idempotency_key: row.try_get("idempotency_key")?,
            stage: row.try_get("stage")?,
            progress: row.try_get("progress")?,
            result: row.try_get("result")?,
            result_uri: row.try_get("result_uri")?,
            failure_reason: row.try_get("failure_reason")?,
            error_code: row.try_get("error_code")?,
            initiated_by: row.try_get("initiated_by")?,
            locked_by: row.try_get("locked_by")?,
            heartbeat_at: row.try_get("heartbeat_at")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            started_at: row.try_get("started_at")?,
            completed_at: row.try_get("completed_at")?,
        })
    }
}

/// One entry of a job's timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobEvent {
    pub id: i64,
    pub event: String,
    pub from_status: Option<JobStatus>,
    pub to_status: Option<JobStatus>,
    pub attempt: Option<i32>,
    pub actor: Option<String>,
    pub detail: Option<Value>,
    pub at: DateTime<Utc>,
}

impl JobEvent {
    pub fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            event: row.try_get("event")?,
            from_status: row.try_get("from_status")?,
            to_status: row.try_get("to_status")?,
            attempt: row.try_get("attempt")?,
            actor: row.try_get("actor")?,
            detail: row.try_get("detail")?,
            at: row.try_get("at")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_same_request_hashes_the_same_whatever_the_key_order() {
        let a = NewJob::new("noop", json!({"a": 1, "b": [1, 2]}));
        let b = NewJob::new("noop", json!({"b": [1, 2], "a": 1})).idempotency_key("k");
        assert_eq!(a.legacy_request_hash(), b.legacy_request_hash());
    }

    #[test]
    fn a_different_payload_or_option_changes_the_hash() {
        let a = NewJob::new("noop", json!({"a": 1}));
        assert_ne!(
            a.legacy_request_hash(),
            NewJob::new("noop", json!({"a": 2})).legacy_request_hash()
        );
        assert_ne!(
            a.legacy_request_hash(),
            a.clone().priority(Priority::HIGHEST).legacy_request_hash()
        );
        assert_ne!(
            a.legacy_request_hash(),
            a.clone()
                .schedule(Schedule::AfterSeconds(5))
                .legacy_request_hash()
        );
    }

    #[test]
    fn priority_is_bounded_to_p0_through_p3() {
        assert_eq!(Priority::new(0), Some(Priority::HIGHEST));
        assert_eq!(Priority::new(3), Some(Priority::LOWEST));
        assert_eq!(Priority::new(4), None);
        assert_eq!(Priority::new(-1), None);
    }
}
