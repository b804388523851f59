use jobline::StoreError;
use jobline::domain::job::Schedule;
use jobline::domain::{JobStatus, NewJob, Priority};
use serde_json::json;

use crate::support::test_db;

#[tokio::test]
async fn a_created_job_is_pending_with_its_outbox_row_and_created_event() {
    let db = test_db().await;
    let created = db
        .store
        .create(
            "acme",
            "test",
            NewJob::new("noop", json!({"n": 1})).correlation_id("story-1"),
        )
        .await
        .expect("create");
    assert!(!created.already_existed);
    let job = created.job;
    assert_eq!(job.status, JobStatus::Pending);
    assert_eq!(job.attempts, 0);
    assert_eq!(job.max_attempts, 5, "the deployment default");
    assert_eq!(job.priority, 2);
    assert_eq!(job.correlation_id.as_deref(), Some("story-1"));
    assert_eq!(job.run_after, db.now());
    assert_eq!(db.events(job.id).await, ["created"]);
    let message: serde_json::Value = db
        .client
        .query_one(
            "SELECT message FROM outbox WHERE job_id = $1 AND status = 'pending'",
            &[&job.id],
        )
        .await
        .expect("one outbox row")
        .get(0);
    assert_eq!(message["jobId"], json!(job.id.to_string()));
    assert!(message["timestamp"].as_i64().expect("ms timestamp") > 1_600_000_000_000);
}

#[tokio::test]
async fn the_same_key_and_body_returns_the_existing_job() {
    let db = test_db().await;
    let new = NewJob::new("noop", json!({"a": 1})).idempotency_key("order-7");
    let first = db.store.create("acme", "test", new.clone()).await.expect("first");
    let again = db.store.create("acme", "test", new).await.expect("again");
    assert!(again.already_existed);
    assert_eq!(again.job.id, first.job.id);
    assert_eq!(db.count("SELECT count(*) FROM jobs").await, 1);
    assert_eq!(db.count("SELECT count(*) FROM outbox").await, 1);
}

#[tokio::test]
async fn the_same_key_with_another_body_is_a_conflict_and_writes_nothing() {
    let db = test_db().await;
    let first = db
        .store
        .create(
            "acme",
            "test",
            NewJob::new("noop", json!({"a": 1})).idempotency_key("k"),
        )
        .await
        .expect("first");
    let err = db
        .store
        .create(
            "acme",
            "test",
            NewJob::new("noop", json!({"a": 2})).idempotency_key("k"),
        )
        .await
        .unwrap_err();
    match err {
        StoreError::IdempotencyConflict { key, existing } => {
            assert_eq!(key, "k");
            assert_eq!(existing, first.job.id);
        }
        other => panic!("expected a conflict, got {other}"),
    }
    assert_eq!(db.count("SELECT count(*) FROM jobs").await, 1);
}

#[tokio::test]
async fn idempotency_keys_are_per_tenant() {
    let db = test_db().await;
    let new = NewJob::new("noop", json!({})).idempotency_key("shared-key");
    let a = db.store.create("acme", "test", new.clone()).await.expect("acme");
    let b = db.store.create("globex", "test", new).await.expect("globex");
    assert!(!b.already_existed);
    assert_ne!(a.job.id, b.job.id);
}

#[tokio::test]
async fn twenty_concurrent_creates_with_one_key_make_exactly_one_job() {
    let db = test_db().await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let store = db.store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .create(
                    "acme",
                    "test",
                    NewJob::new("noop", json!({"same": true})).idempotency_key("race"),
                )
                .await
        }));
    }
    let mut ids = std::collections::HashSet::new();
    let mut fresh = 0;
    for t in tasks {
        let created = t.await.expect("task").expect("create");
        fresh += usize::from(!created.already_existed);
        ids.insert(created.job.id);
    }
    assert_eq!(fresh, 1, "exactly one request created the job");
    assert_eq!(ids.len(), 1, "all twenty answered with the same job");
    assert_eq!(db.count("SELECT count(*) FROM jobs").await, 1);
    assert_eq!(db.count("SELECT count(*) FROM job_events").await, 1);
}

#[tokio::test]
async fn create_many_answers_in_order_and_writes_every_row() {
    let db = test_db().await;
    let news: Vec<NewJob> = (0..50).map(|i| NewJob::new("noop", json!({"i": i}))).collect();
    let created = db
        .store
        .create_many("acme", "test", news)
        .await
        .expect("create many");
    assert_eq!(created.len(), 50);
    for (i, c) in created.iter().enumerate() {
        assert_eq!(c.job.payload, json!({"i": i}));
    }
    assert_eq!(db.count("SELECT count(*) FROM jobs").await, 50);
    assert_eq!(db.count("SELECT count(*) FROM outbox").await, 50);
    assert_eq!(
        db.count("SELECT count(*) FROM job_events WHERE event = 'created'")
            .await,
        50
    );
}

#[tokio::test]
async fn create_many_is_all_or_nothing_when_one_job_is_refused() {
    let db = test_db().await;
    let news = vec![
        NewJob::new("noop", json!({})),
        NewJob::new("not a valid type!", json!({})),
    ];
    let err = db.store.create_many("acme", "test", news).await.unwrap_err();
    assert!(matches!(err, StoreError::Rejected(_)), "{err}");
    assert_eq!(db.count("SELECT count(*) FROM jobs").await, 0);
    assert_eq!(db.count("SELECT count(*) FROM outbox").await, 0);
}

#[tokio::test]
async fn create_many_with_a_conflicting_key_rolls_back_the_whole_batch() {
    let db = test_db().await;
    db.store
        .create(
            "acme",
            "test",
            NewJob::new("noop", json!({"v": 1})).idempotency_key("taken"),
        )
        .await
        .expect("first");
    let news = vec![
        NewJob::new("noop", json!({"fresh": true})),
        NewJob::new("noop", json!({"v": 2})).idempotency_key("taken"),
    ];
    let err = db.store.create_many("acme", "test", news).await.unwrap_err();
    assert!(matches!(err, StoreError::IdempotencyConflict { .. }), "{err}");
    assert_eq!(
        db.count("SELECT count(*) FROM jobs").await,
        1,
        "the fresh job was rolled back"
    );
}

#[tokio::test]
async fn a_repeated_key_inside_one_batch_makes_one_job() {
    let db = test_db().await;
    let same = NewJob::new("noop", json!({"x": 1})).idempotency_key("dup");
    let created = db
        .store
        .create_many("acme", "test", vec![same.clone(), same])
        .await
        .expect("batch");
    assert_eq!(created[0].job.id, created[1].job.id);
    assert!(!created[0].already_existed);
    assert!(created[1].already_existed);
    assert_eq!(db.count("SELECT count(*) FROM jobs").await, 1);
}

#[tokio::test]
async fn options_are_stored_as_asked() {
    let db = test_db().await;
    let job = db
        .store
        .create(
            "acme",
            "test",
            NewJob::new("noop", json!({}))
                .priority(Priority::HIGHEST)
                .max_attempts(9)
                .schedule(Schedule::AfterSeconds(120)),
        )
        .await
        .expect("create")
        .job;
    assert_eq!(job.priority, 0);
    assert_eq!(job.max_attempts, 9);
    assert_eq!(job.run_after, db.now() + chrono::Duration::seconds(120));
    let relay_at: chrono::DateTime<chrono::Utc> = db
        .client
        .query_one("SELECT next_attempt_at FROM outbox WHERE job_id = $1", &[&job.id])
        .await
        .expect("outbox row")
        .get(0);
    assert_eq!(relay_at, job.run_after, "a delayed job is relayed when it is due");
}
