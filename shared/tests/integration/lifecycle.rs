use jobline::StoreError;
use jobline::domain::{JobStatus, NewJob};
use jobline::store::{
    Claim, ClaimByIdOutcome, Completion, FailOutcome, HeartbeatOutcome, JobFailure, Settled,
};
use serde_json::json;

use crate::support::{TestDb, test_db};

async fn claimed(db: &TestDb, max_attempts: i32) -> Claim {
    let job = db
        .store
        .create(
            "acme",
            "test",
            NewJob::new("noop", json!({})).max_attempts(max_attempts),
        )
        .await
        .expect("create")
        .job;
    reclaim(db, job.id).await
}

async fn reclaim(db: &TestDb, id: uuid::Uuid) -> Claim {
    match db.store.claim_by_id("w1", id).await.expect("claim") {
        ClaimByIdOutcome::Claimed(c) => *c,
        other => panic!("expected a claim, got {other:?}"),
    }
}

#[tokio::test]
async fn a_heartbeat_renews_the_claim_and_records_stage_and_progress() {
    let db = test_db().await;
    let claim = claimed(&db, 3).await;
    db.advance(5);
    let beat = db
        .store
        .heartbeat(claim.token(), Some("rendering"), Some(40.0))
        .await
        .expect("beat");
    assert_eq!(beat, HeartbeatOutcome::Alive);
    let job = db.store.get_any(claim.job.id).await.expect("get").expect("found");
    assert_eq!(job.heartbeat_at, Some(db.now()));
    assert_eq!(job.stage.as_deref(), Some("rendering"));
    assert_eq!(job.progress, Some(40.0));
    // Without stage or progress, the last ones stay.
    db.store.heartbeat(claim.token(), None, None).await.expect("beat");
    let job = db.store.get_any(claim.job.id).await.expect("get").expect("found");
    assert_eq!(job.stage.as_deref(), Some("rendering"));
}

#[tokio::test]
async fn completing_stores_the_result_and_releases_the_claim() {
    let db = test_db().await;
    let claim = claimed(&db, 3).await;
    db.advance(2);
    let done = match db
        .store
        .complete(
            &claim,
            Some(json!({"script": "once upon a time"})),
            Some("s3://bucket/key"),
        )
        .await
        .expect("complete")
    {
        Settled::Applied(job) => job,
        Settled::Stale => panic!("the claim is current"),
    };
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!(done.result, Some(json!({"script": "once upon a time"})));
    assert_eq!(done.result_uri.as_deref(), Some("s3://bucket/key"));
    assert_eq!(done.completed_at, Some(db.now()));
    assert_eq!(done.locked_by, None);
    assert_eq!(done.heartbeat_at, None);
}

#[tokio::test]
async fn completions_of_many_claims_apply_together_each_through_its_own_claim() {
    let db = test_db().await;
    let mut claims = Vec::new();
    for _ in 0..5 {
        claims.push(claimed(&db, 3).await);
    }
    // The third claim is no longer current: released, and claimed again.
    db.store
        .fail(&claims[2], &JobFailure::retryable("X", "released"))
        .await
        .expect("fail");
    db.advance(3600);
    let newer = reclaim(&db, claims[2].job.id).await;
    let completions: Vec<Completion> = claims
        .iter()
        .enumerate()
        .map(|(i, c)| Completion {
            token: c.token(),
            result: Some(json!({ "n": i })),
            result_uri: None,
            worker: c.worker.clone(),
        })
        .collect();
    let answers = db.store.complete_many(&completions).await.expect("complete_many");
    assert_eq!(answers.len(), 5);
    for (i, answer) in answers.iter().enumerate() {
        match (i, answer) {
            (2, Settled::Stale) => {}
            (2, Settled::Applied(_)) => panic!("an outdated claim completed the job"),
            (_, Settled::Applied(job)) => {
                assert_eq!(job.id, claims[i].job.id, "answers come in input order");
                assert_eq!(job.result, Some(json!({ "n": i })));
            }
            (_, Settled::Stale) => panic!("claim {i} is current"),
        }
    }
    assert_eq!(
        db.count("SELECT count(*) FROM job_events WHERE event = 'completed'")
            .await,
        4
    );
    let still = db.store.get_any(newer.job.id).await.expect("get").expect("found");
    assert_eq!(
        still.status,
        JobStatus::Processing,
        "the newer claim still holds it"
    );
    assert!(db.store.complete_many(&[]).await.expect("nothing").is_empty());
}

#[tokio::test]
async fn concurrent_completions_each_answer_for_their_own_job() {
    let db = test_db().await;
    let mut claims = Vec::new();
    for _ in 0..40 {
        claims.push(claimed(&db, 3).await);
    }
    let answers = futures::future::join_all(claims.iter().map(|c| {
        let store = db.store.clone();
        async move { store.complete(c, Some(json!({ "id": c.job.id })), None).await }
    }))
    .await;
    for (claim, answer) in claims.iter().zip(answers) {
        match answer.expect("complete") {
            Settled::Applied(job) => {
                assert_eq!(job.id, claim.job.id);
                assert_eq!(job.result, Some(json!({ "id": claim.job.id })));
            }
            Settled::Stale => panic!("every claim is current"),
        }
    }
    assert_eq!(
        db.count("SELECT count(*) FROM jobs WHERE status = 'completed'")
            .await,
        40
    );
    // Completing again changes nothing and says so.
    assert!(
        db.store
            .complete(&claims[0], None, None)
            .await
            .expect("again")
            .is_stale()
    );
}

#[tokio::test]
async fn a_job_completes_at_most_once() {
    let db = test_db().await;
    let claim = claimed(&db, 3).await;
    assert!(
        !db.store
            .complete(&claim, None, None)
            .await
            .expect("first")
            .is_stale()
    );
    assert!(
        db.store
            .complete(&claim, Some(json!(2)), None)
            .await
            .expect("second")
            .is_stale()
    );
    assert!(
        db.store
            .fail(&claim, &JobFailure::retryable("X", "late"))
            .await
            .expect("fail")
            .is_stale()
    );
    let job = db.store.get_any(claim.job.id).await.expect("get").expect("found");
    assert_eq!(job.status, JobStatus::Completed);
    assert_eq!(job.result, None, "the first completion's result stays");
    assert_eq!(
        db.count("SELECT count(*) FROM job_events WHERE event = 'completed'")
            .await,
        1
    );
}

#[tokio::test]
async fn a_retryable_failure_goes_back_to_pending_after_backoff() {
    let db = test_db().await;
    let claim = claimed(&db, 3).await;
    let outcome = db
        .store
        .fail_with_jitter(&claim, &JobFailure::retryable("HTTP_503", "upstream busy"), 0.0)
        .await
        .expect("fail");
    let Settled::Applied(FailOutcome::Retrying(job)) = outcome else {
        panic!("expected a retry, got {outcome:?}")
    };
    assert_eq!(job.status, JobStatus::Pending);
    // attempt 1 with base 2 s and jitter 0: half of 2 s.
    assert_eq!(job.run_after, db.now() + chrono::Duration::seconds(1));
    assert_eq!(job.error_code.as_deref(), Some("HTTP_503"));
    assert_eq!(job.failure_reason.as_deref(), Some("upstream busy"));
    assert_eq!(job.completed_at, None);
    assert_eq!(job.locked_by, None);
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM outbox WHERE job_id = '{}'",
            job.id
        ))
        .await,
        1,
        "the retry is woken by the broker's redelivery, not a new message"
    );
    // Not claimable until the backoff has passed.
    assert!(matches!(
        db.store.claim_by_id("w1", job.id).await.expect("claim"),
        ClaimByIdOutcome::NotDue(_)
    ));
    db.advance(1);
    let again = reclaim(&db, job.id).await;
    assert_eq!(again.job.attempts, 2);
}

#[tokio::test]
async fn attempts_spent_or_a_permanent_error_end_in_failed() {
    let db = test_db().await;
    // Two attempts, both retryable failures.
    let mut claim = claimed(&db, 2).await;
    let first = db
        .store
        .fail_with_jitter(&claim, &JobFailure::retryable("E", "one"), 0.0)
        .await
        .expect("fail");
    assert!(matches!(first, Settled::Applied(FailOutcome::Retrying(_))));
    db.advance(60);
    claim = reclaim(&db, claim.job.id).await;
    let last = db
        .store
        .fail_with_jitter(&claim, &JobFailure::retryable("E", "two"), 0.0)
        .await
        .expect("fail");
    let Settled::Applied(FailOutcome::Failed(job)) = last else {
        panic!("attempts are spent: {last:?}")
    };
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.attempts, 2);
    assert_eq!(job.completed_at, Some(db.now()));
    assert_eq!(
        db.events(job.id).await,
        ["created", "claimed", "retry_scheduled", "claimed", "failed"]
    );

    // A permanent error on the first of five attempts.
    let claim = claimed(&db, 5).await;
    let outcome = db
        .store
        .fail(&claim, &JobFailure::permanent("HTTP_400", "bad prompt"))
        .await
        .expect("fail");
    let Settled::Applied(FailOutcome::Failed(job)) = outcome else {
        panic!("permanent errors do not retry: {outcome:?}")
    };
    assert_eq!(job.attempts, 1);
    assert_eq!(job.error_code.as_deref(), Some("HTTP_400"));
}

#[tokio::test]
async fn cancelling_a_pending_job_ends_it() {
    let db = test_db().await;
    let job = db.noop_for("acme").await;
    let cancelled = db
        .store
        .cancel(Some("acme"), job.id, "api")
        .await
        .expect("cancel");
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    assert_eq!(cancelled.completed_at, Some(db.now()));
    assert!(db.store.claim("w", 10, None).await.expect("claim").is_empty());
}

#[tokio::test]
async fn cancelling_a_running_job_stops_its_worker_and_fences_it_off() {
    let db = test_db().await;
    let claim = claimed(&db, 3).await;
    db.store
        .cancel(Some("acme"), claim.job.id, "api")
        .await
        .expect("cancel");
    let beat = db
        .store
        .heartbeat(claim.token(), Some("late"), None)
        .await
        .expect("beat");
    assert_eq!(beat, HeartbeatOutcome::Cancelled);
    assert!(
        db.store
            .complete(&claim, Some(json!("late")), None)
            .await
            .expect("complete")
            .is_stale()
    );
    let job = db.store.get_any(claim.job.id).await.expect("get").expect("found");
    assert_eq!(job.status, JobStatus::Cancelled);
    assert_eq!(job.result, None);
    assert_eq!(db.events(job.id).await, ["created", "claimed", "cancelled"]);
}

#[tokio::test]
async fn finished_jobs_cannot_be_cancelled_and_strangers_cannot_see_them() {
    let db = test_db().await;
    let claim = claimed(&db, 3).await;
    db.store.complete(&claim, None, None).await.expect("complete");
    match db
        .store
        .cancel(Some("acme"), claim.job.id, "api")
        .await
        .unwrap_err()
    {
        StoreError::InvalidTransition { status, action, .. } => {
            assert_eq!(status, JobStatus::Completed);
            assert_eq!(action, "cancel");
        }
        other => panic!("expected an invalid transition, got {other}"),
    }
    assert!(matches!(
        db.store
            .cancel(Some("globex"), claim.job.id, "api")
            .await
            .unwrap_err(),
        StoreError::NotFound(_)
    ));
}

#[tokio::test]
async fn an_operator_retry_gives_a_failed_job_fresh_attempts_and_a_new_message() {
    let db = test_db().await;
    let claim = claimed(&db, 1).await;
    db.store
        .fail(&claim, &JobFailure::retryable("E", "boom"))
        .await
        .expect("fail");
    let retried = db
        .store
        .retry(Some("acme"), claim.job.id, "operator", Some(3))
        .await
        .expect("retry")
        .job;
    assert_eq!(retried.status, JobStatus::Pending);
    assert_eq!(
        retried.attempts, 1,
        "attempts never go back: they fence old claims"
    );
    assert_eq!(retried.max_attempts, 4);
    assert_eq!(retried.completed_at, None);
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM outbox WHERE job_id = '{}'",
            retried.id
        ))
        .await,
        2
    );
    // The old claim stays fenced off after the retry.
    assert!(
        db.store
            .complete(&claim, None, None)
            .await
            .expect("complete")
            .is_stale()
    );
    let next = reclaim(&db, retried.id).await;
    assert_eq!(next.job.attempts, 2);
    assert!(
        !db.store
            .complete(&next, None, None)
            .await
            .expect("complete")
            .is_stale()
    );
    assert_eq!(
        db.events(retried.id).await,
        ["created", "claimed", "failed", "retried", "claimed", "completed"]
    );
}

#[tokio::test]
async fn only_failed_or_cancelled_jobs_can_be_retried() {
    let db = test_db().await;
    let job = db.noop_for("acme").await;
    assert!(matches!(
        db.store
            .retry(Some("acme"), job.id, "op", None)
            .await
            .unwrap_err(),
        StoreError::InvalidTransition {
            status: JobStatus::Pending,
            ..
        }
    ));
    db.store.cancel(Some("acme"), job.id, "op").await.expect("cancel");
    let back = db
        .store
        .retry(Some("acme"), job.id, "op", None)
        .await
        .expect("retry cancelled")
        .job;
    assert_eq!(back.status, JobStatus::Pending);
}

#[tokio::test]
async fn a_batch_with_an_outdated_and_the_current_claim_of_one_job_applies_the_current_one() {
    let db = test_db().await;
    let first = claimed(&db, 3).await;
    db.store
        .fail_with_jitter(&first, &JobFailure::retryable("X", "once"), 0.0)
        .await
        .expect("fail");
    db.advance(3600);
    let second = reclaim(&db, first.job.id).await;
    assert_eq!(second.job.attempts, 2);
    let completion = |c: &Claim| Completion {
        token: c.token(),
        result: Some(json!({"by": c.job.attempts})),
        result_uri: None,
        worker: c.worker.clone(),
    };
    let answers = db
        .store
        .complete_many(&[completion(&first), completion(&second)])
        .await
        .expect("complete");
    assert!(matches!(answers[0], Settled::Stale), "{:?}", answers[0]);
    assert!(
        matches!(&answers[1], Settled::Applied(job) if job.status == JobStatus::Completed),
        "the current claim applied and says so: {:?}",
        answers[1]
    );
}

/// With the database out of reach, a failed shared completion is not
/// retried row by row (each row would wait the pool's timeout in turn).
#[tokio::test]
async fn completions_fail_together_at_once_when_the_database_is_unavailable() {
    let db = test_db().await;
    let mut claims = Vec::new();
    for _ in 0..16 {
        claims.push(claimed(&db, 3).await);
    }
    // A server that accepts connections and never answers them.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("postgres://postgres@{}/x", silent.local_addr().expect("addr"));
    let mut options = jobline::store::pool::PoolOptions::new(url, 4);
    options.wait_timeout = std::time::Duration::from_millis(300);
    let down = jobline::Store::new(
        jobline::store::pool::build(&options).expect("pool"),
        jobline::testing::test_settings(),
    );
    let started = std::time::Instant::now();
    let answers = futures::future::join_all(claims.iter().map(|c| down.complete(c, None, None))).await;
    let took = started.elapsed();
    assert!(
        answers
            .iter()
            .all(|a| matches!(a, Err(StoreError::Unavailable(_)))),
        "{answers:?}"
    );
    // Row by row this took 15 x 300 ms after the shared statement failed.
    assert!(took < std::time::Duration::from_millis(2500), "took {took:?}");
    drop(silent);
}
