//! The processing core and the edge worker's loop against real Postgres
//! (and the real brokers for the full path).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use jobline::domain::JobStatus;
use jobline::queue::postgres::PostgresQueue;
use jobline::queue::{Delivery, Feed, Message};
use jobline::worker::runner::run;
use jobline::worker::{
    Disposition, Finished, HandlerError, HandlerOutput, JobContext, JobHandler, Processor, Registry,
    WorkerOptions,
};
use jobline::{NewJob, async_trait};
use serde_json::json;
use tokio::sync::watch;

use crate::support::{TestDb, test_db};

fn processor(db: &TestDb, registry: Registry) -> Processor {
    Processor::new(
        db.store.clone(),
        Arc::new(registry),
        Duration::from_millis(50),
        "w-test",
    )
}

fn once() -> WorkerOptions {
    WorkerOptions {
        concurrency: 4,
        poll_interval: Duration::from_millis(100),
        once: true,
        ..WorkerOptions::default()
    }
}

async fn status(db: &TestDb, id: uuid::Uuid) -> jobline::Job {
    db.store.get_any(id).await.expect("get").expect("found")
}

fn delivery(id: uuid::Uuid) -> Delivery {
    let message = Message::new(id, chrono::Utc::now());
    Delivery {
        raw: serde_json::to_string(&message).expect("json"),
        message: Some(message),
        receipt: "r".into(),
        receive_count: 1,
    }
}

#[tokio::test]
async fn a_worker_drains_what_is_due_and_reports_a_summary() {
    let db = test_db().await;
    let ok = db
        .store
        .create("t", "test", NewJob::new("noop", json!({})))
        .await
        .expect("create")
        .job;
    let slow = db
        .store
        .create("t", "test", NewJob::new("sleep", json!({"ms": 30})))
        .await
        .expect("create")
        .job;
    let bad = db
        .store
        .create("t", "test", NewJob::new("fail", json!({"permanent": true})))
        .await
        .expect("create")
        .job;
    let unknown = db
        .store
        .create("t", "test", NewJob::new("mystery", json!({})))
        .await
        .expect("create")
        .job;
    let feed = Feed::Claim(Arc::new(PostgresQueue::new(db.store.clone(), None)));
    let (_tx, rx) = watch::channel(false);
    let mut options = once();
    options.types = Some(vec![
        "noop".into(),
        "sleep".into(),
        "fail".into(),
        "mystery".into(),
    ]);
    let summary = run(processor(&db, jobline::handlers::builtins()), feed, options, rx).await;
    assert_eq!(summary.processed, 4);
    assert_eq!(summary.succeeded, 2);
    assert_eq!(summary.failed, 2);
    assert_eq!(status(&db, ok.id).await.status, JobStatus::Completed);
    let slept = status(&db, slow.id).await;
    assert_eq!(slept.result, Some(json!({"slept_ms": 30})));
    assert_eq!(
        slept.stage.as_deref(),
        Some("done"),
        "the last stage reached the store"
    );
    assert_eq!(
        status(&db, bad.id).await.error_code.as_deref(),
        Some("FAIL_PERMANENT")
    );
    assert_eq!(
        status(&db, unknown.id).await.error_code.as_deref(),
        Some("NO_HANDLER")
    );
}

#[tokio::test]
async fn a_panicking_handler_is_a_retryable_failure_not_a_crash() {
    let db = test_db().await;
    let job = db
        .store
        .create(
            "t",
            "test",
            NewJob::new("fail", json!({"panic": true})).max_attempts(3),
        )
        .await
        .expect("create")
        .job;
    let p = processor(&db, jobline::handlers::builtins());
    let (disposition, finished) = p.handle_delivery(&delivery(job.id)).await;
    assert!(matches!(finished, Some(Finished::Retrying(_))), "{finished:?}");
    assert!(matches!(disposition, Disposition::Retry(_)));
    let after = status(&db, job.id).await;
    assert_eq!(after.status, JobStatus::Pending);
    assert_eq!(after.error_code.as_deref(), Some("PANIC"));
    assert!(
        after
            .failure_reason
            .as_deref()
            .unwrap_or_default()
            .contains("asked to panic")
    );
}

#[tokio::test]
async fn retryable_failures_back_off_until_attempts_are_spent() {
    let db = test_db().await;
    let job = db
        .store
        .create(
            "t",
            "test",
            NewJob::new("fail", json!({"times": 5})).max_attempts(2),
        )
        .await
        .expect("create")
        .job;
    let p = processor(&db, jobline::handlers::builtins());
    let (d, f) = p.handle_delivery(&delivery(job.id)).await;
    let Some(Finished::Retrying(wait)) = f else {
        panic!("{f:?}")
    };
    assert_eq!(
        d,
        Disposition::Retry(wait),
        "the message comes back after the backoff"
    );
    assert!(
        wait >= Duration::from_secs(1) && wait <= Duration::from_secs(2),
        "{wait:?}"
    );
    // Too early: the delivery is delayed again, nothing runs.
    let (d, f) = p.handle_delivery(&delivery(job.id)).await;
    assert!(matches!(d, Disposition::Retry(_)) && f.is_none());
    db.advance(3);
    let (d, f) = p.handle_delivery(&delivery(job.id)).await;
    assert_eq!((d, f), (Disposition::Ack, Some(Finished::Failed)));
    assert_eq!(status(&db, job.id).await.attempts, 2);
}

struct Slow;

#[async_trait]
impl JobHandler for Slow {
    async fn run(&self, ctx: JobContext) -> Result<HandlerOutput, HandlerError> {
        ctx.report(Some("waiting"), Some(1.0));
        ctx.cancelled().await;
        Err(HandlerError::retryable("STOPPED", "saw the cancel"))
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(400)
    }
}

#[tokio::test]
async fn a_handler_sees_its_job_cancelled_and_stops() {
    let db = test_db().await;
    let job = db
        .store
        .create("t", "test", NewJob::new("slow", json!({})))
        .await
        .expect("create")
        .job;
    let mut registry = Registry::new();
    registry.register("slow", Slow);
    let p = Processor::new(
        db.store.clone(),
        Arc::new(registry),
        Duration::from_millis(20),
        "w",
    );
    let store = db.store.clone();
    let canceller = tokio::spawn(async move {
        // Cancel once the job is running.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while tokio::time::Instant::now() < deadline {
            if store.get_any(job.id).await.expect("get").expect("found").status == JobStatus::Processing {
                store.cancel(None, job.id, "test").await.expect("cancel");
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let (d, f) = p.handle_delivery(&delivery(job.id)).await;
    canceller.await.expect("task");
    assert_eq!((d, f), (Disposition::Ack, Some(Finished::Stale)));
    assert_eq!(status(&db, job.id).await.status, JobStatus::Cancelled);
}

struct Forever;

#[async_trait]
impl JobHandler for Forever {
    async fn run(&self, _ctx: JobContext) -> Result<HandlerOutput, HandlerError> {
        std::future::pending().await
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(200)
    }
}

#[tokio::test]
async fn an_attempt_over_its_timeout_fails_retryably() {
    let db = test_db().await;
    let job = db
        .store
        .create("t", "test", NewJob::new("forever", json!({})))
        .await
        .expect("create")
        .job;
    let mut registry = Registry::new();
    registry.register("forever", Forever);
    let (_, f) = processor(&db, registry).handle_delivery(&delivery(job.id)).await;
    assert!(matches!(f, Some(Finished::Retrying(_))), "{f:?}");
    assert_eq!(status(&db, job.id).await.error_code.as_deref(), Some("TIMEOUT"));
}

#[tokio::test]
async fn duplicate_deliveries_complete_a_job_once() {
    let db = test_db().await;
    let job = db
        .store
        .create("t", "test", NewJob::new("sleep", json!({"ms": 50})))
        .await
        .expect("create")
        .job;
    let p = Arc::new(processor(&db, jobline::handlers::builtins()));
    let runs = (0..5).map(|_| {
        let p = p.clone();
        tokio::spawn(async move { p.handle_delivery(&delivery(job.id)).await })
    });
    let mut completed = 0;
    for r in runs {
        let (d, f) = r.await.expect("task");
        assert_eq!(d, Disposition::Ack);
        completed += usize::from(f == Some(Finished::Completed));
    }
    assert_eq!(completed, 1);
    assert_eq!(
        db.count("SELECT count(*) FROM job_events WHERE event = 'completed'")
            .await,
        1
    );
    assert_eq!(
        db.count("SELECT count(*) FROM job_events WHERE event = 'claimed'")
            .await,
        1
    );
}

struct Gauge {
    now: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

#[async_trait]
impl JobHandler for Gauge {
    async fn run(&self, _ctx: JobContext) -> Result<HandlerOutput, HandlerError> {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(n, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(15)).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        Ok(HandlerOutput::default())
    }
}

#[tokio::test]
async fn the_concurrency_limit_is_never_exceeded() {
    let db = test_db().await;
    let news: Vec<NewJob> = (0..60).map(|_| NewJob::new("gauge", json!({}))).collect();
    db.store.create_many("t", "test", news).await.expect("create");
    let peak = Arc::new(AtomicUsize::new(0));
    let mut registry = Registry::new();
    registry.register(
        "gauge",
        Gauge {
            now: Arc::new(AtomicUsize::new(0)),
            peak: peak.clone(),
        },
    );
    let feed = Feed::Claim(Arc::new(PostgresQueue::new(db.store.clone(), None)));
    let (_tx, rx) = watch::channel(false);
    let mut options = once();
    options.concurrency = 3;
    let summary = run(processor(&db, registry), feed, options, rx).await;
    assert_eq!(summary.succeeded, 60);
    assert!(
        peak.load(Ordering::SeqCst) <= 3,
        "peak {}",
        peak.load(Ordering::SeqCst)
    );
    assert_eq!(peak.load(Ordering::SeqCst), 3, "and it was used");
}

#[tokio::test]
async fn a_limit_stops_the_worker_after_that_many_jobs() {
    let db = test_db().await;
    let news: Vec<NewJob> = (0..10).map(|_| NewJob::new("noop", json!({}))).collect();
    db.store.create_many("t", "test", news).await.expect("create");
    let feed = Feed::Claim(Arc::new(PostgresQueue::new(db.store.clone(), None)));
    let (_tx, rx) = watch::channel(false);
    let mut options = once();
    options.limit = Some(4);
    let summary = run(processor(&db, jobline::handlers::builtins()), feed, options, rx).await;
    assert_eq!(summary.processed, 4);
    assert_eq!(
        db.count("SELECT count(*) FROM jobs WHERE status = 'pending'")
            .await,
        6
    );
}

#[tokio::test]
async fn on_shutdown_in_flight_jobs_finish_or_are_released() {
    let db = test_db().await;
    let quick = db
        .store
        .create("t", "test", NewJob::new("sleep", json!({"ms": 20})))
        .await
        .expect("create")
        .job;
    let stuck = db
        .store
        .create("t", "test", NewJob::new("forever", json!({})))
        .await
        .expect("create")
        .job;
    let mut registry = jobline::handlers::builtins();
    registry.register("forever", Forever60);
    let feed = Feed::Claim(Arc::new(PostgresQueue::new(db.store.clone(), None)));
    let (tx, rx) = watch::channel(false);
    let options = WorkerOptions {
        concurrency: 2,
        poll_interval: Duration::from_millis(50),
        shutdown_grace: Duration::from_millis(300),
        ..WorkerOptions::default()
    };
    let worker = tokio::spawn(run(processor(&db, registry), feed, options, rx));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while status(&db, quick.id).await.status != JobStatus::Completed && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tx.send(true).expect("signal");
    let summary = tokio::time::timeout(Duration::from_secs(5), worker)
        .await
        .expect("stops in time")
        .expect("task");
    assert_eq!(summary.succeeded, 1);
    let released = status(&db, stuck.id).await;
    assert_eq!(
        released.status,
        JobStatus::Pending,
        "released, not left processing"
    );
    assert_eq!(released.error_code.as_deref(), Some("WORKER_SHUTDOWN"));
}

struct Forever60;

#[async_trait]
impl JobHandler for Forever60 {
    async fn run(&self, _ctx: JobContext) -> Result<HandlerOutput, HandlerError> {
        std::future::pending().await
    }
}

#[tokio::test]
async fn a_poison_message_is_acked_and_dropped() {
    let db = test_db().await;
    let p = processor(&db, jobline::handlers::builtins());
    let poison = Delivery {
        message: Message::parse("{\"not\": \"ours\"}"),
        raw: "{\"not\": \"ours\"}".into(),
        receipt: "r".into(),
        receive_count: 1,
    };
    assert_eq!(p.handle_delivery(&poison).await, (Disposition::Ack, None));
    let missing = delivery(uuid::Uuid::now_v7());
    assert_eq!(p.handle_delivery(&missing).await, (Disposition::Ack, None));
}

#[tokio::test]
async fn a_worker_registers_obeys_pause_resume_and_drain() {
    let db = test_db().await;
    let feed = Feed::Claim(Arc::new(PostgresQueue::new(db.store.clone(), None)));
    let (_tx, rx) = watch::channel(false);
    let options = WorkerOptions {
        concurrency: 2,
        poll_interval: Duration::from_millis(50),
        ..WorkerOptions::default()
    };
    let p = Processor::new(
        db.store.clone(),
        Arc::new(jobline::handlers::builtins()),
        Duration::from_millis(50),
        "steered",
    );
    let worker = tokio::spawn(run(p, feed, options, rx));
    let wait_for = |pred: &'static (dyn Fn(&jobline::store::workers::WorkerInfo) -> bool + Sync)| {
        let store = db.store.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            loop {
                let ws = store.workers(Duration::from_secs(60)).await.expect("workers");
                if ws.iter().any(|w| w.id == "steered" && pred(w)) {
                    return;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "worker never got there: {ws:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_for(&|w| w.state == "running" && w.concurrency == 2 && w.queue == "postgres").await;

    // Paused: new jobs wait.
    assert!(
        db.store
            .steer_worker("steered", jobline::store::workers::WorkerCommand::Paused)
            .await
            .expect("steer")
    );
    wait_for(&|w| w.state == "paused").await;
    let job = db
        .store
        .create("t", "test", NewJob::new("noop", json!({})))
        .await
        .expect("create")
        .job;
    // Let it poll a few times while paused: the job stays pending.
    let until = tokio::time::Instant::now() + Duration::from_millis(300);
    while tokio::time::Instant::now() < until {
        assert_eq!(status(&db, job.id).await.status, JobStatus::Pending);
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    // Resumed: it runs.
    db.store
        .steer_worker("steered", jobline::store::workers::WorkerCommand::Running)
        .await
        .expect("steer");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while status(&db, job.id).await.status != JobStatus::Completed {
        assert!(
            tokio::time::Instant::now() < deadline,
            "resumed worker did not run the job"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Drained: it exits by itself.
    db.store
        .steer_worker("steered", jobline::store::workers::WorkerCommand::Draining)
        .await
        .expect("steer");
    let summary = tokio::time::timeout(Duration::from_secs(5), worker)
        .await
        .expect("exits")
        .expect("task");
    assert_eq!(summary.succeeded, 1);
    wait_for(&|w| w.state == "stopped" && w.processed == 1).await;
    assert!(
        !db.store
            .steer_worker("nobody", jobline::store::workers::WorkerCommand::Paused)
            .await
            .expect("steer")
    );
}

#[tokio::test]
async fn a_worker_not_seen_for_a_while_is_gone() {
    let db = test_db().await;
    let feed = Feed::Claim(Arc::new(PostgresQueue::new(db.store.clone(), None)));
    let (tx, rx) = watch::channel(false);
    let options = WorkerOptions {
        poll_interval: Duration::from_millis(50),
        ..WorkerOptions::default()
    };
    let worker = tokio::spawn(run(
        processor(&db, jobline::handlers::builtins()),
        feed,
        options,
        rx,
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while db
        .store
        .workers(Duration::from_secs(60))
        .await
        .expect("list")
        .is_empty()
    {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tx.send(true).expect("stop");
    worker.await.expect("task");
    // Simulate a crash: the row says running but was last seen long ago.
    db.client
        .execute("UPDATE workers SET state = 'running'", &[])
        .await
        .expect("update");
    db.advance(120);
    let ws = db.store.workers(Duration::from_secs(60)).await.expect("list");
    assert_eq!(ws[0].state, "gone");
}

#[tokio::test]
async fn a_delivery_for_another_type_goes_back_unclaimed() {
    let db = test_db().await;
    let job = db
        .store
        .create("t", "test", NewJob::new("render", json!({})))
        .await
        .expect("create")
        .job;
    let p = processor(&db, jobline::handlers::builtins()).with_types(Some(vec!["noop".into()]));
    let (d, f) = p.handle_delivery(&delivery(job.id)).await;
    assert!(matches!(d, Disposition::Retry(_)) && f.is_none(), "{d:?} {f:?}");
    assert_eq!(status(&db, job.id).await.status, JobStatus::Pending);
    assert_eq!(status(&db, job.id).await.attempts, 0);
}
