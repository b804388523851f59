//! The `postgres` adapter: no broker; consumers are woken by NOTIFY.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jobline::NewJob;
use jobline::queue::postgres::PostgresQueue;
use jobline::queue::{OutboxItem, Publisher, Queue as _, Wakeups as _};
use serde_json::json;

use crate::support::{eventually, test_db};

/// Starts the adapter's LISTEN session and waits until it listens: the
/// session wakes waiters once it does, so the mark moves.
async fn listening(queue: &PostgresQueue) {
    let before = queue.mark();
    queue.wait(before, Duration::from_secs(10)).await;
    assert_ne!(queue.mark(), before, "the LISTEN session never came up");
}

#[tokio::test]
async fn a_waiting_consumer_wakes_on_the_notify_after_commit_not_at_its_poll() {
    let db = test_db().await;
    let queue = Arc::new(PostgresQueue::new(db.store.clone(), Some(db.url.clone())));
    // Establish the LISTEN session first (its own wake-up is not the one measured).
    listening(&queue).await;
    let mark = queue.mark();
    let waiting = {
        let q = queue.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            q.wait(mark, Duration::from_secs(20)).await;
            started.elapsed()
        })
    };
    let created = db
        .store
        .create("t", "test", NewJob::new("noop", json!({})))
        .await
        .expect("create");
    let publisher = Publisher::new(db.store.clone(), queue.clone(), "api");
    publisher
        .publish(&[OutboxItem {
            outbox_id: created.outbox_id.expect("new"),
            job_id: created.job.id,
            run_after: created.job.run_after,
        }])
        .await;
    let waited = waiting.await.expect("task");
    assert!(
        waited < Duration::from_secs(5),
        "woken by NOTIFY, not the 20 s poll: {waited:?}"
    );
}

#[tokio::test]
async fn a_wake_up_between_an_empty_claim_and_the_wait_is_not_missed() {
    let db = test_db().await;
    let queue = Arc::new(PostgresQueue::new(db.store.clone(), Some(db.url.clone())));
    listening(&queue).await;
    // A consumer marks, claims nothing ...
    let mark = queue.mark();
    // ... and before it waits, a job is published and its NOTIFY arrives.
    let created = db
        .store
        .create("t", "test", NewJob::new("noop", json!({})))
        .await
        .expect("create");
    Publisher::new(db.store.clone(), queue.clone(), "api")
        .publish(&[OutboxItem {
            outbox_id: created.outbox_id.expect("new"),
            job_id: created.job.id,
            run_after: created.job.run_after,
        }])
        .await;
    let arrived = eventually(Duration::from_secs(10), || async { queue.mark() != mark }).await;
    assert!(arrived, "the NOTIFY never arrived");
    // The wait that starts now returns at once instead of sleeping its poll.
    let started = Instant::now();
    queue.wait(mark, Duration::from_secs(20)).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn concurrent_publishes_share_notifies_and_each_is_answered() {
    let db = test_db().await;
    let queue = Arc::new(PostgresQueue::new(db.store.clone(), None));
    // A LISTEN session of our own, counting what arrives.
    let channel = PostgresQueue::channel_for(&db.store.settings().queue_name);
    let (listener, mut rx) = crate::support::listen(&db.url, &channel).await;
    let message = [jobline::queue::Outgoing {
        message: jobline::queue::Message::new(uuid::Uuid::new_v4(), db.now()),
        delay: Duration::ZERO,
    }];
    let answers = futures::future::join_all((0..50).map(|_| queue.publish(&message))).await;
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    let first = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a NOTIFY within 10 s");
    assert_eq!(first.as_deref(), Some(channel.as_str()));
    // Every publish was answered after its NOTIFY committed, and they
    // shared statements: fewer notifications than publishes.
    listener.batch_execute("SELECT 1").await.expect("round trip");
    let mut got = 1;
    while rx.try_recv().is_ok() {
        got += 1;
    }
    assert!(got < 50, "{got} notifications for 50 publishes");
}

/// Postgres down: the worker backs off (capped, jittered) instead of
/// claiming every poll interval. Counted as connection attempts on a server
/// that hangs up on every one.
#[tokio::test]
async fn a_worker_backs_off_while_postgres_is_down() {
    use std::sync::atomic::{AtomicUsize, Ordering};

    let refusing = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("postgres://postgres@{}/x", refusing.local_addr().expect("addr"));
    let attempts = Arc::new(AtomicUsize::new(0));
    let counted = attempts.clone();
    let server = tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = refusing.accept().await else {
                return;
            };
            counted.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    let mut options = jobline::store::pool::PoolOptions::new(url, 2);
    options.wait_timeout = Duration::from_millis(300);
    let store = jobline::Store::new(
        jobline::store::pool::build(&options).expect("pool"),
        jobline::testing::test_settings(),
    );
    let feed = jobline::queue::Feed::Claim(Arc::new(PostgresQueue::new(store.clone(), None)));
    let processor = jobline::worker::Processor::new(
        store,
        Arc::new(jobline::handlers::builtins()),
        Duration::from_millis(100),
        "w-down",
    );
    let worker_options = jobline::worker::WorkerOptions {
        poll_interval: Duration::from_millis(50),
        register: false,
        shutdown_grace: Duration::from_millis(100),
        ..jobline::worker::WorkerOptions::default()
    };
    let (stop, rx) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(jobline::worker::runner::run(processor, feed, worker_options, rx));
    // The sleep is the subject, not a wait: the attempts are counted over a
    // fixed window of outage. 1 s is the shortest that tells the cases
    // apart (below).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = stop.send(true);
    worker.await.expect("worker");
    server.abort();
    let n = attempts.load(Ordering::SeqCst);
    // Claiming every 50 ms poll would be about 20 attempts, and a backoff
    // that does not double (waits of 50 to 100 ms) at least 11; doubling from
    // 100 ms (waits of at least 50, 100, 200, 400 ms) is at most 5.
    assert!((2..=8).contains(&n), "{n} claim attempts in 1 s of outage");
}
