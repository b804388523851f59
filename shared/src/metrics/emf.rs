//! The queue's gauges as one CloudWatch Embedded Metric Format line: a JSON
//! object whose `_aws` member tells CloudWatch Logs which of its members are
//! metrics (namespace [`NAMESPACE`], dimension `Queue`), so a log line
//! becomes data points with no API call. The sweeper Lambda prints one per
//! pass on stdout; `template.yaml` alarms on them.

use serde_json::{Value, json};

use super::queue::QueueSnapshot;
use crate::domain::JobStatus;

/// The CloudWatch namespace of jobline's own metrics.
pub const NAMESPACE: &str = "Jobline";

/// The line's metrics: name, unit, value.
fn metrics(snapshot: &QueueSnapshot) -> [(&'static str, &'static str, Value); 7] {
    [
        (
            "OldestPendingAgeSeconds",
            "Seconds",
            json!(snapshot.oldest_pending_age_seconds),
        ),
        ("DeadLetterJobs", "Count", json!(snapshot.dead_letter_jobs)),
        ("DeadLetterOutbox", "Count", json!(snapshot.dead_letter_outbox)),
        ("OutboxDue", "Count", json!(snapshot.outbox_due)),
        (
            "PendingJobs",
            "Count",
            json!(snapshot.in_status(JobStatus::Pending)),
        ),
        (
            "ProcessingJobs",
            "Count",
            json!(snapshot.in_status(JobStatus::Processing)),
        ),
        (
            "AuditViolations",
            "Count",
            json!(snapshot.audit_violations.values().sum::<i64>()),
        ),
    ]
}

/// The EMF object for `snapshot` of the queue named `queue`, taken at
/// `timestamp_ms` (milliseconds since the epoch).
pub fn line(snapshot: &QueueSnapshot, queue: &str, timestamp_ms: i64) -> Value {
    let metrics = metrics(snapshot);
    let definitions: Vec<Value> = metrics
        .iter()
        .map(|(name, unit, _)| json!({ "Name": name, "Unit": unit }))
        .collect();
    let mut object = serde_json::Map::new();
    object.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Queue"]],
                "Metrics": definitions,
            }],
        }),
    );
    object.insert("Queue".into(), json!(queue));
    for (name, _, value) in metrics {
        object.insert(name.into(), value);
    }
    Value::Object(object)
}
