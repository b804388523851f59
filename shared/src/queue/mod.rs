//! Queues wake workers; Postgres decides. A message is only a pointer to a
//! job (`{"jobId": "...", "timestamp": <ms>}`); a message for a job that is
//! not claimable is acknowledged and dropped by the consumer.
//!
//! One trait, one adapter per broker. The `postgres` adapter needs nothing
//! but the database: consumers claim straight from `jobs`, and a publish is a
//! `NOTIFY` after commit that wakes them early.

pub mod postgres;
mod publisher;

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use publisher::{OutboxItem, PublishOutcome, Publisher};

/// The wire format of a queue message. Unknown fields are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    #[serde(rename = "jobId")]
    pub job_id: Uuid,
    /// When the message was made, in Unix milliseconds.
    pub timestamp: i64,
}

impl Message {
    pub fn new(job_id: Uuid, at: chrono::DateTime<chrono::Utc>) -> Self {
        Self {
            job_id,
            timestamp: at.timestamp_millis(),
        }
    }

    /// Parses a message body; `None` for anything that is not one (the
    /// consumer logs it and drops it).
    pub fn parse(body: &str) -> Option<Self> {
        serde_json::from_str(body).ok()
    }
}

/// One message to publish, with how long the queue should hold it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outgoing {
    pub message: Message,
    pub delay: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The broker could not be reached or refused for a transient reason.
    #[error("queue unavailable: {0}")]
    Unavailable(String),
    /// The broker refused for a reason that will not go away (bad
    /// credentials, missing queue).
    #[error("queue misconfigured: {0}")]
    Misconfigured(String),
}

#[async_trait]
pub trait Queue: Send + Sync + std::fmt::Debug {
    /// The adapter's name (`postgres`, `sqs`, `upstash`, `redis`).
    fn kind(&self) -> &'static str;

    /// The longest delay the broker itself can hold a message back; longer
    /// delays stay in the outbox until they are due.
    fn max_delay(&self) -> Duration;

    /// Publishes all messages, or fails as a whole.
    async fn publish(&self, messages: &[Outgoing]) -> Result<(), QueueError>;

    /// Is the broker reachable? (for `/health`)
    async fn check(&self) -> Result<(), QueueError>;
}
