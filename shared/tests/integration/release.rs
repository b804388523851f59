use std::time::Duration;

use jobline::domain::{JobStatus, NewJob};
use jobline::store::{ClaimByIdOutcome, HeartbeatOutcome};
use serde_json::json;

use crate::support::test_db;

const TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_silent_claim_goes_back_to_pending_with_heartbeat_timeout() {
    let db = test_db().await;
    let job = db.noop_for("acme").await;
    let ClaimByIdOutcome::Claimed(claim) = db.store.claim_by_id("doomed", job.id).await.expect("claim")
    else {
        panic!("claimable")
    };
    db.advance(59);
    assert_eq!(
        db.store.release_stale(TIMEOUT, 100).await.expect("sweep").total(),
        0,
        "not stale yet"
    );
    db.advance(2);
    let report = db.store.release_stale(TIMEOUT, 100).await.expect("sweep");
    assert_eq!(report.requeued, [job.id]);
    let job = db.store.get_any(job.id).await.expect("get").expect("found");
    assert_eq!(job.status, JobStatus::Pending);
    assert_eq!(job.error_code.as_deref(), Some("HEARTBEAT_TIMEOUT"));
    let reason = job.failure_reason.as_deref().unwrap_or_default();
    assert!(reason.starts_with("no heartbeat since"), "{reason}");
    assert!(
        !reason.contains("doomed"),
        "tenants read this: no worker name in it"
    );
    let worker: String = db
        .client
        .query_one(
            "SELECT detail->>'worker' FROM job_events WHERE job_id = $1 AND event = 'heartbeat_released'",
            &[&job.id],
        )
        .await
        .expect("event")
        .get(0);
    assert!(
        worker.contains("doomed"),
        "the event keeps it for operators: {worker}"
    );
    assert_eq!(job.locked_by, None);
    assert_eq!(
        db.events(job.id).await,
        ["created", "claimed", "heartbeat_released"]
    );
    // The dead worker wakes up: its claim is gone and its result is ignored.
    assert_eq!(
        db.store.heartbeat(claim.token(), None, None).await.expect("beat"),
        HeartbeatOutcome::Lost
    );
    assert!(
        db.store
            .complete(&claim, Some(json!("zombie")), None)
            .await
            .expect("complete")
            .is_stale()
    );
    // Another worker finishes it, exactly once.
    let ClaimByIdOutcome::Claimed(fresh) = db.store.claim_by_id("healthy", job.id).await.expect("claim")
    else {
        panic!("claimable again")
    };
    assert_eq!(fresh.job.attempts, 2);
    assert!(
        !db.store
            .complete(&fresh, None, None)
            .await
            .expect("complete")
            .is_stale()
    );
}

#[tokio::test]
async fn heartbeats_keep_a_long_job_from_being_released() {
    let db = test_db().await;
    let job = db.noop_for("acme").await;
    let ClaimByIdOutcome::Claimed(claim) = db.store.claim_by_id("w", job.id).await.expect("claim") else {
        panic!("claimable")
    };
    for _ in 0..5 {
        db.advance(30);
        assert_eq!(
            db.store.heartbeat(claim.token(), None, None).await.expect("beat"),
            HeartbeatOutcome::Alive
        );
        assert_eq!(
            db.store.release_stale(TIMEOUT, 100).await.expect("sweep").total(),
            0
        );
    }
}

#[tokio::test]
async fn a_silent_claim_on_its_last_attempt_fails_for_good() {
    let db = test_db().await;
    let job = db
        .store
        .create("acme", "test", NewJob::new("noop", json!({})).max_attempts(1))
        .await
        .expect("create")
        .job;
    db.store.claim_by_id("w", job.id).await.expect("claim");
    db.advance(120);
    let report = db.store.release_stale(TIMEOUT, 100).await.expect("sweep");
    assert_eq!(report.failed, [job.id]);
    let job = db.store.get_any(job.id).await.expect("get").expect("found");
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.error_code.as_deref(), Some("HEARTBEAT_TIMEOUT"));
    assert!(job.completed_at.is_some());
}

#[tokio::test]
async fn sweepers_racing_each_other_release_each_job_once() {
    let db = test_db().await;
    let news: Vec<NewJob> = (0..200).map(|i| NewJob::new("noop", json!({ "i": i }))).collect();
    db.store.create_many("acme", "test", news).await.expect("create");
    assert_eq!(db.store.claim("w", 200, None).await.expect("claim").len(), 200);
    db.advance(600);
    let sweeps = (0..4).map(|_| {
        let store = db.store.clone();
        tokio::spawn(async move {
            let mut total = 0;
            loop {
                let n = store.release_stale(TIMEOUT, 25).await.expect("sweep").total();
                if n == 0 {
                    return total;
                }
                total += n;
            }
        })
    });
    let mut released = 0;
    for s in sweeps {
        released += s.await.expect("task");
    }
    assert_eq!(released, 200);
    assert_eq!(
        db.count("SELECT count(*) FROM job_events WHERE event = 'heartbeat_released'")
            .await,
        200
    );
    assert_eq!(
        db.count("SELECT count(*) FROM jobs WHERE status = 'pending'")
            .await,
        200
    );
}

#[tokio::test]
async fn a_worker_that_dies_holding_hundreds_of_claims_has_every_one_released() {
    let db = test_db().await;
    for tenant in ["acme", "globex", "initech"] {
        let news: Vec<NewJob> = (0..120).map(|_| NewJob::new("noop", json!({}))).collect();
        db.store.create_many(tenant, "test", news).await.expect("create");
    }
    let held = db.store.claim("doomed", 1000, None).await.expect("claim");
    assert_eq!(held.len(), 360, "one statement claims them all");
    db.advance(61);
    let mut released = Vec::new();
    loop {
        let pass = db.store.release_stale(TIMEOUT, 100).await.expect("sweep");
        if pass.total() == 0 {
            break;
        }
        assert!(pass.total() <= 100, "a pass is bounded: {}", pass.total());
        released.extend(pass.requeued);
    }
    released.sort();
    released.dedup();
    assert_eq!(released.len(), 360, "every claim of every tenant, once");
    let left: i64 = db
        .client
        .query_one("SELECT count(*) FROM jobs WHERE status <> 'pending'", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(left, 0);
}

#[tokio::test]
async fn claims_handed_back_unstarted_are_pending_again_with_their_attempt_unspent() {
    let db = test_db().await;
    let news: Vec<NewJob> = (0..4).map(|_| NewJob::new("noop", json!({}))).collect();
    db.store.create_many("acme", "test", news).await.expect("create");
    let claims = db.store.claim("queued", 4, None).await.expect("claim");
    let tokens: Vec<_> = claims.iter().map(|c| c.token()).collect();
    // One was cancelled while it waited, one is not this worker's to give.
    db.store
        .cancel(Some("acme"), tokens[0].job_id, "acme-user")
        .await
        .expect("cancel");
    assert_eq!(
        db.store
            .hand_back("someone-else", &tokens[1..], true)
            .await
            .expect("hand back"),
        0,
        "only the holder hands a claim back"
    );
    assert_eq!(
        db.store
            .hand_back("queued", &tokens, true)
            .await
            .expect("hand back"),
        3
    );
    assert_eq!(db.job(tokens[0].job_id).await.status, JobStatus::Cancelled);
    for t in &tokens[1..] {
        let job = db.job(t.job_id).await;
        assert_eq!(
            (job.status, job.attempts, job.locked_by),
            (JobStatus::Pending, 0, None)
        );
        assert_eq!(db.events(t.job_id).await, ["created", "claimed", "handed_back"]);
    }
    let outbox: i64 = db
        .client
        .query_one(
            "SELECT count(*) FROM outbox WHERE job_id = ANY($1) AND status = 'pending'",
            &[&tokens[1..].iter().map(|t| t.job_id).collect::<Vec<_>>()],
        )
        .await
        .expect("count")
        .get(0);
    assert!(outbox >= 3, "each is published again: {outbox}");
    // Claimable at once, by anyone, as attempt 1 again.
    let again = db.store.claim("next", 10, None).await.expect("claim");
    assert_eq!(again.len(), 3);
    assert!(again.iter().all(|c| c.job.attempts == 1));
    // The same attempt number is another worker's now: not the old holder's.
    assert_eq!(
        db.store
            .hand_back("queued", &tokens[1..], true)
            .await
            .expect("hand back"),
        0
    );
}
