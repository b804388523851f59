//! The outbox: delivery despite a queue that was down at commit, relays
//! racing each other, and the dead letter with its idempotent replay.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use jobline::NewJob;
use jobline::queue::relay::{relay_all, relay_once};
use jobline::queue::sqs::SqsQueue;
use jobline::queue::{OutboxItem, Publisher, Queue};
use jobline::store::{Created, OUTBOX_MAX_ATTEMPTS};
use serde_json::json;

use crate::queue_contract::receive_until;
use crate::queue_sqs::{client, fresh_queue};
use crate::support::{TestDb, test_db};

/// An SQS client aimed at a port nobody listens on: the queue is down.
fn down_queue() -> Arc<dyn Queue> {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .region(aws_sdk_sqs::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "t", "t", None, None, "static",
        ))
        .endpoint_url("http://127.0.0.1:9")
        .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled())
        .build();
    Arc::new(SqsQueue::with_client(
        aws_sdk_sqs::Client::from_conf(config),
        "http://127.0.0.1:9/000000000000/down",
    ))
}

/// A fresh SQS queue on moto: up, with messages hidden for
/// `visibility_secs` once received.
async fn an_sqs_queue(visibility_secs: u32) -> Arc<SqsQueue> {
    let sqs = client();
    let (url, _) = fresh_queue(&sqs, visibility_secs, 10).await;
    Arc::new(SqsQueue::with_client(sqs, url))
}

/// A new `noop` job for acme, with its outbox row.
async fn a_new_noop(db: &TestDb) -> Created {
    db.store
        .create("acme", "test", NewJob::new("noop", json!({})))
        .await
        .expect("create")
}

/// Outbox rows in `status`.
async fn outbox_rows(db: &TestDb, status: &str) -> i64 {
    db.count(&format!("SELECT count(*) FROM outbox WHERE status = '{status}'"))
        .await
}

fn item(c: &Created) -> OutboxItem {
    OutboxItem {
        outbox_id: c.outbox_id.expect("new job"),
        job_id: c.job.id,
        run_after: c.job.run_after,
    }
}

#[tokio::test]
async fn a_job_created_while_the_queue_is_down_is_delivered_once_it_is_back() {
    let db = test_db().await;
    let created = a_new_noop(&db).await;
    let down = Publisher::new(db.store.clone(), down_queue(), "api");
    let outcome = down.publish(&[item(&created)]).await;
    assert_eq!(outcome.failed, 1, "the request still succeeded; the row waits");
    let row = db
        .client
        .query_one("SELECT status::text, attempts, last_error FROM outbox", &[])
        .await
        .expect("row");
    assert_eq!(row.get::<_, String>(0), "failed");
    assert_eq!(row.get::<_, i32>(1), 1);
    assert!(row.get::<_, Option<String>>(2).is_some());

    // The queue is back; after the backoff the relay delivers it.
    let up = an_sqs_queue(30).await;
    let relay = Publisher::new(db.store.clone(), up.clone(), "relay");
    assert_eq!(
        relay_once(&db.store, &relay, 100).await.expect("relay").leased,
        0,
        "not before its backoff"
    );
    db.advance(60);
    let report = relay_all(&db.store, &relay, 100).await.expect("relay");
    assert_eq!(report.published, 1);
    let got = receive_until(up.as_ref(), "w", 1, Duration::from_secs(10)).await;
    assert_eq!(got[0].message.map(|m| m.job_id), Some(created.job.id));
    assert_eq!(db.events(created.job.id).await, ["created", "published"]);
    assert_eq!(outbox_rows(&db, "sent").await, 1);
}

#[tokio::test]
async fn relays_racing_each_other_publish_each_row_once() {
    let db = test_db().await;
    let news: Vec<NewJob> = (0..120).map(|i| NewJob::new("noop", json!({ "i": i }))).collect();
    let created = db.store.create_many("acme", "test", news).await.expect("create");
    db.advance(60); // past the creator's grace: the rows are the relay's now
    let queue = an_sqs_queue(60).await;
    let relays = (0..4).map(|n| {
        let store = db.store.clone();
        let publisher = Publisher::new(store.clone(), queue.clone(), format!("relay-{n}"));
        tokio::spawn(async move { relay_all(&store, &publisher, 10).await.expect("relay") })
    });
    let mut published = 0;
    for r in relays {
        published += r.await.expect("task").published;
    }
    assert_eq!(published, 120);
    let got = receive_until(queue.as_ref(), "w", 121, Duration::from_secs(8)).await;
    assert_eq!(got.len(), 120, "no row published twice");
    let ids: HashSet<_> = got.iter().filter_map(|d| d.message.map(|m| m.job_id)).collect();
    let want: HashSet<_> = created.iter().map(|c| c.job.id).collect();
    assert_eq!(ids, want);
    assert_eq!(
        db.count("SELECT count(*) FROM job_events WHERE event = 'published'")
            .await,
        120
    );
}

#[tokio::test]
async fn an_undeliverable_row_goes_to_the_dead_letter_and_replays_once_per_token() {
    let db = test_db().await;
    let created = a_new_noop(&db).await;
    let down = Publisher::new(db.store.clone(), down_queue(), "relay");
    db.advance(60);
    for _ in 0..OUTBOX_MAX_ATTEMPTS {
        relay_all(&db.store, &down, 10).await.expect("relay");
        db.advance(3600);
    }
    assert_eq!(outbox_rows(&db, "dead_letter").await, 1);
    let dead = db.store.dead_letter_outbox("acme", 10).await.expect("list");
    assert_eq!(dead[0].job_id, created.job.id);
    assert_eq!(
        db.store
            .stats(Some("acme"))
            .await
            .expect("stats")
            .dead_letter_outbox,
        1
    );
    // The row carries its job's tenant from the moment it is dead-lettered:
    // another tenant neither sees, counts nor replays it.
    assert!(
        db.store
            .dead_letter_outbox("globex", 10)
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(
        db.store
            .stats(Some("globex"))
            .await
            .expect("stats")
            .dead_letter_outbox,
        0
    );
    let theirs = db
        .store
        .replay_dead_letter("globex", "tok-g", "ops", None, None)
        .await
        .expect("replay");
    assert_eq!(theirs.outbox_replayed, 0);
    assert_eq!(outbox_rows(&db, "dead_letter").await, 1);

    let replay = || db.store.replay_dead_letter("acme", "tok-1", "ops", None, None);
    let first = replay().await.expect("replay");
    assert_eq!(
        (first.updated, first.outbox_replayed, first.already_used),
        (1, 1, false)
    );
    let second = replay().await.expect("replay");
    assert_eq!((second.updated, second.already_used), (0, true));
    assert_eq!(outbox_rows(&db, "pending").await, 1);
    // Replayed rows are due at once and go out with the next relay pass.
    let up = Publisher::new(db.store.clone(), an_sqs_queue(30).await, "relay");
    assert_eq!(relay_all(&db.store, &up, 10).await.expect("relay").published, 1);
}

#[tokio::test]
async fn marking_published_counts_only_rows_it_changed() {
    let db = test_db().await;
    let created = a_new_noop(&db).await;
    let id = created.outbox_id.expect("new");
    assert_eq!(db.store.mark_published(&[id], "a").await.expect("mark"), 1);
    assert_eq!(
        db.store.mark_published(&[id], "b").await.expect("mark"),
        0,
        "already sent"
    );
    assert_eq!(db.events(created.job.id).await, ["created", "published"]);
}

#[tokio::test]
async fn concurrent_publishers_share_statements_each_counting_its_own_rows() {
    let db = test_db().await;
    let mut rows = Vec::new();
    for _ in 0..30 {
        let created = a_new_noop(&db).await;
        rows.push((created.job.id, created.outbox_id.expect("new")));
    }
    // Thirty publishers of one row each, at once; then a late one again.
    let calls: Vec<(Vec<i64>, String)> = rows
        .iter()
        .enumerate()
        .map(|(i, (_, outbox))| (vec![*outbox], format!("publisher-{i}")))
        .collect();
    let marked = futures::future::join_all(calls.iter().map(|(ids, actor)| {
        let store = db.store.clone();
        async move { store.mark_published(ids, actor).await }
    }))
    .await;
    for m in &marked {
        assert_eq!(*m.as_ref().expect("mark"), 1);
    }
    let first_three: Vec<i64> = rows[..3].iter().map(|(_, o)| *o).collect();
    assert_eq!(
        db.store.mark_published(&first_three, "late").await.expect("mark"),
        0
    );
    assert_eq!(outbox_rows(&db, "sent").await, 30);
    for (i, (job, _)) in rows.iter().enumerate() {
        assert_eq!(db.events(*job).await, ["created", "published"]);
        let actor = db
            .count(&format!(
                "SELECT count(*) FROM job_events WHERE job_id = '{job}' AND event = 'published' AND actor = 'publisher-{i}'"
            ))
            .await;
        assert_eq!(actor, 1, "job {i}'s event names its own publisher");
    }
}
