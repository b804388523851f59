//! The live audit: the promises checked over live data (`sql/audit.sql`,
//! the one copy of the invariants: `GET /v1/audit`, `jobline audit`, the
//! drill and the gauntlet all run it).
//!
//! Bounded: one read-only transaction under `SET LOCAL statement_timeout`
//! (an audit that runs longer is cancelled by Postgres and answers
//! [`AuditError::Timeout`]), at most [`AuditOptions::max_jobs`] jobs
//! examined (the newest of the window; [`AuditReport::truncated`] says when
//! there were more), and no sequential scan: see the cost note of
//! `audit.sql`. Per examined job: its row by id, its events and its outbox
//! rows, each through an index; measured at about 21 µs a job (100,000 jobs
//! with 4 events each in 2.1 s, on 2 busy cores), so the default cap fits
//! the default budget with room to spare. Cheap enough for a sweeper to
//! run with a short window (the last few minutes: a few thousand jobs).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{Store, StoreError, sql};
use crate::queue::{Broker, QueueError};

/// The window an audit looks at when none is given.
pub const DEFAULT_AUDIT_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// How long a due outbox row or a stale claim may wait for the relay or the
/// sweeper before it counts as left behind.
pub const DEFAULT_AUDIT_GRACE: Duration = Duration::from_secs(60);
/// The most jobs one audit examines.
pub const DEFAULT_AUDIT_MAX_JOBS: i64 = 100_000;
/// The longest an audit's statement may run.
pub const DEFAULT_AUDIT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most example job ids reported per count.
pub const AUDIT_EXAMPLES: i32 = 10;

/// The name of the broker's count in [`AuditReport::violations`].
pub const REDIS_ORPHANED_PROCESSING: &str = "redis_orphaned_processing";

/// What to audit and how far to go.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// Jobs created at or after this (and not after now) are examined.
    pub since: DateTime<Utc>,
    /// The claims' heartbeat timeout (`JOBLINE_HEARTBEAT_TIMEOUT_SECONDS`).
    pub heartbeat_timeout: Duration,
    /// See [`DEFAULT_AUDIT_GRACE`]; 0 for a snapshot of a drained system
    /// (the gauntlet), where nothing may be waiting.
    pub grace: Duration,
    pub max_jobs: i64,
    /// The statement's time budget (`statement_timeout`).
    pub timeout: Duration,
}

impl AuditOptions {
    /// The defaults, for the window that starts at `since`.
    pub fn since(since: DateTime<Utc>, heartbeat_timeout: Duration) -> Self {
        Self {
            since,
            heartbeat_timeout,
            grace: DEFAULT_AUDIT_GRACE,
            max_jobs: DEFAULT_AUDIT_MAX_JOBS,
            timeout: DEFAULT_AUDIT_TIMEOUT,
        }
    }
}

/// The audit's answer. `ok` is true iff every violation count is 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditReport {
    pub ok: bool,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// Jobs of the window examined.
    pub examined: i64,
    /// More jobs were created in the window than were examined (the newest
    /// `max_jobs` were).
    pub truncated: bool,
    /// Each violation and how many jobs (or, for the broker's count,
    /// messages) show it; 0 when it holds.
    pub violations: BTreeMap<String, i64>,
    /// Up to [`AUDIT_EXAMPLES`] job ids per violation with any.
    pub examples: BTreeMap<String, Vec<Uuid>>,
    /// Counts that are not violations on a live system (`not_completed`,
    /// `rerun`, `outbox_retried`, `outbox_unsent`).
    pub informative: BTreeMap<String, i64>,
    /// The examined jobs by status.
    pub by_status: BTreeMap<String, i64>,
}

impl AuditReport {
    /// The violations with a count, as `name=count` (for logs and errors).
    pub fn broken(&self) -> Vec<String> {
        self.violations
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{k}={n}"))
            .collect()
    }

    /// Adds the broker's count of messages left in the processing lists of
    /// consumers that stopped ([`Broker::orphaned_processing`]).
    pub async fn check_broker(&mut self, broker: &dyn Broker) -> Result<(), AuditError> {
        let orphaned = broker.orphaned_processing().await.map_err(AuditError::Broker)?;
        self.violations.insert(
            REDIS_ORPHANED_PROCESSING.to_owned(),
            i64::try_from(orphaned).unwrap_or(i64::MAX),
        );
        self.ok = self.violations.values().all(|n| *n == 0);
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The audit ran out of its time budget (and was cancelled).
    #[error("the audit did not finish within {} ms: narrow the window (since) or the jobs examined", .0.as_millis())]
    Timeout(Duration),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the broker's check failed: {0}")]
    Broker(QueueError),
}

const STATEMENT: &str = "audit";

impl Store {
    /// [`Store::audit`], then, when the queue is a broker, its orphaned
    /// processing lists ([`AuditReport::check_broker`]).
    pub async fn audit_with(
        &self,
        options: &AuditOptions,
        broker: Option<&dyn Broker>,
    ) -> Result<AuditReport, AuditError> {
        let mut report = self.audit(options).await?;
        if let Some(broker) = broker {
            report.check_broker(broker).await?;
        }
        Ok(report)
    }

    /// Runs the audit over the jobs created from `options.since` to now.
    pub async fn audit(&self, options: &AuditOptions) -> Result<AuditReport, AuditError> {
        let until = self.now();
        let heartbeat = options.heartbeat_timeout.as_secs_f64();
        let grace = options.grace.as_secs_f64();
        let max_jobs = options.max_jobs.max(0);
        let rows = self
            .read_bounded(
                &sql::AUDIT,
                &[
                    &options.since,
                    &until,
                    &heartbeat,
                    &grace,
                    &max_jobs,
                    &AUDIT_EXAMPLES,
                ],
                options.timeout,
            )
            .await
            .map_err(|e| match e {
                StoreError::Database { ref source, .. }
                    if source.code() == Some(&tokio_postgres::error::SqlState::QUERY_CANCELED) =>
                {
                    AuditError::Timeout(options.timeout)
                }
                other => AuditError::Store(other),
            })?;

        let mut report = AuditReport {
            ok: true,
            since: options.since,
            until,
            examined: 0,
            truncated: false,
            violations: BTreeMap::new(),
            examples: BTreeMap::new(),
            informative: BTreeMap::new(),
            by_status: BTreeMap::new(),
        };
        let mut candidates = 0;
        for row in rows {
            let read = |e| AuditError::Store(StoreError::from_db(STATEMENT, e));
            let name: String = row.try_get("name").map_err(read)?;
            let kind: String = row.try_get("kind").map_err(read)?;
            let n: i64 = row.try_get("n").map_err(read)?;
            let examples: Vec<Uuid> = row.try_get("examples").map_err(read)?;
            match kind.as_str() {
                "violation" => {
                    if !examples.is_empty() {
                        report.examples.insert(name.clone(), examples);
                    }
                    report.violations.insert(name, n);
                }
                "informative" => {
                    report.informative.insert(name, n);
                }
                "status" => {
                    report.by_status.insert(name, n);
                }
                _ if name == "candidates" => candidates = n,
                _ => report.examined = n,
            }
        }
        report.truncated = candidates > report.examined;
        report.ok = report.violations.values().all(|n| *n == 0);
        Ok(report)
    }
}

impl Store {
    /// Keeps `report`'s violation counts as the last audit (the sweeper
    /// does, each pass; `/metrics` reads them back).
    pub async fn record_audit(&self, report: &AuditReport) -> Result<(), StoreError> {
        let counts = serde_json::to_string(&report.violations).unwrap_or_else(|_| "{}".into());
        let client = self.client().await?;
        sql::AUDIT_RECORD
            .query(client.on(), &[&counts, &self.now()])
            .await?;
        Ok(())
    }

    /// The violation counts of the last audit a sweeper recorded, and when;
    /// `None` before the first.
    pub async fn last_audit(&self) -> Result<Option<(BTreeMap<String, i64>, DateTime<Utc>)>, StoreError> {
        let client = self.client().await?;
        let rows = sql::AUDIT_LAST.query(client.on(), &[]).await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let err = |e| StoreError::from_db("audit_last", e);
        let state: String = row.try_get("state").map_err(err)?;
        let at: DateTime<Utc> = row.try_get("changed_at").map_err(err)?;
        let counts = serde_json::from_str(&state)
            .map_err(|e| StoreError::Unavailable(format!("the recorded audit counts are not JSON: {e}")))?;
        Ok(Some((counts, at)))
    }
}
