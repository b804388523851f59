//! The processing core and the edge worker's loop against real Postgres
//! (and the real brokers for the full path).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use jobline::domain::JobStatus;
use jobline::queue::postgres::PostgresQueue;
use jobline::queue::{Delivery, Feed, Message};
use jobline::store::workers::{WorkerCommand, WorkerInfo};
use jobline::testing::TENANT;
use jobline::worker::runner::run;
use jobline::worker::{
    Disposition, Finished, HandlerError, HandlerOutput, JobContext, JobHandler, Processor, Registry, Summary,
    WorkerOptions,
};
use jobline::{NewJob, async_trait};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::support::{TestDb, eventually, test_db};

/// How long a test waits for a worker to get somewhere.
const WITHIN: Duration = Duration::from_secs(5);

/// A processor over `registry` as worker `worker`, beating every `heartbeat_ms`.
fn a_processor(db: &TestDb, registry: Registry, worker: &str, heartbeat_ms: u64) -> Processor {
    Processor::new(
        db.store.clone(),
        Arc::new(registry),
        Duration::from_millis(heartbeat_ms),
        worker,
    )
}

fn processor(db: &TestDb, registry: Registry) -> Processor {
    a_processor(db, registry, "w-test", 50)
}

/// A registry that knows only `job_type`, run by `handler`.
fn registry_of(job_type: &str, handler: impl JobHandler) -> Registry {
    let mut registry = Registry::new();
    registry.register(job_type, handler);
    registry
}

/// Claims batches straight from the test database.
fn postgres_feed(db: &TestDb) -> Feed {
    Feed::Claim(Arc::new(PostgresQueue::new(db.store.clone(), None)))
}

fn once() -> WorkerOptions {
    WorkerOptions {
        concurrency: 4,
        poll_interval: Duration::from_millis(100),
        once: true,
        ..WorkerOptions::default()
    }
}

/// Runs a worker over the Postgres feed until it stops by itself (`once`, a
/// limit); what it did.
async fn a_worker(db: &TestDb, registry: Registry, options: WorkerOptions) -> Summary {
    let (_tx, rx) = watch::channel(false);
    run(processor(db, registry), postgres_feed(db), options, rx).await
}

/// Starts a worker over the Postgres feed in the background; sending `true`
/// asks it to shut down.
fn a_running_worker(
    db: &TestDb,
    processor: Processor,
    options: WorkerOptions,
) -> (watch::Sender<bool>, JoinHandle<Summary>) {
    let (tx, rx) = watch::channel(false);
    (tx, tokio::spawn(run(processor, postgres_feed(db), options, rx)))
}

/// Waits until the store lists the worker `steered` in a state `pred` accepts.
async fn wait_for_steered(db: &TestDb, pred: impl Fn(&WorkerInfo) -> bool) {
    let (store, pred) = (&db.store, &pred);
    let there = eventually(WITHIN, move || async move {
        let ws = store.workers(Duration::from_secs(60)).await.expect("workers");
        ws.iter().any(|w| w.worker.id == "steered" && pred(w))
    })
    .await;
    assert!(
        there,
        "worker never got there: {:?}",
        store.workers(Duration::from_secs(60)).await
    );
}

/// Whether job `id` has reached `status`.
async fn job_is(db: &TestDb, id: uuid::Uuid, status: JobStatus) -> bool {
    db.job(id).await.status == status
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
    let ok = db.noop_for(TENANT).await;
    let slow = db.job_for(TENANT, NewJob::new("sleep", json!({"ms": 30}))).await;
    let bad = db
        .job_for(TENANT, NewJob::new("fail", json!({"permanent": true})))
        .await;
    let unknown = db.job_for(TENANT, NewJob::new("mystery", json!({}))).await;
    let types = ["noop", "sleep", "fail", "mystery"].map(String::from).to_vec();
    let options = WorkerOptions {
        types: Some(types),
        ..once()
    };
    let summary = a_worker(&db, jobline::handlers::builtins(), options).await;
    assert_eq!(summary.processed, 4);
    assert_eq!(summary.succeeded, 2);
    assert_eq!(summary.failed, 2);
    assert_eq!(db.job(ok.id).await.status, JobStatus::Completed);
    let slept = db.job(slow.id).await;
    assert_eq!(slept.result, Some(json!({"slept_ms": 30})));
    assert_eq!(
        slept.stage.as_deref(),
        Some("done"),
        "the last stage reached the store"
    );
    assert_eq!(db.job(bad.id).await.error_code.as_deref(), Some("FAIL_PERMANENT"));
    assert_eq!(db.job(unknown.id).await.error_code.as_deref(), Some("NO_HANDLER"));
}

#[tokio::test]
async fn a_panicking_handler_is_a_retryable_failure_not_a_crash() {
    let db = test_db().await;
    let panics = NewJob::new("fail", json!({"panic": true})).max_attempts(3);
    let job = db.job_for(TENANT, panics).await;
    let p = processor(&db, jobline::handlers::builtins());
    let (disposition, finished) = p.handle_delivery(&delivery(job.id)).await;
    assert!(matches!(finished, Some(Finished::Retrying(_))), "{finished:?}");
    assert!(matches!(disposition, Disposition::Retry(_)));
    let after = db.job(job.id).await;
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
    let flaky = NewJob::new("fail", json!({"times": 5})).max_attempts(2);
    let job = db.job_for(TENANT, flaky).await;
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
    assert_eq!(db.job(job.id).await.attempts, 2);
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
    let job = db.job_for(TENANT, NewJob::new("slow", json!({}))).await;
    // Beats often, so the cancel is seen well within Slow's timeout.
    let p = a_processor(&db, registry_of("slow", Slow), "w", 20);
    let store = db.store.clone();
    let canceller = tokio::spawn(async move {
        // Cancel once the job is running.
        let store = &store;
        let running = eventually(WITHIN, move || async move {
            let now = store.get_any(job.id).await.expect("get").expect("found");
            now.status == JobStatus::Processing
        });
        if running.await {
            store.cancel(None, job.id, "test").await.expect("cancel");
        }
    });
    let (d, f) = p.handle_delivery(&delivery(job.id)).await;
    canceller.await.expect("task");
    assert_eq!((d, f), (Disposition::Ack, Some(Finished::Stale)));
    assert_eq!(db.job(job.id).await.status, JobStatus::Cancelled);
}

/// Never finishes by itself: only its timeout, a cancel or a shutdown ends it.
struct Forever(Duration);

#[async_trait]
impl JobHandler for Forever {
    async fn run(&self, _ctx: JobContext) -> Result<HandlerOutput, HandlerError> {
        std::future::pending().await
    }

    fn timeout(&self) -> Duration {
        self.0
    }
}

#[tokio::test]
async fn an_attempt_over_its_timeout_fails_retryably() {
    let db = test_db().await;
    let job = db.job_for(TENANT, NewJob::new("forever", json!({}))).await;
    let registry = registry_of("forever", Forever(Duration::from_millis(200)));
    let (_, f) = processor(&db, registry).handle_delivery(&delivery(job.id)).await;
    assert!(matches!(f, Some(Finished::Retrying(_))), "{f:?}");
    assert_eq!(db.job(job.id).await.error_code.as_deref(), Some("TIMEOUT"));
}

#[tokio::test]
async fn duplicate_deliveries_complete_a_job_once() {
    let db = test_db().await;
    let job = db.job_for(TENANT, NewJob::new("sleep", json!({"ms": 50}))).await;
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
    for event in ["completed", "claimed"] {
        let sql = format!("SELECT count(*) FROM job_events WHERE event = '{event}'");
        assert_eq!(db.count(&sql).await, 1, "{event}");
    }
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
        // The work: holds its slot a moment so runs overlap (not a wait).
        tokio::time::sleep(Duration::from_millis(15)).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        Ok(HandlerOutput::default())
    }
}

#[tokio::test]
async fn the_concurrency_limit_is_never_exceeded() {
    let db = test_db().await;
    let news: Vec<NewJob> = (0..60).map(|_| NewJob::new("gauge", json!({}))).collect();
    db.store.create_many(TENANT, "test", news).await.expect("create");
    let peak = Arc::new(AtomicUsize::new(0));
    let gauge = Gauge {
        now: Arc::new(AtomicUsize::new(0)),
        peak: peak.clone(),
    };
    let options = WorkerOptions {
        concurrency: 3,
        ..once()
    };
    let summary = a_worker(&db, registry_of("gauge", gauge), options).await;
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
    db.store.create_many(TENANT, "test", news).await.expect("create");
    let options = WorkerOptions {
        limit: Some(4),
        ..once()
    };
    let summary = a_worker(&db, jobline::handlers::builtins(), options).await;
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
    let quick = db.job_for(TENANT, NewJob::new("sleep", json!({"ms": 20}))).await;
    let stuck = db.job_for(TENANT, NewJob::new("forever", json!({}))).await;
    let mut registry = jobline::handlers::builtins();
    registry.register("forever", Forever(Duration::from_secs(60)));
    let options = WorkerOptions {
        concurrency: 2,
        poll_interval: Duration::from_millis(50),
        shutdown_grace: Duration::from_millis(300),
        ..WorkerOptions::default()
    };
    let (tx, worker) = a_running_worker(&db, processor(&db, registry), options);
    let db_ref = &db;
    assert!(
        eventually(WITHIN, move || job_is(db_ref, quick.id, JobStatus::Completed)).await,
        "the quick job never completed"
    );
    tx.send(true).expect("signal");
    let summary = tokio::time::timeout(Duration::from_secs(5), worker)
        .await
        .expect("stops in time")
        .expect("task");
    assert_eq!(summary.succeeded, 1);
    let released = db.job(stuck.id).await;
    assert_eq!(
        released.status,
        JobStatus::Pending,
        "released, not left processing"
    );
    assert_eq!(released.error_code.as_deref(), Some("WORKER_SHUTDOWN"));
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
    let options = WorkerOptions {
        concurrency: 2,
        poll_interval: Duration::from_millis(50),
        ..WorkerOptions::default()
    };
    let p = a_processor(&db, jobline::handlers::builtins(), "steered", 50);
    let (_tx, worker) = a_running_worker(&db, p, options);
    wait_for_steered(&db, |w| {
        w.worker.state == "running" && w.worker.concurrency == 2 && w.worker.queue == "postgres"
    })
    .await;

    // Paused: new jobs wait.
    assert!(
        db.store
            .steer_worker("steered", WorkerCommand::Paused)
            .await
            .expect("steer")
    );
    wait_for_steered(&db, |w| w.worker.state == "paused").await;
    let job = db.noop_for(TENANT).await;
    // Two turns of its loop while paused, each seen by its beat (stamped
    // with the manual clock, moved on before each): a worker that ignored
    // the pause would have claimed the job in the first, right after its
    // beat. The job stays pending.
    for _ in 0..2 {
        let before = db.now();
        db.advance(1);
        wait_for_steered(&db, |w| w.worker.state == "paused" && w.last_seen_at > before).await;
    }
    assert_eq!(db.job(job.id).await.status, JobStatus::Pending);
    // Resumed: it runs.
    db.store
        .steer_worker("steered", WorkerCommand::Running)
        .await
        .expect("steer");
    let db_ref = &db;
    assert!(
        eventually(WITHIN, move || job_is(db_ref, job.id, JobStatus::Completed)).await,
        "resumed worker did not run the job"
    );
    // Drained: it exits by itself.
    db.store
        .steer_worker("steered", WorkerCommand::Draining)
        .await
        .expect("steer");
    let summary = tokio::time::timeout(Duration::from_secs(5), worker)
        .await
        .expect("exits")
        .expect("task");
    assert_eq!(summary.succeeded, 1);
    wait_for_steered(&db, |w| w.worker.state == "stopped" && w.worker.processed == 1).await;
    assert!(
        !db.store
            .steer_worker("nobody", WorkerCommand::Paused)
            .await
            .expect("steer")
    );
}

#[tokio::test]
async fn a_worker_not_seen_for_a_while_is_gone() {
    let db = test_db().await;
    let options = WorkerOptions {
        poll_interval: Duration::from_millis(50),
        ..WorkerOptions::default()
    };
    let (tx, worker) = a_running_worker(&db, processor(&db, jobline::handlers::builtins()), options);
    let store = &db.store;
    let listed = eventually(WITHIN, move || async move {
        !store
            .workers(Duration::from_secs(60))
            .await
            .expect("list")
            .is_empty()
    });
    assert!(listed.await);
    tx.send(true).expect("stop");
    worker.await.expect("task");
    // Simulate a crash: the row says running but was last seen long ago.
    db.client
        .execute("UPDATE workers SET state = 'running'", &[])
        .await
        .expect("update");
    db.advance(120);
    let ws = db.store.workers(Duration::from_secs(60)).await.expect("list");
    assert_eq!(ws[0].worker.state, "gone");
}

#[tokio::test]
async fn a_delivery_for_another_type_goes_back_unclaimed() {
    let db = test_db().await;
    let job = db.job_for(TENANT, NewJob::new("render", json!({}))).await;
    let p = processor(&db, jobline::handlers::builtins()).with_types(Some(vec!["noop".into()]));
    let (d, f) = p.handle_delivery(&delivery(job.id)).await;
    assert!(matches!(d, Disposition::Retry(_)) && f.is_none(), "{d:?} {f:?}");
    assert_eq!(db.job(job.id).await.status, JobStatus::Pending);
    assert_eq!(db.job(job.id).await.attempts, 0);
}

#[tokio::test]
async fn a_worker_stopped_mid_drain_hands_back_its_local_queue_at_once() {
    let db = test_db().await;
    let news: Vec<NewJob> = (0..600).map(|_| NewJob::new("sleep", json!({"ms": 2}))).collect();
    db.store.create_many(TENANT, "test", news).await.expect("create");
    let options = WorkerOptions {
        concurrency: 2,
        poll_interval: Duration::from_millis(50),
        ..WorkerOptions::default()
    };
    // Beats every second: claims may wait that long in the local queue.
    let p = a_processor(&db, jobline::handlers::builtins(), "queueing", 1000);
    let (tx, worker) = a_running_worker(&db, p, options);
    let completed = || async {
        let n: i64 = db
            .client
            .query_one("SELECT count(*) FROM jobs WHERE status = 'completed'", &[])
            .await
            .expect("count")
            .get(0);
        n >= 100
    };
    assert!(eventually(WITHIN, completed).await, "the drain never got going");
    tx.send(true).expect("signal");
    tokio::time::timeout(Duration::from_secs(5), worker)
        .await
        .expect("stops in time")
        .expect("task");
    let row = db
        .client
        .query_one(
            "SELECT count(*) FILTER (WHERE status = 'processing'),
                    count(*) FILTER (WHERE status = 'pending' AND attempts <> 0),
                    count(*) FILTER (WHERE status NOT IN ('pending', 'completed')),
                    (SELECT count(*) FROM job_events WHERE event = 'handed_back')
             FROM jobs",
            &[],
        )
        .await
        .expect("counts");
    let (processing, spent, other, handed_back): (i64, i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!(
        processing, 0,
        "nothing left held: no wait for the heartbeat timeout"
    );
    assert_eq!(spent, 0, "no attempt spent on a job that never started");
    assert_eq!(other, 0);
    assert!(handed_back > 0, "the worker held claims ahead of its two slots");
}

#[tokio::test]
async fn a_lone_slot_takes_the_next_job_as_soon_as_it_frees_not_at_the_next_poll() {
    let db = test_db().await;
    let news: Vec<NewJob> = (0..20).map(|_| NewJob::new("noop", json!({}))).collect();
    db.store.create_many(TENANT, "test", news).await.expect("create");
    let options = WorkerOptions {
        concurrency: 1,
        poll_interval: Duration::from_secs(10),
        once: true,
        ..WorkerOptions::default()
    };
    // A slot that waited for a poll or a beat per job would take 20 s.
    let summary = tokio::time::timeout(WITHIN, a_worker(&db, jobline::handlers::builtins(), options))
        .await
        .expect("the drain does not wait between jobs");
    assert_eq!(summary.succeeded, 20);
}
