//! The live audit (`Store::audit`, `sql/audit.sql`): each violation,
//! planted with SQL as the gauntlet's self check plants it, is reported
//! under its own name with the planted job among the examples, and nothing
//! else is; a clean system is `ok`; the window, the cap and the time budget
//! hold; the Redis broker's orphaned processing lists are counted.

use std::time::Duration;

use jobline::domain::{Job, NewJob};
use jobline::queue::{Broker, Queue};
use jobline::store::audit::REDIS_ORPHANED_PROCESSING;
use jobline::store::{AuditError, AuditOptions, AuditReport, ClaimByIdOutcome, JobFailure};
use redis::AsyncCommands;
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

use crate::support::{TestDb, connect_raw, test_api, test_db};

const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(60);

fn options(db: &TestDb) -> AuditOptions {
    AuditOptions::since(db.now() - chrono::Duration::hours(24), HEARTBEAT_TIMEOUT)
}

async fn audit(db: &TestDb) -> AuditReport {
    db.store.audit(&options(db)).await.expect("audit")
}

/// A noop job as the create route leaves it: pending, its message sent.
async fn pending_job(db: &TestDb) -> Job {
    db.published_job(NewJob::new("noop", json!({}))).await
}

/// A published job claimed by worker `w`.
async fn claimed_job(db: &TestDb) -> Job {
    let job = pending_job(db).await;
    let ClaimByIdOutcome::Claimed(_) = db.store.claim_by_id("w", job.id).await.expect("claim") else {
        panic!("a new job is claimable")
    };
    db.job(job.id).await
}

/// A published job claimed and completed by worker `w`.
async fn completed_job(db: &TestDb) -> Job {
    let job = pending_job(db).await;
    let ClaimByIdOutcome::Claimed(claim) = db.store.claim_by_id("w", job.id).await.expect("claim") else {
        panic!("a new job is claimable")
    };
    db.store.complete(&claim, None, None).await.expect("complete");
    db.job(job.id).await
}

async fn plant(db: &TestDb, sql: &str, id: Uuid) {
    db.client.execute(sql, &[&id]).await.expect(sql);
}

/// Exactly `name` is violated, once, by `id`.
fn assert_only(report: &AuditReport, name: &str, id: Uuid) {
    assert!(!report.ok, "{report:?}");
    assert_eq!(report.broken(), vec![format!("{name}=1")], "{report:?}");
    assert_eq!(report.examples.get(name), Some(&vec![id]), "{report:?}");
    assert_eq!(report.examples.len(), 1, "{report:?}");
}

/// A handful of jobs in every state a healthy system leaves them in.
async fn healthy_traffic(db: &TestDb) {
    completed_job(db).await;
    completed_job(db).await;
    pending_job(db).await;
    claimed_job(db).await;
    let cancelled = pending_job(db).await;
    db.store.cancel(None, cancelled.id, "api").await.expect("cancel");
}

#[tokio::test]
async fn a_healthy_system_is_ok_with_every_violation_at_zero() {
    let db = test_db().await;
    healthy_traffic(&db).await;
    let report = audit(&db).await;
    assert!(report.ok, "{report:?}");
    assert_eq!(report.examined, 5);
    assert!(!report.truncated);
    assert!(report.examples.is_empty());
    for name in [
        "completed_twice",
        "event_gaps",
        "status_not_last_event",
        "claims_not_attempts",
        "completed_attempt_not_attempts",
        "handed_back_unclaimed",
        "outbox_stuck",
        "stale_claims",
    ] {
        assert_eq!(report.violations.get(name), Some(&0), "{name}: {report:?}");
    }
    assert_eq!(report.informative["not_completed"], 3);
    assert_eq!(report.by_status["completed"], 2);
    assert_eq!(report.by_status["cancelled"], 1);
    assert_eq!(report.by_status["processing"], 1);
    assert_eq!(report.by_status["pending"], 1);
    assert_eq!(report.until, db.now());
}

async fn claim(db: &TestDb, worker: &str, id: Uuid) -> jobline::store::Claim {
    let ClaimByIdOutcome::Claimed(claim) = db.store.claim_by_id(worker, id).await.expect("claim") else {
        panic!("claimable")
    };
    *claim
}

#[tokio::test]
async fn retries_releases_hand_backs_and_replays_are_not_violations() {
    let db = test_db().await;
    // Failed once (retryable), completed by its second attempt.
    let retried = pending_job(&db).await;
    let c = claim(&db, "w1", retried.id).await;
    db.store
        .fail_with_jitter(&c, &JobFailure::retryable("FLAKY", "once"), 0.0)
        .await
        .expect("fail");
    // Failed for good, put back by an operator.
    let replayed = pending_job(&db).await;
    let c = claim(&db, "w1", replayed.id).await;
    db.store
        .fail(&c, &JobFailure::permanent("BAD", "no"))
        .await
        .expect("fail");
    db.store
        .retry(None, replayed.id, "operator", None)
        .await
        .expect("retry");
    // Claimed ahead and handed back unstarted.
    let handed = pending_job(&db).await;
    let c = claim(&db, "w2", handed.id).await;
    assert_eq!(
        db.store
            .hand_back("w2", &[c.token()], false)
            .await
            .expect("hand back"),
        1
    );
    // Its worker died: released by the heartbeat timeout.
    let released = pending_job(&db).await;
    claim(&db, "w3", released.id).await;
    db.advance(61);
    let report = db
        .store
        .release_stale(HEARTBEAT_TIMEOUT, 100)
        .await
        .expect("release");
    assert_eq!(report.total(), 1);
    // Every one of them completed by another claim.
    for id in [retried.id, replayed.id, handed.id, released.id] {
        let c = claim(&db, "w4", id).await;
        db.store.complete(&c, None, None).await.expect("complete");
    }
    // Their wake-up rows (retry, release) are the relay's: mark them sent.
    let unsent: Vec<i64> = db
        .client
        .query("SELECT id FROM outbox WHERE status <> 'sent'", &[])
        .await
        .expect("outbox")
        .iter()
        .map(|r| r.get(0))
        .collect();
    db.store.mark_published(&unsent, "relay").await.expect("mark");
    db.advance(120);

    let report = audit(&db).await;
    assert!(report.ok, "{report:?}");
    assert_eq!(report.by_status["completed"], 4);
    assert_eq!(report.informative["rerun"], 3, "retried, replayed, released");
}

#[tokio::test]
async fn a_job_completed_twice_is_reported() {
    let db = test_db().await;
    healthy_traffic(&db).await;
    let job = completed_job(&db).await;
    // A second run after the first completion, the chain and the attempt
    // count kept whole: only the second `completed` is wrong.
    plant(
        &db,
        "INSERT INTO job_events (job_id, event, from_status, to_status, attempt, actor) VALUES
        ($1, 'retried', 'completed', 'pending', 1, 'x'),
        ($1, 'claimed', 'pending', 'processing', 2, 'w'),
        ($1, 'completed', 'processing', 'completed', 2, 'w')",
        job.id,
    )
    .await;
    plant(&db, "UPDATE jobs SET attempts = 2 WHERE id = $1", job.id).await;
    assert_only(&audit(&db).await, "completed_twice", job.id);
}

#[tokio::test]
async fn a_timeline_with_a_gap_is_reported() {
    let db = test_db().await;
    healthy_traffic(&db).await;
    let job = completed_job(&db).await;
    plant(
        &db,
        "UPDATE job_events SET from_status = 'failed' WHERE job_id = $1 AND event = 'claimed'",
        job.id,
    )
    .await;
    assert_only(&audit(&db).await, "event_gaps", job.id);
}

#[tokio::test]
async fn a_timeline_that_begins_with_anything_but_created_is_reported() {
    let db = test_db().await;
    let job = completed_job(&db).await;
    plant(
        &db,
        "UPDATE job_events SET event = 'replayed' WHERE job_id = $1 AND event = 'created'",
        job.id,
    )
    .await;
    assert_only(&audit(&db).await, "event_gaps", job.id);
}

#[tokio::test]
async fn a_status_its_last_event_does_not_end_in_is_reported() {
    let db = test_db().await;
    healthy_traffic(&db).await;
    let job = pending_job(&db).await;
    plant(
        &db,
        "UPDATE jobs SET status = 'cancelled', completed_at = now() WHERE id = $1",
        job.id,
    )
    .await;
    assert_only(&audit(&db).await, "status_not_last_event", job.id);
}

#[tokio::test]
async fn an_attempt_nobody_claimed_is_reported() {
    let db = test_db().await;
    healthy_traffic(&db).await;
    let job = pending_job(&db).await;
    plant(&db, "UPDATE jobs SET attempts = 1 WHERE id = $1", job.id).await;
    assert_only(&audit(&db).await, "claims_not_attempts", job.id);
}

#[tokio::test]
async fn a_completion_by_a_claim_that_is_not_the_current_one_is_reported() {
    let db = test_db().await;
    healthy_traffic(&db).await;
    let job = completed_job(&db).await;
    plant(
        &db,
        "UPDATE job_events SET attempt = 2 WHERE job_id = $1 AND event = 'completed'",
        job.id,
    )
    .await;
    assert_only(&audit(&db).await, "completed_attempt_not_attempts", job.id);
}

#[tokio::test]
async fn a_hand_back_by_a_worker_that_did_not_claim_is_reported() {
    let db = test_db().await;
    healthy_traffic(&db).await;
    let job = pending_job(&db).await;
    plant(
        &db,
        "INSERT INTO job_events (job_id, event, from_status, to_status, attempt, actor) VALUES
        ($1, 'claimed', 'pending', 'processing', 1, 'w1'),
        ($1, 'handed_back', 'processing', 'pending', 1, 'w2')",
        job.id,
    )
    .await;
    assert_only(&audit(&db).await, "handed_back_unclaimed", job.id);
}

#[tokio::test]
async fn an_outbox_row_due_for_longer_than_the_grace_is_reported_and_a_fresh_one_is_not() {
    let db = test_db().await;
    healthy_traffic(&db).await;
    // Created, its message never sent: the relay takes such a row over
    // after the store's outbox grace (30 s), and has the audit's grace (a
    // minute) to send it.
    let unsent = db.noop_for("acme").await;
    db.advance(30 + 59);
    let fresh = audit(&db).await;
    assert!(fresh.ok, "the relay still has time to send it: {fresh:?}");
    assert_eq!(fresh.informative["outbox_unsent"], 1);

    db.advance(2);
    assert_only(&audit(&db).await, "outbox_stuck", unsent.id);
}

#[tokio::test]
async fn a_dead_lettered_outbox_row_is_reported() {
    let db = test_db().await;
    healthy_traffic(&db).await;
    let job = pending_job(&db).await;
    plant(
        &db,
        "UPDATE outbox SET status = 'dead_letter', sent_at = NULL WHERE job_id = $1",
        job.id,
    )
    .await;
    assert_only(&audit(&db).await, "outbox_stuck", job.id);
}

#[tokio::test]
async fn a_claim_past_the_heartbeat_timeout_and_the_grace_is_reported() {
    let db = test_db().await;
    let job = claimed_job(&db).await;
    db.advance(60 + 59);
    assert!(
        audit(&db).await.ok,
        "within timeout and grace, the sweeper's to release"
    );
    db.advance(2);
    assert_only(&audit(&db).await, "stale_claims", job.id);
    // (The outbox row of a claimed job was sent: nothing else is due.)
}

#[tokio::test]
async fn a_snapshot_with_no_grace_counts_an_unsent_row_at_once() {
    let db = test_db().await;
    let unsent = db.noop_for("acme").await;
    db.advance(31); // past the relay's take-over (the store's outbox grace)
    let snapshot = AuditOptions {
        grace: Duration::ZERO,
        ..options(&db)
    };
    let report = db.store.audit(&snapshot).await.expect("audit");
    assert_only(&report, "outbox_stuck", unsent.id);
}

#[tokio::test]
async fn violations_older_than_the_window_are_not_reported() {
    let db = test_db().await;
    let old = pending_job(&db).await;
    plant(&db, "UPDATE jobs SET attempts = 1 WHERE id = $1", old.id).await;
    db.advance(25 * 3600);
    pending_job(&db).await;
    let report = audit(&db).await;
    assert!(report.ok, "{report:?}");
    assert_eq!(report.examined, 1, "only the new job is in the last 24 h");

    let wider = AuditOptions {
        since: db.now() - chrono::Duration::hours(48),
        ..options(&db)
    };
    let report = db.store.audit(&wider).await.expect("audit");
    assert_only(&report, "claims_not_attempts", old.id);
}

#[tokio::test]
async fn an_audit_examines_at_most_its_cap_of_the_newest_jobs_and_says_it_was_truncated() {
    let db = test_db().await;
    let oldest = pending_job(&db).await;
    plant(&db, "UPDATE jobs SET attempts = 1 WHERE id = $1", oldest.id).await;
    db.advance(1);
    for _ in 0..3 {
        pending_job(&db).await;
        db.advance(1);
    }
    let capped = AuditOptions {
        max_jobs: 3,
        ..options(&db)
    };
    let report = db.store.audit(&capped).await.expect("audit");
    assert_eq!((report.examined, report.truncated), (3, true));
    assert!(
        report.ok,
        "the oldest job, with the violation, was not examined: {report:?}"
    );
    let report = audit(&db).await;
    assert_eq!((report.examined, report.truncated), (4, false));
    assert_only(&report, "claims_not_attempts", oldest.id);
}

#[tokio::test]
async fn examples_are_capped_at_ten_while_the_count_is_whole() {
    let db = test_db().await;
    for _ in 0..12 {
        let job = pending_job(&db).await;
        plant(&db, "UPDATE jobs SET attempts = 1 WHERE id = $1", job.id).await;
    }
    let report = audit(&db).await;
    assert_eq!(report.violations["claims_not_attempts"], 12);
    assert_eq!(report.examples["claims_not_attempts"].len(), 10);
}

#[tokio::test]
async fn an_audit_past_its_time_budget_is_cancelled_with_a_timeout() {
    let db = test_db().await;
    pending_job(&db).await;
    // Another session holds `jobs` locked: the audit waits, and its
    // statement_timeout ends the wait.
    let mut locker = connect_raw(&db.url).await;
    let tx = locker.transaction().await.expect("begin");
    tx.batch_execute("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    let budget = AuditOptions {
        timeout: Duration::from_millis(200),
        ..options(&db)
    };
    let err = db
        .store
        .audit(&budget)
        .await
        .expect_err("the audit cannot read jobs");
    assert!(
        matches!(err, AuditError::Timeout(t) if t == Duration::from_millis(200)),
        "{err:?}"
    );
    tx.rollback().await.expect("rollback");
    assert!(
        db.store.audit(&budget).await.expect("audit").ok,
        "the pool's connection is fine after"
    );
}

mod redis_broker {
    use super::*;
    use crate::queue_redis::{fresh_name, now, plain, queue};

    #[tokio::test]
    async fn messages_of_a_dead_consumer_are_orphaned_until_recover_puts_them_back() {
        let name = fresh_name();
        let q = queue(&name).await;
        let mut redis = plain().await;
        // A live consumer holding one message: not orphaned.
        q.publish(&[now(Uuid::new_v4())]).await.expect("publish");
        let held = q
            .receive("alive", 1, Duration::from_secs(1))
            .await
            .expect("receive");
        assert_eq!(held.len(), 1);
        // A consumer that died with two messages (no liveness mark).
        let _: () = redis
            .rpush(format!("{name}:processing:dead"), vec!["m1", "m2"])
            .await
            .expect("plant");
        assert_eq!(q.orphaned_processing().await.expect("count"), 2);
        assert_eq!(
            q.orphaned_processing().await.expect("count"),
            2,
            "counting moves nothing"
        );

        let db = test_db().await;
        let mut report = audit(&db).await;
        report.check_broker(&q).await.expect("broker check");
        assert!(!report.ok);
        assert_eq!(report.broken(), vec![format!("{REDIS_ORPHANED_PROCESSING}=2")]);

        assert_eq!(q.recover().await.expect("recover"), 2);
        assert_eq!(q.orphaned_processing().await.expect("count"), 0);
        let mut report = audit(&db).await;
        report.check_broker(&q).await.expect("broker check");
        assert!(report.ok, "{report:?}");
        assert_eq!(report.violations[REDIS_ORPHANED_PROCESSING], 0);
    }
}

mod http {
    use super::*;

    #[tokio::test]
    async fn an_operator_gets_the_report_as_json() {
        let api = test_api().await;
        let job = api.db.published_job(NewJob::new("noop", json!({}))).await;
        let (s, b) = api.get("/v1/audit").await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["ok"], true, "{b}");
        assert_eq!(b["examined"], 1);
        assert_eq!(b["violations"]["claims_not_attempts"], 0);

        api.db
            .client
            .execute("UPDATE jobs SET attempts = 1 WHERE id = $1", &[&job.id])
            .await
            .expect("plant");
        let since = (api.db.now() - chrono::Duration::minutes(5)).to_rfc3339();
        let path = format!("/v1/audit?since={}", urlencode(&since));
        let (s, b) = api.get(&path).await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["ok"], false, "{b}");
        assert_eq!(b["violations"]["claims_not_attempts"], 1);
        assert_eq!(b["examples"]["claims_not_attempts"], json!([job.id]));
        assert_eq!(b["since"], json!(since_as_served(&since)));
    }

    fn urlencode(s: &str) -> String {
        s.replace('+', "%2B").replace(':', "%3A")
    }

    fn since_as_served(s: &str) -> String {
        chrono::DateTime::parse_from_rfc3339(s)
            .expect("rfc3339")
            .with_timezone(&chrono::Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    }

    #[tokio::test]
    async fn on_a_redis_queue_the_report_counts_a_dead_consumers_messages() {
        let name = crate::queue_redis::fresh_name();
        let url = crate::queue_redis::redis_url();
        let api = crate::support::test_api_with(&[
            ("JOBLINE_QUEUE", "redis"),
            ("REDIS_URL", &url),
            ("JOBLINE_QUEUE_NAME", &name),
        ])
        .await;
        let (s, b) = api.get("/v1/audit").await;
        assert_eq!(
            (s, &b["violations"][REDIS_ORPHANED_PROCESSING]),
            (200, &json!(0)),
            "{b}"
        );
        let _: () = crate::queue_redis::plain()
            .await
            .rpush(format!("{name}:processing:dead"), "m1")
            .await
            .expect("plant");
        let (s, b) = api.get("/v1/audit").await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["ok"], false, "{b}");
        assert_eq!(b["violations"][REDIS_ORPHANED_PROCESSING], 1, "{b}");
    }

    #[tokio::test]
    async fn a_tenant_key_is_refused_with_403() {
        let api = test_api().await;
        let tenant_admin = api.key("acme", &["admin"]).await;
        let (s, b) = api.call_as(&tenant_admin, Method::GET, "/v1/audit").await;
        assert_eq!((s, b["error"]["code"].as_str()), (403, Some("forbidden")), "{b}");
    }

    #[tokio::test]
    async fn a_since_that_is_not_a_time_is_refused_with_400() {
        let api = test_api().await;
        for bad in ["yesterday", "2026-13-01T00:00:00Z", ""] {
            let (s, b) = api.get(&format!("/v1/audit?since={bad}")).await;
            assert_eq!(
                (s, b["error"]["code"].as_str()),
                (400, Some("invalid_since")),
                "{bad}: {b}"
            );
        }
        let (s, b) = api.get("/v1/audit?limit=3").await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (400, Some("invalid_query")),
            "{b}"
        );
    }
}
