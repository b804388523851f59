//! The queue in numbers, read from Postgres when asked (at scrape time, or
//! once per sweeper pass): jobs by status and type, the wait of the oldest
//! due pending job, the dead letter, the outbox rows due.

use prometheus::{Gauge, IntGauge, IntGaugeVec, Opts, Registry};

use super::MetricsError;
use crate::domain::JobStatus;
use crate::store::JobCount;
use crate::{Store, StoreError};

/// One reading of the queue, over every tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueSnapshot {
    /// Jobs by status and type (only the pairs that have jobs).
    pub jobs: Vec<JobCount>,
    /// How long the oldest due `pending` job has waited (0 when none waits).
    pub oldest_pending_age_seconds: f64,
    /// Failed jobs (the dead letter's jobs).
    pub dead_letter_jobs: i64,
    /// Dead-lettered outbox rows.
    pub dead_letter_outbox: i64,
    /// Outbox rows due for publishing now.
    pub outbox_due: i64,
}

impl QueueSnapshot {
    pub async fn read(store: &Store) -> Result<Self, StoreError> {
        let stats = store.stats(None).await?;
        Ok(Self {
            jobs: store.job_counts(None).await?,
            oldest_pending_age_seconds: stats.oldest_pending_age_seconds,
            dead_letter_jobs: stats.dead_letter_jobs,
            dead_letter_outbox: stats.dead_letter_outbox,
            outbox_due: store.outbox_due_count().await?,
        })
    }

    /// Jobs in `status`, of every type.
    pub fn in_status(&self, status: JobStatus) -> i64 {
        self.jobs
            .iter()
            .filter(|c| c.status == status.as_str())
            .map(|c| c.n)
            .sum()
    }
}

/// The gauges of a [`QueueSnapshot`], registered once.
#[derive(Debug)]
pub struct QueueGauges {
    jobs: IntGaugeVec,
    oldest_pending_age: Gauge,
    dead_letter_jobs: IntGauge,
    dead_letter_outbox: IntGauge,
    outbox_due: IntGauge,
    /// Held while a scrape updates and reads the gauges.
    pub(super) scraping: tokio::sync::Mutex<()>,
}

impl QueueGauges {
    pub fn register(registry: &Registry) -> Result<Self, MetricsError> {
        let gauges = Self {
            jobs: IntGaugeVec::new(
                Opts::new("jobline_jobs", "Jobs by status and job type, every tenant."),
                &["status", "type"],
            )?,
            oldest_pending_age: Gauge::new(
                "jobline_oldest_pending_age_seconds",
                "How long the oldest due pending job has waited (0 when none waits).",
            )?,
            dead_letter_jobs: IntGauge::new(
                "jobline_dead_letter_jobs",
                "Failed jobs: attempts spent or failed for good (the dead letter's jobs).",
            )?,
            dead_letter_outbox: IntGauge::new(
                "jobline_dead_letter_outbox",
                "Outbox rows dead-lettered after their publish attempts.",
            )?,
            outbox_due: IntGauge::new(
                "jobline_outbox_due",
                "Outbox rows (pending or failed) due for publishing now.",
            )?,
            scraping: tokio::sync::Mutex::new(()),
        };
        registry.register(Box::new(gauges.jobs.clone()))?;
        registry.register(Box::new(gauges.oldest_pending_age.clone()))?;
        registry.register(Box::new(gauges.dead_letter_jobs.clone()))?;
        registry.register(Box::new(gauges.dead_letter_outbox.clone()))?;
        registry.register(Box::new(gauges.outbox_due.clone()))?;
        Ok(gauges)
    }

    /// Sets every gauge from `snapshot`. A type with jobs gets a series for
    /// every status (0 where it has none); a type whose jobs are all gone
    /// (pruned) loses its series.
    pub fn set(&self, snapshot: &QueueSnapshot) {
        self.jobs.reset();
        for count in &snapshot.jobs {
            for status in JobStatus::ALL {
                // Created at 0 on the first sight of the type.
                self.jobs
                    .with_label_values(&[status.as_str(), count.job_type.as_str()]);
            }
            self.jobs
                .with_label_values(&[count.status.as_str(), count.job_type.as_str()])
                .set(count.n);
        }
        self.oldest_pending_age.set(snapshot.oldest_pending_age_seconds);
        self.dead_letter_jobs.set(snapshot.dead_letter_jobs);
        self.dead_letter_outbox.set(snapshot.dead_letter_outbox);
        self.outbox_due.set(snapshot.outbox_due);
    }
}
