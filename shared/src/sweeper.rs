//! The sweeper: what makes sure nothing is lost or stuck. Run on a schedule
//! (the sweeper Lambda, `jobline` operator commands), one pass does, in order:
//!
//! 1. **release stale claims**: `processing` without a heartbeat for longer
//!    than the timeout goes back to `pending` (with an outbox row) or to
//!    `failed` when its attempts are spent, error code `HEARTBEAT_TIMEOUT`;
//! 2. **relay the outbox**: publish the rows nobody published (the queue was
//!    down at commit, a delayed job became due for the broker, step 1's rows);
//! 3. **re-wake due jobs whose message may have been lost**: `pending` jobs due
//!    for longer than `stale_pending_after` with no recent outbox row, of a
//!    type some consumer serves and with no job of that type processing (or
//!    waiting a long horizon), get a fresh one, published through the relay;
//! 4. **recover the broker's in-flight messages** (Redis, Upstash): the
//!    processing lists of consumers that stopped refreshing their liveness
//!    mark go back onto the queue, so Redis does not grow without bound;
//! 5. **forget workers** not seen for [`crate::store::WORKER_FORGET_AFTER`]
//!    (a week): every process start registers an id of its own;
//! 6. **audit** the jobs created in the last [`SweepConfig::audit_window`]
//!    (at most [`SWEEP_AUDIT_MAX_JOBS`], a few seconds at most) and keep its
//!    counts for `jobline_audit_violations` ([`crate::store::audit`]); a
//!    failed audit is logged, not fatal;
//! 7. **alerts** (with `JOBLINE_ALERT_WEBHOOK_URL`): health changes, silent
//!    workers, a high failure rate and audit violations posted once (see
//!    [`crate::alerts`]);
//! 8. **retention**: terminal jobs past their status's retention are deleted
//!    with their events and outbox rows, dead-letter replay tokens with the
//!    dead letter, in statements of `batch` rows that skip what another
//!    transaction holds; then the appended rows of `job_counts` are folded
//!    (see [`crate::store::retention`]), up to `batch` expired dashboard
//!    sessions deleted, and up to `batch` dead-lettered outbox rows without
//!    a tenant given their job's (an older release's, mid-deploy). Retention goes last and gets what is left of the
//!    budget: keeping jobs moving comes first.
//!
//! Each step is idempotent and safe to run in several processes at once
//! (`FOR NO KEY UPDATE SKIP LOCKED` and guarded updates in steps 1 and 3, leased
//! outbox rows in the relay), so two sweepers racing do each thing once.
//! All times come from the store's clock. A sweep is bounded: at most
//! `max_passes` statements per step and, with a `budget` (the sweeper Lambda
//! passes its invocation's remaining time), an equal share of what is left
//! for each step as it starts, so a backlog in one step cannot eat the time
//! of the others.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::alerts::{AlertReport, Alerter};
use crate::queue::relay::{RelayReport, relay_bounded};
use crate::queue::{Broker, Publisher};
use crate::store::audit::AuditOptions;
use crate::store::{AuditReport, PrunedJobs, Retention, Store, StoreError};

/// How a sweep behaves.
#[derive(Debug, Clone)]
pub struct SweepConfig {
    /// A claim without a heartbeat for this long is released
    /// (`JOBLINE_HEARTBEAT_TIMEOUT_SECONDS`).
    pub heartbeat_timeout: Duration,
    /// A pending job due for this long, with no outbox row written or
    /// published since, is woken again (`JOBLINE_STALE_PENDING_SECONDS`,
    /// default 5 minutes).
    pub stale_pending_after: Duration,
    /// Rows per statement.
    pub batch: u32,
    /// Statements per step at most, so one sweep stays bounded (a Lambda has
    /// a timeout); the next sweep goes on where this one stopped.
    pub max_passes: u32,
    /// Wall time the whole sweep may take (the sweeper Lambda passes its
    /// invocation's remaining time); each step gets an equal share of what
    /// is left when it starts, so a backlog in one step cannot starve the
    /// others. `None`: only `max_passes` bounds it.
    pub budget: Option<Duration>,
    /// How long finished jobs are kept (`JOBLINE_RETENTION_*_SECONDS`).
    pub retention: Retention,
    /// Where to post alerts (`JOBLINE_ALERT_WEBHOOK_URL`); `None`: no alerts.
    pub alerts: Option<Arc<Alerter>>,
    /// Each sweep audits the jobs created this long ago or later; `None`:
    /// no audit.
    pub audit_window: Option<Duration>,
    /// Retention statements (of `batch` jobs) per sweep at most: 200 of 500
    /// delete up to 100,000 jobs a sweep (about 4 s here), within the budget.
    pub prune_passes: u32,
}

/// The most jobs a sweep's audit examines (the newest of its window).
pub const SWEEP_AUDIT_MAX_JOBS: i64 = 5_000;

impl Default for SweepConfig {
    fn default() -> Self {
        Self {
            heartbeat_timeout: Duration::from_secs(60),
            stale_pending_after: Duration::from_secs(300),
            batch: 500,
            max_passes: 20,
            budget: None,
            retention: Retention::default(),
            alerts: None,
            audit_window: Some(Duration::from_secs(15 * 60)),
            prune_passes: 200,
        }
    }
}

impl SweepConfig {
    /// The defaults, with the deployment's timeouts, retention and alerts
    /// (the alerts' HTTP client is built here, once per process).
    pub fn from_config(config: &crate::Config) -> Result<Self, crate::StartError> {
        let alerts = Alerter::from_config(config)
            .map_err(|e| crate::StartError::Alerts(crate::telemetry::error_chain(&e)))?
            .map(Arc::new);
        Ok(Self {
            heartbeat_timeout: config.heartbeat_timeout,
            stale_pending_after: config.stale_pending_after,
            retention: config.retention,
            alerts,
            ..Self::default()
        })
    }
}

/// Step 1: stale claims released.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReleasedReport {
    /// Back to `pending` for another attempt (and published by step 2).
    pub requeued: usize,
    /// Attempts spent: `failed` with `HEARTBEAT_TIMEOUT`.
    pub failed: usize,
    /// Statements run.
    pub passes: u32,
    /// Stopped at `max_passes` with more possibly left.
    pub capped: bool,
}

/// Step 3: due jobs woken again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RewakeReport {
    /// Jobs that got a fresh outbox row.
    pub rewoken: usize,
    pub passes: u32,
    pub capped: bool,
    /// The relay pass that published them.
    pub relay: RelayReport,
}

/// Step 6: what retention deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    /// Jobs deleted, by status, with their events and outbox rows.
    pub jobs: PrunedJobs,
    /// Dead-letter replay tokens deleted.
    pub replays: usize,
    /// Rows of `job_counts` folded.
    pub counts_folded: usize,
    /// Expired dashboard sessions deleted (up to `batch` a sweep).
    pub sessions: usize,
    /// Dead-lettered outbox rows given their job's tenant (rows an older
    /// release dead-lettered without it; up to `batch` a sweep).
    pub dead_letter_tenants: usize,
    pub passes: u32,
    /// Stopped at `max_passes` or the budget with more possibly left.
    pub capped: bool,
}

/// What one sweep did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepReport {
    /// When the sweep started (the store's clock).
    pub started_at: DateTime<Utc>,
    pub released: ReleasedReport,
    pub relayed: RelayReport,
    /// The relay stopped at its passes or its share of the budget.
    pub relay_capped: bool,
    pub rewoken: RewakeReport,
    /// Messages of stopped consumers put back on the broker's queue.
    pub recovered: usize,
    /// Worker registrations not seen for a week, deleted.
    pub workers_forgotten: usize,
    pub pruned: PruneReport,
    /// The audit of the last [`SweepConfig::audit_window`] (`None`: none
    /// configured, or it failed: logged).
    pub audit: Option<AuditReport>,
    /// What was posted to the operators (`None`: no webhook configured).
    pub alerts: Option<AlertReport>,
    /// Wall time the sweep took.
    pub duration_ms: u64,
}

/// One sweep: release stale claims, relay the outbox, re-wake due jobs whose
/// message may have been lost. Stops at the first store error (the next
/// scheduled sweep tries again; every step is idempotent).
pub async fn sweep_once(
    store: &Store,
    publisher: &Publisher,
    broker: Option<&dyn Broker>,
    config: &SweepConfig,
) -> Result<SweepReport, StoreError> {
    let started = Instant::now();
    let started_at = store.now();
    let batch = config.batch.max(1);
    let max_passes = config.max_passes.max(1);

    // Steps left: release, relay, re-wake (with its relay), recover.
    let end = config.budget.map(|b| started + b);
    let share = |steps_left: u32| {
        end.map(|end| {
            let now = Instant::now();
            now + end.saturating_duration_since(now) / steps_left.max(1)
        })
    };
    let over = |deadline: Option<Instant>| deadline.is_some_and(|d| Instant::now() >= d);

    let mut released = ReleasedReport::default();
    let deadline = share(4);
    loop {
        let pass = store.release_stale(config.heartbeat_timeout, batch).await?;
        released.passes += 1;
        released.requeued += pass.requeued.len();
        released.failed += pass.failed.len();
        if pass.total() < batch as usize {
            break;
        }
        if released.passes >= max_passes || over(deadline) {
            released.capped = true;
            break;
        }
    }

    let (relayed, relay_capped) = relay_bounded(store, publisher, batch, max_passes, share(3)).await?;

    let mut rewoken = RewakeReport::default();
    let deadline = share(2);
    loop {
        let pass = store.rewake_due(config.stale_pending_after, batch).await?;
        rewoken.passes += 1;
        rewoken.rewoken += pass.len();
        if pass.len() < batch as usize {
            break;
        }
        if rewoken.passes >= max_passes || over(deadline) {
            rewoken.capped = true;
            break;
        }
    }
    if rewoken.rewoken > 0 {
        rewoken.relay = relay_bounded(store, publisher, batch, max_passes, deadline)
            .await?
            .0;
    }

    let recovered = match broker {
        None => 0,
        Some(b) => b.recover().await.unwrap_or_else(|e| {
            // The broker's trouble is not the database's: the other steps
            // are done; the next sweep tries again.
            tracing::warn!(error = %e, "could not recover the broker's in-flight messages");
            0
        }),
    };

    // One bounded pass: a restart adds one row, a sweep removes up to `batch`.
    let workers_forgotten = store
        .forget_workers(crate::store::WORKER_FORGET_AFTER, batch)
        .await?;

    let audit = match config.audit_window {
        None => None,
        Some(window) => audit(store, broker, config, window, end).await,
    };

    // Alerts never stop a sweep: retention still runs when the webhook or
    // the alert state cannot be reached.
    let alerts = match &config.alerts {
        None => None,
        Some(alerter) => match alerter.run_once(store, audit.as_ref()).await {
            Ok(report) => Some(report),
            Err(e) => {
                tracing::warn!(error = %e, "the alerts did not run; the next sweep tries again");
                None
            }
        },
    };

    let pruned = prune(store, config, batch, end).await?;

    let report = SweepReport {
        started_at,
        released,
        relayed,
        relay_capped,
        rewoken,
        recovered,
        workers_forgotten,
        pruned,
        audit,
        alerts,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    };
    tracing::info!(
        released_requeued = released.requeued,
        released_failed = released.failed,
        relayed = relayed.published,
        relay_failed = relayed.failed,
        rewoken = rewoken.rewoken,
        recovered,
        workers_forgotten,
        pruned_jobs = pruned.jobs.total(),
        duration_ms = report.duration_ms,
        "sweep done"
    );
    Ok(report)
}

/// Step 6: the audit of the window, recorded; `None` when it failed.
async fn audit(
    store: &Store,
    broker: Option<&dyn Broker>,
    config: &SweepConfig,
    window: Duration,
    end: Option<Instant>,
) -> Option<AuditReport> {
    let since = store.now() - chrono::Duration::from_std(window).unwrap_or_default();
    let mut options = AuditOptions::since(since, config.heartbeat_timeout);
    options.max_jobs = SWEEP_AUDIT_MAX_JOBS;
    // At most 5 s, and never past the sweep's budget (but at least 100 ms).
    let left = end.map_or(Duration::MAX, |e| e.saturating_duration_since(Instant::now()));
    options.timeout = Duration::from_secs(5).min(left).max(Duration::from_millis(100));
    let report = match store.audit_with(&options, broker).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "the sweep's audit did not run; the next sweep tries again");
            return None;
        }
    };
    if !report.ok {
        tracing::error!(violations = %report.broken().join(", "), examined = report.examined, "the audit found broken promises");
    }
    if let Err(e) = store.record_audit(&report).await {
        tracing::warn!(error = %e, "could not record the audit");
    }
    Some(report)
}

/// Step 8, until done, [`SweepConfig::prune_passes`] statements, or the end
/// of the budget.
async fn prune(
    store: &Store,
    config: &SweepConfig,
    batch: u32,
    end: Option<Instant>,
) -> Result<PruneReport, StoreError> {
    let over = || end.is_some_and(|d| Instant::now() >= d);
    let mut report = PruneReport::default();
    if !config.retention.keeps_everything() {
        loop {
            let pass = store.prune_jobs(&config.retention, batch).await?;
            report.passes += 1;
            report.jobs.add(pass);
            if pass.total() < batch as usize {
                break;
            }
            if report.passes >= config.prune_passes.max(1) || over() {
                report.capped = true;
                break;
            }
        }
        report.replays = store.prune_replays(&config.retention, batch).await?;
    }
    // One statement folds what was appended since the last sweep and what
    // aged into an hour or past a day; compact rows are left alone.
    report.counts_folded = store.compact_job_counts().await?;
    report.sessions = store.prune_sessions(batch).await?;
    report.dead_letter_tenants = store.adopt_dead_letter_tenants(batch).await?;
    Ok(report)
}
