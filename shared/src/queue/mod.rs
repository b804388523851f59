//! Queues wake workers; Postgres decides. A message is only a pointer to a
//! job (`{"jobId": "...", "timestamp": <ms>}`); a message for a job that is
//! not claimable is acknowledged and dropped by the consumer.
//!
//! Adapters say what they can do, not what they are called: every adapter
//! is a [`Queue`] (it publishes); a broker (SQS, Redis, Upstash) is also a
//! [`Broker`] that hands out deliveries; the `postgres` adapter is a
//! [`Wakeups`]: consumers claim straight from `jobs` and a publish is a
//! `NOTIFY` after commit that wakes them early. A consumer asks for the
//! [`Feed`] the configured adapter gives.

mod listen;
pub mod postgres;
mod publisher;
pub mod redis;
mod redis_layout;
pub mod relay;
pub mod sqs;
pub mod upstash;

use std::sync::Arc;
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

/// A publish that failed part-way: the first `sent` messages (in the order
/// given) were published, the rest were not.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct PublishError {
    pub error: QueueError,
    pub sent: usize,
}

impl From<QueueError> for PublishError {
    fn from(error: QueueError) -> Self {
        Self { error, sent: 0 }
    }
}

/// A message as a consumer received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The parsed message; `None` when the body is not one (a poison
    /// message: the consumer logs it and acks it, never loops on it).
    pub message: Option<Message>,
    /// The body exactly as received.
    pub raw: String,
    /// What the adapter needs to ack or nack this delivery (an SQS receipt
    /// handle, the Redis processing list entry, ...).
    pub receipt: String,
    /// How many times the broker has handed this message out (1 the first time).
    pub receive_count: u32,
}

/// What every adapter does: announce jobs after their commit.
#[async_trait]
pub trait Queue: Send + Sync + std::fmt::Debug {
    /// The adapter's name (`postgres`, `sqs`, `upstash`, `redis`), for logs,
    /// the workers registry and reports only: code never branches on it
    /// (it asks for a [`Feed`] instead).
    fn kind(&self) -> &'static str;

    /// The longest delay the broker itself can hold a message back; longer
    /// delays stay in the outbox until they are due.
    fn max_delay(&self) -> Duration;

    /// Publishes all messages (after the adapter's own retries of transient
    /// and per-entry failures), or says how many of the first ones went out
    /// before it failed.
    async fn publish(&self, messages: &[Outgoing]) -> Result<(), PublishError>;

    /// Is the broker reachable? (for `/health`)
    async fn check(&self) -> Result<(), QueueError>;
}

/// A broker that hands messages out (SQS, Redis, Upstash): consumers
/// receive deliveries, claim the job each names by id, then ack or nack.
#[async_trait]
pub trait Broker: Queue {
    /// Up to `max` messages, waiting up to `wait` for the first one.
    /// `consumer` names the receiving process (Redis keeps a processing list
    /// per consumer).
    async fn receive(&self, consumer: &str, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError>;

    /// Done with a delivery: it will not come back.
    async fn ack(&self, consumer: &str, delivery: &Delivery) -> Result<(), QueueError>;

    /// Give a delivery back, to be received again after `delay`.
    async fn nack(&self, consumer: &str, delivery: &Delivery, delay: Duration) -> Result<(), QueueError>;

    /// Puts back messages that consumers which stopped heartbeating left
    /// in flight; returns how many. A broker that does this itself (SQS,
    /// through the visibility timeout) has nothing to put back and says 0.
    async fn recover(&self) -> Result<usize, QueueError>;

    /// How many messages sit in the processing lists of consumers that
    /// stopped (their liveness mark expired): what the next [`recover`]
    /// would put back. Read-only (the live audit's
    /// `redis_orphaned_processing`). A broker that keeps nothing per
    /// consumer (SQS) says 0.
    ///
    /// [`recover`]: Broker::recover
    async fn orphaned_processing(&self) -> Result<usize, QueueError>;

    /// A consumer that stops hands back what it received and did not
    /// settle, at once (not after its liveness mark expires); returns how
    /// many. SQS hands unsettled messages out again by itself after their
    /// visibility timeout, and says 0.
    async fn hand_back(&self, consumer: &str) -> Result<usize, QueueError>;
}

/// An adapter whose consumers claim straight from Postgres (the `postgres`
/// adapter): the queue carries no messages, it only wakes them.
#[async_trait]
pub trait Wakeups: Queue {
    /// A mark of the wake-ups so far: take it *before* looking for work.
    fn mark(&self) -> u64;

    /// Returns at once when a wake-up (a publish anywhere) came after
    /// `since`, else at the next one or after `timeout`, whichever is first.
    async fn wait(&self, since: u64, timeout: Duration);
}

/// How a consumer is fed, as the adapter can do it.
#[derive(Debug, Clone)]
pub enum Feed {
    /// Claim due jobs from Postgres in batches; the adapter only wakes.
    Claim(Arc<dyn Wakeups>),
    /// Receive deliveries from a broker and claim each by id.
    Deliveries(Arc<dyn Broker>),
}

impl Feed {
    /// The publishing side of the same adapter.
    pub fn queue(&self) -> Arc<dyn Queue> {
        match self {
            Feed::Claim(w) => w.clone(),
            Feed::Deliveries(b) => b.clone(),
        }
    }

    /// The broker, when the adapter is one (for the sweeper's recovery).
    pub fn broker(&self) -> Option<Arc<dyn Broker>> {
        match self {
            Feed::Claim(_) => None,
            Feed::Deliveries(b) => Some(b.clone()),
        }
    }

    /// The adapter's name (logs and reports only).
    pub fn kind(&self) -> &'static str {
        match self {
            Feed::Claim(w) => w.kind(),
            Feed::Deliveries(b) => b.kind(),
        }
    }
}
