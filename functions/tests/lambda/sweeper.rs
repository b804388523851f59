//! The sweeper.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::Client;
use jobline::domain::job::Schedule;
use jobline::domain::{JobStatus, NewJob};
use jobline::queue::sqs::SqsQueue;
use jobline::queue::{Message, Publisher};
use jobline::store::ClaimByIdOutcome;
use jobline::sweeper::{SweepConfig, sweep_once};
use jobline::testing::{TENANT, TestDb, test_db};
use jobline_functions::sweep::Sweeper;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{body_of, consumer, event, fresh_queue, noop, receive_all, record, sqs, sqs_options};

const HEARTBEAT_TIMEOUT: i64 = 60;

/// What a sweep has to find: stale claims (one with attempts spent),
/// unpublished outbox rows, due jobs whose message was lost; and jobs it must
/// leave alone.
struct Scene {
    stale: Vec<Uuid>,
    spent: Uuid,
    orphans: Vec<Uuid>,
    lost: Vec<Uuid>,
    untouched: Vec<Uuid>,
}

async fn scene(db: &TestDb, n: usize) -> Scene {
    // t0: jobs whose message was published, then lost.
    let mut lost = Vec::new();
    for _ in 0..n {
        lost.push(db.published_job(noop()).await.id);
    }
    db.advance(400);
    // t1 = t0 + 400: claims that go silent, rows nobody published, and
    // jobs that are fine.
    let mut stale = Vec::new();
    for _ in 0..n {
        let id = db.published_job(noop()).await.id;
        let ClaimByIdOutcome::Claimed(_) = db.store.claim_by_id("doomed", id).await.expect("claim") else {
            panic!("claimable")
        };
        stale.push(id);
    }
    let spent = db
        .published_job(NewJob {
            max_attempts: Some(1),
            ..noop()
        })
        .await
        .id;
    let ClaimByIdOutcome::Claimed(_) = db.store.claim_by_id("doomed", spent).await.expect("claim") else {
        panic!("claimable")
    };
    let mut orphans = Vec::new();
    for _ in 0..n {
        orphans.push(db.noop_for(TENANT).await.id);
    }
    let untouched = vec![
        // due, published recently
        db.published_job(noop()).await.id,
        // not due for an hour
        db.published_job(noop().schedule(Schedule::AfterSeconds(3600)))
            .await
            .id,
    ];
    // t2 = t1 + 100: the claims are 100 s silent (timeout 60 s), the orphans
    // past the creator's grace (30 s), the lost jobs due for 500 s (> 300 s).
    db.advance(100);
    Scene {
        stale,
        spent,
        orphans,
        lost,
        untouched,
    }
}

fn sweep_config(batch: u32) -> SweepConfig {
    SweepConfig {
        heartbeat_timeout: Duration::from_secs(HEARTBEAT_TIMEOUT as u64),
        stale_pending_after: Duration::from_secs(300),
        batch,
        max_passes: 100,
        budget: None,
        retention: jobline::store::Retention::default(),
        alerts: None,
        // Audited in shared/tests/integration/alerts.rs; these count statements.
        audit_window: None,
        prune_passes: 200,
    }
}

/// A sweeper over `db` with the postgres adapter, `batch` rows a statement.
fn postgres_sweeper(db: &TestDb, batch: u32) -> Sweeper {
    let queue = Arc::new(jobline::queue::postgres::PostgresQueue::new(
        db.store.clone(),
        None,
    ));
    Sweeper::new(
        db.store.clone(),
        Publisher::new(db.store.clone(), queue, "sweeper"),
        sweep_config(batch),
    )
}

/// A single number from SQL about job `id` (`$1`).
async fn count_for(db: &TestDb, sql: &str, id: Uuid) -> i64 {
    db.client.query_one(sql, &[&id]).await.expect(sql).get(0)
}

/// Job ids of the messages on the queue, with how often each came.
async fn messages_by_job(client: &Client, url: &str, arn: &str) -> HashMap<Uuid, usize> {
    let mut out = HashMap::new();
    for r in receive_all(client, url, arn).await {
        let m = Message::parse(r["body"].as_str().expect("body")).expect("a job message");
        *out.entry(m.job_id).or_default() += 1;
    }
    out
}

#[tokio::test]
async fn the_sweeper_releases_relays_and_rewakes_and_reports_it() {
    let db = test_db().await;
    let client = sqs();
    let (url, arn) = fresh_queue(&client, 60).await;
    let s = scene(&db, 1).await;
    let publisher = Publisher::new(
        db.store.clone(),
        Arc::new(SqsQueue::with_client(client.clone(), url.clone())),
        "sweeper",
    );
    let sweeper = Sweeper::new(db.store.clone(), publisher.clone(), sweep_config(500));

    // What EventBridge sends on a schedule; any JSON is accepted.
    let scheduled = json!({
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2025-01-01T00:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/jobline-sweeper"],
        "detail": {}
    });
    let report = sweeper.handle(scheduled).await.expect("sweep");
    assert_eq!(report["released"]["requeued"], 1, "{report}");
    assert_eq!(report["released"]["failed"], 1, "{report}");
    assert_eq!(
        report["relayed"]["published"], 2,
        "the released job and the orphan: {report}"
    );
    assert_eq!(report["relayed"]["failed"], 0, "{report}");
    assert_eq!(report["rewoken"]["rewoken"], 1, "{report}");
    assert_eq!(report["rewoken"]["relay"]["published"], 1, "{report}");
    assert!(
        report["started_at"].is_string() && report["duration_ms"].is_u64(),
        "{report}"
    );

    // The jobs.
    let stale = db.job(s.stale[0]).await;
    assert_eq!(stale.status, JobStatus::Pending);
    assert_eq!(stale.error_code.as_deref(), Some("HEARTBEAT_TIMEOUT"));
    let spent = db.job(s.spent).await;
    assert_eq!(
        (spent.status, spent.error_code.as_deref()),
        (JobStatus::Failed, Some("HEARTBEAT_TIMEOUT"))
    );
    assert_eq!(
        db.events(s.lost[0]).await,
        ["created", "published", "published"],
        "woken again: a second message"
    );

    // On the queue: one message for each job that needed one.
    let on_queue = messages_by_job(&client, &url, &arn).await;
    let expected: HashMap<Uuid, usize> = [s.stale[0], s.orphans[0], s.lost[0]]
        .into_iter()
        .map(|id| (id, 1))
        .collect();
    assert_eq!(on_queue, expected);

    // Nothing left to do: a second sweep changes nothing.
    let again = sweeper.sweep().await.expect("sweep");
    assert_eq!(
        (
            again.released.requeued + again.released.failed,
            again.relayed.published,
            again.rewoken.rewoken
        ),
        (0, 0, 0),
        "{again:?}"
    );
    for id in &s.untouched {
        assert_eq!(
            count_for(&db, "SELECT count(*) FROM outbox WHERE job_id = $1", *id).await,
            1
        );
    }

    // Nobody consumes anything: each job is woken again once it has been
    // due and silent for 300 s. At t2 + 299 that is the job published at t1,
    // not those published at t2 (the woken, released and orphaned ones)...
    db.advance(299);
    assert_eq!(sweeper.sweep().await.expect("sweep").rewoken.rewoken, 1);
    assert_eq!(
        count_for(
            &db,
            "SELECT count(*) FROM outbox WHERE job_id = $1",
            s.untouched[0]
        )
        .await,
        2
    );
    // ...which follow two seconds later; the job due in an hour does not.
    db.advance(2);
    let later = sweeper.sweep().await.expect("sweep");
    assert_eq!(later.rewoken.rewoken, 3, "{later:?}");
    assert_eq!(later.rewoken.relay.published, 3, "{later:?}");

    // Once a consumer runs the job, nothing wakes it again.
    let consumer = consumer(&db, jobline::handlers::builtins(), sqs_options(8));
    let records: Vec<Value> = [s.lost[0], s.stale[0], s.orphans[0], s.untouched[0]]
        .iter()
        .enumerate()
        .map(|(i, id)| record(&format!("m-{i}"), &body_of(*id, 0)))
        .collect();
    assert!(
        consumer
            .handle(event(records))
            .await
            .batch_item_failures
            .is_empty()
    );
    db.advance(600);
    assert_eq!(sweeper.sweep().await.expect("sweep").rewoken.rewoken, 0);
}

#[tokio::test]
async fn two_sweepers_racing_do_each_thing_once() {
    let db = test_db().await;
    let client = sqs();
    let (url, arn) = fresh_queue(&client, 60).await;
    let n = 12;
    let s = scene(&db, n).await;
    let queue = Arc::new(SqsQueue::with_client(client.clone(), url.clone()));
    let a = Publisher::new(db.store.clone(), queue.clone(), "sweeper-a");
    let b = Publisher::new(db.store.clone(), queue, "sweeper-b");
    // Small batches: many statements, so the two interleave.
    let config = sweep_config(2);
    let (ra, rb) = tokio::join!(
        sweep_once(&db.store, &a, None, &config),
        sweep_once(&db.store, &b, None, &config)
    );
    let (ra, rb) = (ra.expect("sweep a"), rb.expect("sweep b"));
    assert_eq!(ra.released.requeued + rb.released.requeued, n, "{ra:?} {rb:?}");
    assert_eq!(ra.released.failed + rb.released.failed, 1, "{ra:?} {rb:?}");
    assert_eq!(ra.rewoken.rewoken + rb.rewoken.rewoken, n, "{ra:?} {rb:?}");
    let published =
        ra.relayed.published + rb.relayed.published + ra.rewoken.relay.published + rb.rewoken.relay.published;
    assert_eq!(published, 3 * n, "{ra:?} {rb:?}");

    // Each job released once, woken once, published once.
    for id in &s.stale {
        let events = db.events(*id).await;
        assert_eq!(events.iter().filter(|e| *e == "heartbeat_released").count(), 1);
    }
    for id in &s.lost {
        assert_eq!(
            count_for(&db, "SELECT count(*) FROM outbox WHERE job_id = $1", *id).await,
            2
        );
        assert_eq!(
            count_for(
                &db,
                "SELECT count(*) FROM job_events WHERE job_id = $1 AND event = 'published'",
                *id
            )
            .await,
            2
        );
    }
    let on_queue = messages_by_job(&client, &url, &arn).await;
    let expected: HashMap<Uuid, usize> = s
        .stale
        .iter()
        .chain(&s.orphans)
        .chain(&s.lost)
        .map(|id| (*id, 1))
        .collect();
    assert_eq!(on_queue, expected);
    for id in s.untouched {
        assert_eq!(
            count_for(&db, "SELECT count(*) FROM outbox WHERE job_id = $1", id).await,
            1
        );
    }
}

/// A spent time budget stops the relay before it starts, and the steps
/// after it still run: a backlog in one step cannot starve the others.
#[tokio::test]
async fn a_sweep_within_a_spent_budget_still_runs_every_step() {
    let db = test_db().await;
    for _ in 0..30 {
        db.noop_for(TENANT).await;
    }
    db.advance(60); // past the creator's grace: the rows are the relay's
    let sweeper = postgres_sweeper(&db, 10);
    let report = sweeper.sweep_within(Duration::ZERO).await.expect("sweep");
    assert!(report.relay_capped, "{report:?}");
    assert_eq!(report.relayed.leased, 0, "nothing relayed past the budget");
    assert_eq!(report.released.passes, 1, "the release step ran");
    assert_eq!(report.rewoken.passes, 1, "and the re-wake step after the relay");
    let report = sweeper.sweep().await.expect("sweep");
    assert!(!report.relay_capped);
    assert_eq!(
        report.relayed.published, 30,
        "without a budget the backlog is relayed"
    );
}

/// Each pass prints the queue's gauges as one CloudWatch Embedded Metric
/// Format line: `_aws` says which members are metrics (namespace, the
/// `Queue` dimension, each metric's name and unit), the members hold the
/// values.
#[tokio::test]
async fn each_pass_writes_the_queues_gauges_as_one_embedded_metric_format_line() {
    let db = test_db().await;
    for _ in 0..3 {
        db.published_job(noop()).await;
    }
    let running = db.published_job(noop()).await;
    let ClaimByIdOutcome::Claimed(_) = db.store.claim_by_id("w-1", running.id).await.expect("claim") else {
        panic!("claimable")
    };
    let broken = db
        .published_job(NewJob {
            max_attempts: Some(1),
            ..noop()
        })
        .await;
    let ClaimByIdOutcome::Claimed(claim) = db.store.claim_by_id("w-1", broken.id).await.expect("claim")
    else {
        panic!("claimable")
    };
    db.store
        .fail(
            &claim,
            &jobline::store::JobFailure::permanent("BROKEN", "on purpose"),
        )
        .await
        .expect("fail");
    // Two jobs nobody published, past the creator's grace: due outbox rows.
    db.noop_for(TENANT).await;
    db.noop_for(TENANT).await;
    db.advance(45);

    let lines = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let written = lines.clone();
    let sweeper =
        postgres_sweeper(&db, 10).with_metrics_out(jobline_functions::sweep::MetricsOut::to(move |line| {
            written.lock().expect("lines").push(line.to_owned());
        }));
    // A spent budget: the relay leaves the due rows for the next pass.
    sweeper.pass(Some(Duration::ZERO)).await.expect("sweep");

    let lines = lines.lock().expect("lines").clone();
    assert_eq!(lines.len(), 1, "one line per pass: {lines:?}");
    assert!(!lines[0].contains('\n'));
    let line: Value = serde_json::from_str(&lines[0]).expect("a JSON object");
    let aws = &line["_aws"];
    assert_eq!(aws["Timestamp"], json!(db.now().timestamp_millis()), "{line}");
    let directives = aws["CloudWatchMetrics"].as_array().expect("CloudWatchMetrics");
    assert_eq!(directives.len(), 1, "{line}");
    assert_eq!(directives[0]["Namespace"], "Jobline");
    assert_eq!(directives[0]["Dimensions"], json!([["Queue"]]));
    assert_eq!(
        line["Queue"],
        json!(db.store.settings().queue_name),
        "the dimension's value"
    );
    let metrics: Vec<(String, String)> = directives[0]["Metrics"]
        .as_array()
        .expect("Metrics")
        .iter()
        .map(|m| {
            (
                m["Name"].as_str().expect("Name").to_owned(),
                m["Unit"].as_str().expect("Unit").to_owned(),
            )
        })
        .collect();
    let expected = [
        ("OldestPendingAgeSeconds", "Seconds"),
        ("DeadLetterJobs", "Count"),
        ("DeadLetterOutbox", "Count"),
        ("OutboxDue", "Count"),
        ("PendingJobs", "Count"),
        ("ProcessingJobs", "Count"),
        ("AuditViolations", "Count"),
    ]
    .map(|(n, u)| (n.to_owned(), u.to_owned()));
    assert_eq!(metrics, expected);
    let values: Vec<f64> = expected
        .iter()
        .map(|(name, _)| {
            line[name]
                .as_f64()
                .unwrap_or_else(|| panic!("{name} is a number: {line}"))
        })
        .collect();
    // No sweep of this test audits (its config has no audit window): no
    // recorded audit, no violation.
    assert_eq!(values, [45.0, 1.0, 0.0, 2.0, 5.0, 1.0, 0.0], "{line}");
}
