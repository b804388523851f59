//! The Postgres job store: every operation of the job lifecycle.
//!
//! Each state change is one guarded statement (compare-and-set on `status`
//! and, for a claim holder, on `attempts`, the fencing token) that writes its
//! `job_events` row — and an outbox row when the job needs a wake-up — in the
//! same statement, so in the same transaction. Zero rows means "the job is not
//! in the state this change needs": the caller gets a typed answer, never a
//! half-applied change. The SQL lives in `store/sql/`, one file per operation.

pub mod alerts;
pub mod audit;
mod batcher;
mod claim;
mod counts;
pub mod dashboard;
mod error;
mod jobs;
pub mod keys;
mod lifecycle;
pub mod migrate;
pub mod outbox;
pub mod pool;
pub mod retention;
pub mod rewake;
pub mod sessions;
mod sql;
mod stats;
pub mod workers;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;

pub use audit::{AuditError, AuditOptions, AuditReport};
pub use batcher::Completion;
pub use claim::{Claim, ClaimByIdOutcome, ClaimToken, HeartbeatOutcome};
pub use counts::JobCount;
pub use error::StoreError;
pub use jobs::{Created, JobFilter, JobPage, PageCursor};
pub use lifecycle::{FailOutcome, JobFailure, ReleaseReport, Requeued, Settled};
pub use outbox::{DeadLetterOutboxRow, LeasedRow, OUTBOX_MAX_ATTEMPTS, PublishFailure, ReplayReport};
pub use retention::{PrunedJobs, Retention};
pub use stats::{RunningJob, SeriesRow, Stats};

use crate::domain::{Clock, RetryPolicy, SystemClock};

/// What the store needs to know about the deployment.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// Queue name written into outbox rows.
    pub queue_name: String,
    pub retry: RetryPolicy,
    /// Attempts a job gets when its create request does not say.
    pub default_max_attempts: i32,
    /// How long the relay leaves a fresh outbox row to the process that
    /// created it (which publishes right after commit) before taking over.
    pub outbox_grace: Duration,
    /// Statements prepared once per connection (`true`) or sent unnamed and
    /// planned on every call (`false`, for a transaction-mode pooler that
    /// cannot carry named statements).
    pub prepared_statements: bool,
    /// `JOBLINE_CONSUMER_JOB_TYPES`: the types served by consumers that do
    /// not register as workers (the SQS Lambda); `None`: not known. With the
    /// live workers' types, what the sweeper re-wakes and stats call served.
    pub consumer_job_types: Option<Vec<String>>,
}

/// A worker not seen for this long is gone: it serves nothing.
pub const WORKER_GONE_AFTER: Duration = Duration::from_secs(60);

/// A worker not seen for this long is forgotten by the sweeper (its row
/// deleted); operators see gone workers in the list until then.
pub const WORKER_FORGET_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            queue_name: "generation_jobs".into(),
            retry: RetryPolicy::default(),
            default_max_attempts: 5,
            outbox_grace: Duration::from_secs(30),
            prepared_statements: true,
            consumer_job_types: None,
        }
    }
}

impl StoreSettings {
    pub fn from_config(config: &crate::Config) -> Self {
        Self {
            queue_name: config.queue_name.clone(),
            retry: config.retry,
            default_max_attempts: config.max_attempts,
            outbox_grace: config.outbox_grace,
            prepared_statements: config.prepared_statements,
            consumer_job_types: config.consumer_job_types.clone(),
        }
    }
}

/// The job store. Cheap to clone: clones share the pool.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
    clock: Arc<dyn Clock>,
    settings: Arc<StoreSettings>,
    batchers: Arc<batcher::Batchers>,
    /// When each key's `last_used_at` was last written by this process.
    key_touches: Arc<keys::Touches>,
    /// The API keys this process read lately ([`keys::KEY_CACHE_TTL`]).
    key_cache: Arc<keys::KeyCache>,
}

impl Store {
    pub fn new(pool: Pool, settings: StoreSettings) -> Self {
        Self::with_clock(pool, settings, Arc::new(SystemClock))
    }

    /// A store whose notion of "now" comes from `clock` (tests move a manual one).
    pub fn with_clock(pool: Pool, settings: StoreSettings, clock: Arc<dyn Clock>) -> Self {
        Self {
            pool,
            clock,
            settings: Arc::new(settings),
            batchers: Arc::default(),
            key_touches: Arc::default(),
            key_cache: Arc::default(),
        }
    }

    /// The same pool, clock and settings with batchers of its own (for a
    /// batching task, which must not keep its own queue open).
    fn detached(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            clock: self.clock.clone(),
            settings: self.settings.clone(),
            batchers: Arc::default(),
            key_touches: self.key_touches.clone(),
            key_cache: self.key_cache.clone(),
        }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub fn settings(&self) -> &StoreSettings {
        &self.settings
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Wakes the listeners of `channel` (`NOTIFY`). Concurrent calls share
    /// one statement (see `store::batcher`).
    pub(crate) async fn notify(&self, channel: &str) -> Result<(), StoreError> {
        self.batchers.notify.run(self, channel.to_owned()).await
    }

    /// One `NOTIFY` per distinct channel of `channels`.
    pub(crate) async fn notify_many(&self, channels: &[String]) -> Result<Vec<()>, StoreError> {
        let client = self.client().await?;
        sql::NOTIFY.query(client.on(), &[&channels]).await?;
        Ok(vec![(); channels.len()])
    }

    /// `SELECT 1` through the pool: is Postgres reachable?
    /// Ends the postgres adapter's LISTEN sessions on the database (a fault
    /// the reliability drill injects; they reconnect by themselves); answers
    /// how many were ended.
    pub async fn terminate_listen_sessions(&self) -> Result<i64, StoreError> {
        let client = self.client().await?;
        let rows = sql::TERMINATE_LISTENERS.query(client.on(), &[]).await?;
        rows.first()
            .map(|r| r.try_get("terminated"))
            .transpose()
            .map_err(|e| StoreError::from_db("terminate_listeners", e))
            .map(Option::unwrap_or_default)
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .simple_query("SELECT 1")
            .await
            .map_err(|e| StoreError::from_db("ping", e))?;
        Ok(())
    }

    /// One statement in a read-only transaction under `SET LOCAL
    /// statement_timeout = timeout` (and without JIT: the reads that need a
    /// budget are the long ones, whose estimated cost is far above
    /// `jit_above_cost`, and compiling the audit took longer, 1.3 s, than
    /// running it, 0.3 s). Past the budget Postgres cancels it: a
    /// [`StoreError::Database`] with `QUERY_CANCELED`. Dropped half-way
    /// (a caller gone), the transaction is rolled back before the
    /// connection serves anyone else (tokio-postgres queues the ROLLBACK).
    /// The audit and the dashboard's pages read through it.
    pub(crate) async fn read_bounded(
        &self,
        statement: &sql::Statement,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        timeout: Duration,
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let db = |e| StoreError::from_db(statement.name, e);
        let mut client = self.client().await?;
        let tx = client
            .build_transaction()
            .read_only(true)
            .start()
            .await
            .map_err(db)?;
        let ms = timeout.as_millis().clamp(1, i32::MAX as u128);
        tx.batch_execute(&format!(
            "SET LOCAL statement_timeout = {ms}; SET LOCAL jit = off"
        ))
        .await
        .map_err(db)?;
        let rows = statement
            .query(sql::On::Tx(&tx, self.settings.prepared_statements), params)
            .await?;
        tx.commit().await.map_err(db)?;
        Ok(rows)
    }

    async fn client(&self) -> Result<Conn, StoreError> {
        let object = self.pool.get().await.map_err(StoreError::from_pool)?;
        Ok(Conn {
            object,
            prepared: self.settings.prepared_statements,
        })
    }

    fn outbox_due(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + chrono::Duration::from_std(self.settings.outbox_grace).unwrap_or_default()
    }
}

/// A pooled connection that knows how this store sends statements.
struct Conn {
    object: deadpool_postgres::Object,
    prepared: bool,
}

impl Conn {
    fn on(&self) -> sql::On<'_> {
        sql::On::Client(&self.object, self.prepared)
    }
}

impl std::ops::Deref for Conn {
    type Target = deadpool_postgres::Object;
    fn deref(&self) -> &Self::Target {
        &self.object
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.object
    }
}
