//! The queue in numbers, read from Postgres when asked (at scrape time, or
//! once per sweeper pass): jobs by status and type, the wait of the oldest
//! due pending job, the dead letter, the outbox rows due.

use std::collections::BTreeMap;

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
    /// The violation counts of the last audit a sweeper recorded within the
    /// hour (none: empty).
    pub audit_violations: BTreeMap<String, i64>,
}

/// At most this many job types get series of their own; the rest (the
/// types with the fewest jobs) are summed under [`OTHER_TYPES`], so a tenant
/// inventing type names cannot blow up a scrape.
pub const MAX_TYPE_SERIES: usize = 100;
/// The `type` label of the types beyond [`MAX_TYPE_SERIES`].
pub const OTHER_TYPES: &str = "_other";

impl QueueSnapshot {
    pub async fn read(store: &Store) -> Result<Self, StoreError> {
        let stats = store.stats(None).await?;
        Ok(Self {
            jobs: store.job_counts(None).await?,
            oldest_pending_age_seconds: stats.oldest_pending_age_seconds,
            dead_letter_jobs: stats.dead_letter_jobs,
            dead_letter_outbox: stats.dead_letter_outbox,
            outbox_due: store.outbox_due_count().await?,
            // A sweeper that stopped auditing leaves no series, not old ones.
            audit_violations: store
                .last_audit()
                .await?
                .filter(|(_, at)| store.now() - *at < chrono::Duration::hours(1))
                .map(|(v, _)| v)
                .unwrap_or_default(),
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
    audit_violations: IntGaugeVec,
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
            audit_violations: IntGaugeVec::new(
                Opts::new(
                    "jobline_audit_violations",
                    "Broken promises the sweeper's last audit found, by invariant (0: kept).",
                ),
                &["name"],
            )?,
            scraping: tokio::sync::Mutex::new(()),
        };
        registry.register(Box::new(gauges.jobs.clone()))?;
        registry.register(Box::new(gauges.oldest_pending_age.clone()))?;
        registry.register(Box::new(gauges.dead_letter_jobs.clone()))?;
        registry.register(Box::new(gauges.dead_letter_outbox.clone()))?;
        registry.register(Box::new(gauges.outbox_due.clone()))?;
        registry.register(Box::new(gauges.audit_violations.clone()))?;
        Ok(gauges)
    }

    /// Sets every gauge from `snapshot`. A type with jobs gets a series for
    /// every status (0 where it has none); a type whose jobs are all gone
    /// (pruned) loses its series.
    pub fn set(&self, snapshot: &QueueSnapshot) {
        self.jobs.reset();
        for count in &capped(&snapshot.jobs) {
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
        self.audit_violations.reset();
        for (name, n) in &snapshot.audit_violations {
            self.audit_violations.with_label_values(&[name.as_str()]).set(*n);
        }
    }
}

/// `counts` with at most [`MAX_TYPE_SERIES`] types: those with the most jobs
/// keep their name, the others are summed per status under [`OTHER_TYPES`].
fn capped(counts: &[JobCount]) -> Vec<JobCount> {
    let mut per_type: BTreeMap<&str, i64> = BTreeMap::new();
    for c in counts {
        *per_type.entry(c.job_type.as_str()).or_default() += c.n;
    }
    if per_type.len() <= MAX_TYPE_SERIES {
        return counts.to_vec();
    }
    let mut ranked: Vec<(&str, i64)> = per_type.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let kept: std::collections::BTreeSet<&str> =
        ranked.iter().take(MAX_TYPE_SERIES).map(|(t, _)| *t).collect();
    let mut out: Vec<JobCount> = Vec::new();
    let mut other: BTreeMap<String, i64> = BTreeMap::new();
    for c in counts {
        if kept.contains(c.job_type.as_str()) {
            out.push(c.clone());
        } else {
            *other.entry(c.status.clone()).or_default() += c.n;
        }
    }
    out.extend(other.into_iter().map(|(status, n)| JobCount {
        status,
        job_type: OTHER_TYPES.to_owned(),
        n,
    }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(status: &str, job_type: &str, n: i64) -> JobCount {
        JobCount {
            status: status.into(),
            job_type: job_type.into(),
            n,
        }
    }

    #[test]
    fn types_beyond_the_cap_are_summed_under_other() {
        let mut counts: Vec<JobCount> = (0..150)
            .map(|i| count("pending", &format!("t{i:03}"), i + 1))
            .collect();
        counts.push(count("failed", "t000", 5));
        let capped = capped(&counts);
        let types: std::collections::BTreeSet<&str> = capped.iter().map(|c| c.job_type.as_str()).collect();
        assert_eq!(
            types.len(),
            MAX_TYPE_SERIES + 1,
            "100 named types and {OTHER_TYPES}"
        );
        assert!(types.contains("t149"), "the biggest types keep their name");
        assert!(!types.contains("t000"));
        let other: i64 = capped
            .iter()
            .filter(|c| c.job_type == OTHER_TYPES)
            .map(|c| c.n)
            .sum();
        let all: i64 = counts.iter().map(|c| c.n).sum();
        let named: i64 = capped
            .iter()
            .filter(|c| c.job_type != OTHER_TYPES)
            .map(|c| c.n)
            .sum();
        assert_eq!(other + named, all, "nothing is lost");
        assert!(
            capped
                .iter()
                .any(|c| c.job_type == OTHER_TYPES && c.status == "failed" && c.n == 5)
        );
    }

    #[test]
    fn few_types_are_left_alone() {
        let counts = vec![count("pending", "noop", 3), count("completed", "noop", 2)];
        assert_eq!(capped(&counts), counts);
    }
}
