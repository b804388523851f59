use std::collections::HashMap;

use jobline::domain::job::Schedule;
use jobline::domain::{JobStatus, NewJob, Priority};
use jobline::store::ClaimByIdOutcome;
use serde_json::json;

use crate::support::test_db;

#[tokio::test]
async fn claims_take_priority_first_then_due_time_then_creation_order() {
    let db = test_db().await;
    let mk = |name: &str, p: i64, delay: u32| {
        NewJob::new("noop", json!({ "name": name }))
            .priority(Priority::new(p).expect("valid"))
            .schedule(Schedule::AfterSeconds(delay))
    };
    // Created in this order, all due once the clock has moved 10 s.
    for (name, p, delay) in [
        ("p2-early", 2, 0),
        ("p3", 3, 0),
        ("p0-late", 0, 5),
        ("p0-early", 0, 1),
        ("p2-late", 2, 0),
    ] {
        db.job_for("acme", mk(name, p, delay)).await;
    }
    db.advance(10);
    let claims = db.store.claim("w1", 10, None).await.expect("claim");
    let order: Vec<String> = claims
        .iter()
        .map(|c| c.job.payload["name"].as_str().expect("name").to_owned())
        .collect();
    assert_eq!(order, ["p0-early", "p0-late", "p2-early", "p2-late", "p3"]);
}

#[tokio::test]
async fn a_claim_marks_the_job_processing_and_records_who_and_when() {
    let db = test_db().await;
    let job = db.noop_for("acme").await;
    db.advance(3);
    let claims = db.store.claim("worker-a", 5, None).await.expect("claim");
    assert_eq!(claims.len(), 1);
    let claimed = &claims[0].job;
    assert_eq!(claimed.id, job.id);
    assert_eq!(claimed.status, JobStatus::Processing);
    assert_eq!(claimed.attempts, 1);
    assert_eq!(claimed.locked_by.as_deref(), Some("worker-a"));
    assert_eq!(claimed.heartbeat_at, Some(db.now()));
    assert_eq!(claimed.started_at, Some(db.now()));
    assert_eq!(claims[0].token().attempt, 1);
    assert!(
        db.store
            .claim("worker-b", 5, None)
            .await
            .expect("claim")
            .is_empty(),
        "nothing left"
    );
}

#[tokio::test]
async fn jobs_that_are_not_due_wait_for_the_clock() {
    let db = test_db().await;
    db.job_for(
        "acme",
        NewJob::new("noop", json!({})).schedule(Schedule::AfterSeconds(60)),
    )
    .await;
    assert!(db.store.claim("w", 10, None).await.expect("claim").is_empty());
    db.advance(59);
    assert!(db.store.claim("w", 10, None).await.expect("claim").is_empty());
    db.advance(1);
    assert_eq!(db.store.claim("w", 10, None).await.expect("claim").len(), 1);
}

#[tokio::test]
async fn a_worker_can_ask_for_some_types_only() {
    let db = test_db().await;
    db.job_for("acme", NewJob::new("email", json!({}))).await;
    db.job_for("acme", NewJob::new("render", json!({}))).await;
    let claims = db
        .store
        .claim("w", 10, Some(&["render".to_owned()]))
        .await
        .expect("claim");
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0].job.job_type, "render");
}

#[tokio::test]
async fn eight_concurrent_claimers_take_a_thousand_jobs_exactly_once() {
    let db = test_db().await;
    let news: Vec<NewJob> = (0..1000)
        .map(|i| NewJob::new("noop", json!({ "i": i })))
        .collect();
    for chunk in news.chunks(250) {
        db.store
            .create_many("acme", "test", chunk.to_vec())
            .await
            .expect("create");
    }
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = db.store.clone();
        tasks.push(tokio::spawn(async move {
            let worker = format!("w{w}");
            let mut mine = Vec::new();
            loop {
                let batch = store.claim(&worker, 7, None).await.expect("claim");
                if batch.is_empty() {
                    return mine;
                }
                mine.extend(batch.into_iter().map(|c| c.job.id));
            }
        }));
    }
    let mut times_claimed: HashMap<uuid::Uuid, usize> = HashMap::new();
    let mut workers_with_work = 0;
    for t in tasks {
        let mine = t.await.expect("task");
        workers_with_work += usize::from(!mine.is_empty());
        for id in mine {
            *times_claimed.entry(id).or_default() += 1;
        }
    }
    assert_eq!(times_claimed.len(), 1000, "every job claimed");
    assert!(times_claimed.values().all(|&n| n == 1), "no job claimed twice");
    assert!(workers_with_work > 1, "the claimers really ran side by side");
    assert_eq!(
        db.count("SELECT count(*) FROM jobs WHERE status = 'processing' AND attempts = 1")
            .await,
        1000
    );
    assert_eq!(
        db.count("SELECT count(*) FROM job_events WHERE event = 'claimed'")
            .await,
        1000
    );
}

#[tokio::test]
async fn claim_by_id_takes_a_due_pending_job() {
    let db = test_db().await;
    let job = db.noop_for("acme").await;
    match db.store.claim_by_id("w1", job.id).await.expect("claim") {
        ClaimByIdOutcome::Claimed(c) => {
            assert_eq!(c.job.status, JobStatus::Processing);
            assert_eq!(c.job.attempts, 1);
        }
        other => panic!("expected a claim, got {other:?}"),
    }
}

#[tokio::test]
async fn claim_by_id_says_why_a_job_is_not_claimable() {
    let db = test_db().await;
    // Not found.
    let missing = uuid::Uuid::now_v7();
    assert!(matches!(
        db.store.claim_by_id("w", missing).await.expect("claim"),
        ClaimByIdOutcome::NotFound
    ));
    // Not due until T.
    let later = db
        .job_for(
            "acme",
            NewJob::new("noop", json!({})).schedule(Schedule::AfterSeconds(90)),
        )
        .await;
    match db.store.claim_by_id("w", later.id).await.expect("claim") {
        ClaimByIdOutcome::NotDue(at) => assert_eq!(at, later.run_after),
        other => panic!("expected not due, got {other:?}"),
    }
    // Claimed elsewhere.
    let busy = db.noop_for("acme").await;
    assert!(matches!(
        db.store.claim_by_id("w1", busy.id).await.expect("claim"),
        ClaimByIdOutcome::Claimed(_)
    ));
    match db.store.claim_by_id("w2", busy.id).await.expect("claim") {
        ClaimByIdOutcome::ClaimedElsewhere { by } => assert_eq!(by.as_deref(), Some("w1")),
        other => panic!("expected claimed elsewhere, got {other:?}"),
    }
    // Cancelled, and done.
    let cancelled = db.noop_for("acme").await;
    db.store
        .cancel(Some("acme"), cancelled.id, "test")
        .await
        .expect("cancel");
    assert!(matches!(
        db.store.claim_by_id("w", cancelled.id).await.expect("claim"),
        ClaimByIdOutcome::Done(JobStatus::Cancelled)
    ));
    let done = db.noop_for("acme").await;
    let ClaimByIdOutcome::Claimed(c) = db.store.claim_by_id("w", done.id).await.expect("claim") else {
        panic!("claimable")
    };
    db.store.complete(&c, None, None).await.expect("complete");
    assert!(matches!(
        db.store.claim_by_id("w", done.id).await.expect("claim"),
        ClaimByIdOutcome::Done(JobStatus::Completed)
    ));
    assert_eq!(
        db.events(done.id).await,
        ["created", "claimed", "completed"],
        "refused claims write nothing"
    );
}

#[tokio::test]
async fn claim_by_id_leaves_other_types_to_their_workers() {
    let db = test_db().await;
    let job = db.job_for("acme", NewJob::new("render", json!({}))).await;
    let mine = ["email".to_owned()];
    match db
        .store
        .claim_by_id_of_types("w", job.id, Some(&mine))
        .await
        .expect("claim")
    {
        ClaimByIdOutcome::OtherType(t) => assert_eq!(t, "render"),
        other => panic!("expected another type, got {other:?}"),
    }
    assert_eq!(db.events(job.id).await, ["created"], "nothing claimed");
    let theirs = ["render".to_owned()];
    assert!(matches!(
        db.store
            .claim_by_id_of_types("w2", job.id, Some(&theirs))
            .await
            .expect("claim"),
        ClaimByIdOutcome::Claimed(_)
    ));
}

#[tokio::test]
async fn a_job_whose_row_another_transaction_references_is_still_claimed() {
    // An insert referencing the job (an outbox row's foreign key; the
    // `published` event had one until migration 0007) holds a KEY SHARE lock
    // on the job row until its transaction commits. A claim that locked FOR
    // UPDATE SKIP LOCKED passed over the job there (seen as ~3% of
    // enqueue-to-start latencies one interval late in the bench); the claim
    // only needs NO KEY UPDATE.
    let db = test_db().await;
    let job = db.noop_for(jobline::testing::TENANT).await;
    let mut other = jobline::testing::connect_raw(&db.url).await;
    let tx = other.transaction().await.expect("begin");
    tx.execute(
        "INSERT INTO outbox (job_id, queue, message) VALUES ($1, 'q', '{}')",
        &[&job.id],
    )
    .await
    .expect("an outbox row");

    let claims = db.store.claim("w", 10, None).await.expect("claim");
    assert_eq!(
        claims.iter().map(|c| c.job.id).collect::<Vec<_>>(),
        [job.id],
        "the referenced, pending job is claimed"
    );

    // The sweeper's release skips it no more than the claim does (the same
    // event still being written).
    db.advance(3600);
    let released = db
        .store
        .release_stale(std::time::Duration::from_secs(60), 10)
        .await
        .expect("release");
    assert_eq!(released.requeued.len(), 1, "the silent claim is released");
    tx.commit().await.expect("commit");
}

#[tokio::test]
async fn claims_beyond_the_free_slots_spare_a_jobs_last_attempt() {
    let db = test_db().await;
    let mut news = Vec::new();
    for _ in 0..4 {
        let mut last = NewJob::new("noop", json!({}));
        last.max_attempts = Some(1);
        news.push(last);
    }
    news.extend((0..4).map(|_| NewJob::new("noop", json!({}))));
    db.store.create_many("acme", "test", news).await.expect("create");
    // One free slot, seven more wanted ahead: the slot may take a job's only
    // attempt, the queue only jobs that keep one after this.
    let claims = db.store.claim_ahead("w", 8, 1, None).await.expect("claim");
    let last_attempts = claims.iter().filter(|c| c.job.max_attempts == 1).count();
    assert_eq!(claims.len(), 5, "1 for the slot and the 4 with attempts to spare");
    assert_eq!(last_attempts, 1, "only the free slot took a last attempt");
    let rest = db.store.claim("w", 8, None).await.expect("claim");
    assert_eq!(rest.len(), 3, "the others are claimed for free slots later");
}
