//! The SQS consumer and the sweeper Lambdas, in process, against a real
//! Postgres (a template-cloned database per test, `JOBLINE_TEST_DATABASE_URL`)
//! and moto's SQS server (`AWS_ENDPOINT_URL_SQS`), as `scripts/test` starts
//! them. Events are built from JSON shaped like the ones Lambda sends.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use chrono::Utc;
use jobline::config::ConsumerConfig;
use jobline::domain::job::Schedule;
use jobline::domain::{JobStatus, NewJob};
use jobline::queue::sqs::SqsQueue;
use jobline::queue::{Message, Publisher};
use jobline::store::pool::{self, PoolOptions};
use jobline::store::{ClaimByIdOutcome, Store, StoreSettings};
use jobline::sweeper::{SweepConfig, sweep_once};
use jobline::testing::{TestDb, test_db};
use jobline::worker::{
    Disposition, HandlerError, HandlerOutput, JobContext, JobHandler, Processor, Registry,
};
use jobline_functions::consumer::{Consumer, QueueArn, delivery_of};
use jobline_functions::sweep::Sweeper;
use serde_json::{Value, json};
use uuid::Uuid;

// ---------------------------------------------------------------------------
// The test bed: jobline::testing, plus a few helpers of these tests.

trait Scenes {
    async fn create(&self, new: NewJob) -> Uuid;
    async fn create_published(&self, new: NewJob) -> Uuid;
    async fn job(&self, id: Uuid) -> jobline::Job;
    async fn count_for(&self, sql: &str, id: Uuid) -> i64;
}

impl Scenes for TestDb {
    async fn create(&self, new: NewJob) -> Uuid {
        self.store
            .create("acme", "test", new)
            .await
            .expect("create")
            .job
            .id
    }

    /// Creates a job and marks its first message published, as the create
    /// route does after commit.
    async fn create_published(&self, new: NewJob) -> Uuid {
        let created = self.store.create("acme", "test", new).await.expect("create");
        let outbox = created.outbox_id.expect("an outbox row");
        assert_eq!(
            self.store.mark_published(&[outbox], "test").await.expect("mark"),
            1
        );
        let sent: i64 = self
            .client
            .query_one(
                "SELECT count(*) FROM outbox WHERE id = $1 AND status = 'sent'",
                &[&outbox],
            )
            .await
            .expect("sent")
            .get(0);
        assert_eq!(sent, 1);
        created.job.id
    }

    async fn job(&self, id: Uuid) -> jobline::Job {
        self.store.get_any(id).await.expect("get").expect("found")
    }

    async fn count_for(&self, sql: &str, id: Uuid) -> i64 {
        self.client.query_one(sql, &[&id]).await.expect(sql).get(0)
    }
}

fn noop() -> NewJob {
    NewJob::new("noop", json!({}))
}

// ---------------------------------------------------------------------------
// SQS (moto).

fn sqs() -> Client {
    jobline::testing::sqs_client()
}

fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL_SQS").expect("AWS_ENDPOINT_URL_SQS")
}

/// A fresh queue; its URL and ARN.
async fn fresh_queue(client: &Client, visibility_secs: u32) -> (String, String) {
    let q = jobline::testing::fresh_sqs_queue(client, visibility_secs, 10).await;
    (q.url, q.arn)
}

async fn send(client: &Client, url: &str, body: &str) {
    client
        .send_message()
        .queue_url(url)
        .message_body(body)
        .send()
        .await
        .expect("send");
}

/// Receives what is visible until the queue answers empty, as SQS hands a
/// batch to Lambda: one event record per message.
async fn receive_all(client: &Client, url: &str, arn: &str) -> Vec<Value> {
    let mut records = Vec::new();
    loop {
        let out = client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .expect("receive");
        if out.messages().is_empty() {
            return records;
        }
        for m in out.messages() {
            let attributes: serde_json::Map<String, Value> = m
                .attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_owned(), Value::String(v.clone())))
                        .collect()
                })
                .unwrap_or_default();
            records.push(json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": m.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": "us-east-1"
            }));
        }
    }
}

fn event(records: Vec<Value>) -> SqsEvent {
    serde_json::from_value(json!({ "Records": records })).expect("an SqsEvent")
}

/// A record the way Lambda sends it, for tests that never talk to SQS.
fn record(message_id: &str, body: &str) -> Value {
    json!({
        "messageId": message_id,
        "receiptHandle": format!("fake-receipt-{message_id}"),
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1700000000000",
            "SenderId": "AIDAEXAMPLE",
            "ApproximateFirstReceiveTimestamp": "1700000000001"
        },
        "messageAttributes": {},
        "md5OfBody": "0",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:generation_jobs",
        "awsRegion": "us-east-1"
    })
}

fn body_of(id: Uuid, at_ms: i64) -> String {
    serde_json::to_string(&Message {
        job_id: id,
        timestamp: at_ms,
    })
    .expect("json")
}

fn consumer(db: &TestDb, registry: Registry, options: ConsumerConfig) -> Consumer {
    let processor = Processor::new(
        db.store.clone(),
        Arc::new(registry),
        Duration::from_secs(1),
        "test-consumer",
    );
    Consumer::new(processor, sqs(), options)
}

fn sqs_options(concurrency: usize) -> ConsumerConfig {
    ConsumerConfig {
        concurrency,
        queue_url: None,
        endpoint_url: Some(endpoint()),
    }
}

fn failures(response: &aws_lambda_events::event::sqs::SqsBatchResponse) -> HashSet<String> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

// ---------------------------------------------------------------------------
// The consumer.

#[tokio::test]
async fn a_batch_names_only_the_records_that_should_come_back() {
    let db = test_db().await;
    let client = sqs();
    let (url, arn) = fresh_queue(&client, 1).await;

    let done = db.create(noop()).await;
    let later = db.create(noop().schedule(Schedule::AfterSeconds(120))).await;
    let flaky = db.create(NewJob::new("fail", json!({}))).await;
    let doomed = db.create(NewJob::new("fail", json!({ "permanent": true }))).await;
    let twice = db.create(noop()).await;
    let missing = Uuid::new_v4();
    let now = Utc::now().timestamp_millis();

    let bodies: HashMap<&str, String> = [
        ("done", body_of(done, now)),
        ("later", body_of(later, now)),
        ("flaky", body_of(flaky, now)),
        ("doomed", body_of(doomed, now)),
        ("poison", "{\"not\": \"a job message\"".to_owned()),
        ("missing", body_of(missing, now)),
        ("twice-1", body_of(twice, now)),
        ("twice-2", body_of(twice, now + 1)),
    ]
    .into_iter()
    .collect();
    for body in bodies.values() {
        send(&client, &url, body).await;
    }
    let records = receive_all(&client, &url, &arn).await;
    assert_eq!(records.len(), bodies.len(), "every message received once");
    // messageId by name.
    let id_of: HashMap<&str, String> = bodies
        .iter()
        .map(|(name, body)| {
            let r = records
                .iter()
                .find(|r| r["body"] == *body)
                .expect("record for body");
            (*name, r["messageId"].as_str().expect("id").to_owned())
        })
        .collect();

    let consumer = consumer(&db, jobline::handlers::builtins(), sqs_options(8));
    let outcomes = consumer.process(event(records.clone())).await;
    let by_name = |name: &str| {
        outcomes
            .iter()
            .find(|o| o.message_id == id_of[name])
            .expect("outcome")
            .clone()
    };
    assert_eq!(
        by_name("later").disposition,
        Disposition::Retry(Duration::from_secs(120))
    );
    assert!(by_name("later").delay_applied, "ChangeMessageVisibility to 120 s");
    assert!(matches!(by_name("flaky").disposition, Disposition::Retry(_)));
    assert!(by_name("flaky").delay_applied);
    for acked in ["done", "doomed", "poison", "missing", "twice-1", "twice-2"] {
        assert_eq!(by_name(acked).disposition, Disposition::Ack, "{acked}");
    }

    // The jobs: each as its record said.
    assert_eq!(db.job(done).await.status, JobStatus::Completed);
    let l = db.job(later).await;
    assert_eq!((l.status, l.attempts), (JobStatus::Pending, 0));
    let f = db.job(flaky).await;
    assert_eq!((f.status, f.attempts), (JobStatus::Pending, 1));
    assert_eq!(f.error_code.as_deref(), Some("FAIL"));
    let d = db.job(doomed).await;
    assert_eq!(
        (d.status, d.error_code.as_deref()),
        (JobStatus::Failed, Some("FAIL_PERMANENT"))
    );
    assert_eq!(db.job(twice).await.status, JobStatus::Completed);
    assert_eq!(db.events(twice).await, ["created", "claimed", "completed"]);

    // The visibility change is real: the queue's own timeout (1 s) has long
    // passed for the records nobody deleted, but `later` stays hidden.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let visible: Vec<String> = receive_all(&client, &url, &arn)
        .await
        .iter()
        .map(|r| r["body"].as_str().expect("body").to_owned())
        .collect();
    assert!(
        !visible.contains(&bodies["later"]),
        "the not-yet-due record is held back 120 s"
    );
    for acked in ["done", "doomed", "poison", "missing"] {
        assert!(
            visible.contains(&bodies[acked]),
            "{acked} came back after the 1 s timeout"
        );
    }

    // The batch response, and the same records again in a later batch
    // (SQS delivers at least once): nothing is completed twice.
    let response = consumer.handle(event(records)).await;
    let again = failures(&response);
    assert!(again.contains(&id_of["later"]), "still not due");
    assert!(!again.contains(&id_of["done"]) && !again.contains(&id_of["twice-1"]));
    assert!(!again.contains(&id_of["twice-2"]) && !again.contains(&id_of["doomed"]));
    assert_eq!(db.events(done).await, ["created", "claimed", "completed"]);
    assert_eq!(db.events(twice).await, ["created", "claimed", "completed"]);
    assert_eq!(db.events(doomed).await, ["created", "claimed", "failed"]);
}

#[tokio::test]
async fn the_consumer_loads_its_sqs_client_only_when_a_record_needs_a_delay() {
    let db = test_db().await;
    let client = sqs();
    let (url, arn) = fresh_queue(&client, 30).await;
    let done = db.create(noop()).await;
    let later = db.create(noop().schedule(Schedule::AfterSeconds(120))).await;
    let now = Utc::now().timestamp_millis();
    send(&client, &url, &body_of(done, now)).await;
    let first = receive_all(&client, &url, &arn).await;
    send(&client, &url, &body_of(later, now)).await;
    let second = receive_all(&client, &url, &arn).await;

    // Built as `Consumer::from_env` builds it: the client comes from the AWS
    // environment scripts/test exports (moto's endpoint, region, keys).
    let processor = Processor::new(
        db.store.clone(),
        Arc::new(jobline::handlers::builtins()),
        Duration::from_secs(1),
        "lazy-consumer",
    );
    let consumer = Consumer::lazy(processor, sqs_options(8));
    assert!(!consumer.sqs_loaded(), "nothing built at cold start");

    let response = consumer.handle(event(first)).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(db.job(done).await.status, JobStatus::Completed);
    assert!(
        !consumer.sqs_loaded(),
        "a batch that only completes needs no SQS call"
    );

    let outcomes = consumer.process(event(second)).await;
    assert_eq!(outcomes.len(), 1);
    assert_eq!(
        outcomes[0].disposition,
        Disposition::Retry(Duration::from_secs(120))
    );
    assert!(consumer.sqs_loaded(), "the first delay built the client");
    assert!(
        outcomes[0].delay_applied,
        "and ChangeMessageVisibility went through it to moto"
    );
}

#[tokio::test]
async fn the_batch_response_names_retryable_failures_and_jobs_not_yet_due() {
    let db = test_db().await;
    let done = db.create(noop()).await;
    let later = db.create(noop().schedule(Schedule::AfterSeconds(60))).await;
    let flaky = db.create(NewJob::new("fail", json!({ "times": 1 }))).await;
    let doomed = db.create(NewJob::new("fail", json!({ "permanent": true }))).await;
    let twice = db.create(noop()).await;
    let now = Utc::now().timestamp_millis();
    let records = vec![
        record("m-done", &body_of(done, now)),
        record("m-later", &body_of(later, now)),
        record("m-flaky", &body_of(flaky, now)),
        record("m-doomed", &body_of(doomed, now)),
        record("m-poison", "hello"),
        record("m-empty", ""),
        record("m-missing", &body_of(Uuid::new_v4(), now)),
        record("m-twice-1", &body_of(twice, now)),
        record("m-twice-2", &body_of(twice, now)),
    ];
    // No queue at this URL: the visibility change fails, the records that
    // should come back are named all the same.
    let options = ConsumerConfig {
        concurrency: 8,
        queue_url: None,
        endpoint_url: Some("http://127.0.0.1:9".into()),
    };
    let consumer = consumer(&db, jobline::handlers::builtins(), options);
    let outcomes = consumer.process(event(records.clone())).await;
    assert!(
        outcomes.iter().all(|o| !o.delay_applied),
        "nothing to change the visibility on"
    );
    let expected: HashSet<String> = ["m-later", "m-flaky"].map(str::to_owned).into_iter().collect();
    let first: HashSet<String> = outcomes
        .iter()
        .filter(|o| o.returned())
        .map(|o| o.message_id.clone())
        .collect();
    assert_eq!(first, expected, "not due yet; failed once (retryable)");
    assert_eq!(db.job(flaky).await.attempts, 1);
    // The same records again: later is still not due, flaky is waiting out
    // its backoff; the rest stay done.
    let response = consumer.handle(event(records)).await;
    assert_eq!(failures(&response), expected);
    assert_eq!(db.events(twice).await, ["created", "claimed", "completed"]);
    assert_eq!(db.job(doomed).await.status, JobStatus::Failed);

    // Once due, flaky succeeds on its second attempt; later runs too.
    db.advance(120);
    let response = consumer
        .handle(event(vec![
            record("m-flaky", &body_of(flaky, now)),
            record("m-later", &body_of(later, now)),
        ]))
        .await;
    assert!(response.batch_item_failures.is_empty());
    let f = db.job(flaky).await;
    assert_eq!((f.status, f.attempts), (JobStatus::Completed, 2));
    assert_eq!(db.job(later).await.status, JobStatus::Completed);
}

#[tokio::test]
async fn duplicate_records_of_one_job_complete_it_once() {
    let db = test_db().await;
    let mut registry = jobline::handlers::builtins();
    let runs = Arc::new(AtomicUsize::new(0));
    registry.register("count", Counting(runs.clone()));
    let job = db.create(NewJob::new("count", json!({}))).await;
    let now = Utc::now().timestamp_millis();
    let consumer = consumer(&db, registry, sqs_options(8));
    // Ten copies in one batch, then two more batches of five at once.
    let batch = |prefix: &str, n: usize| {
        event(
            (0..n)
                .map(|i| record(&format!("{prefix}-{i}"), &body_of(job, now + i as i64)))
                .collect(),
        )
    };
    let response = consumer.handle(batch("a", 10)).await;
    assert!(response.batch_item_failures.is_empty());
    let (b, c) = tokio::join!(consumer.handle(batch("b", 5)), consumer.handle(batch("c", 5)));
    assert!(b.batch_item_failures.is_empty() && c.batch_item_failures.is_empty());
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the handler ran once");
    assert_eq!(db.job(job).await.status, JobStatus::Completed);
    assert_eq!(db.events(job).await, ["created", "claimed", "completed"]);
}

/// Counts its runs.
#[derive(Debug)]
struct Counting(Arc<AtomicUsize>);

#[jobline::async_trait]
impl JobHandler for Counting {
    async fn run(&self, _ctx: JobContext) -> Result<HandlerOutput, HandlerError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok(HandlerOutput::json(json!({})))
    }
}

/// Tracks how many runs are in flight at once.
#[derive(Debug, Default)]
struct InFlight {
    now: AtomicUsize,
    max: AtomicUsize,
}

#[derive(Debug)]
struct Tracking(Arc<InFlight>);

#[jobline::async_trait]
impl JobHandler for Tracking {
    async fn run(&self, _ctx: JobContext) -> Result<HandlerOutput, HandlerError> {
        let n = self.0.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.0.max.fetch_max(n, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.0.now.fetch_sub(1, Ordering::SeqCst);
        Ok(HandlerOutput::json(json!({})))
    }
}

#[tokio::test]
async fn records_run_concurrently_up_to_the_bound() {
    let db = test_db().await;
    let flight = Arc::new(InFlight::default());
    let mut registry = Registry::new();
    registry.register("tracked", Tracking(flight.clone()));
    let mut records = Vec::new();
    for i in 0..12 {
        let id = db.create(NewJob::new("tracked", json!({}))).await;
        records.push(record(&format!("m-{i}"), &body_of(id, 0)));
    }
    let consumer = consumer(&db, registry, sqs_options(3));
    let started = std::time::Instant::now();
    let response = consumer.handle(event(records)).await;
    assert!(response.batch_item_failures.is_empty());
    let max = flight.max.load(Ordering::SeqCst);
    assert!(max <= 3, "at most 3 at once, saw {max}");
    assert!(max >= 2, "records ran concurrently, saw {max}");
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "12 runs of 100 ms, 3 at a time"
    );
}

/// The consumer's section of the one configuration, read from `vars`.
fn consumer_config(vars: &[(&str, &str)]) -> Result<ConsumerConfig, jobline::ConfigError> {
    jobline::Config::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()))
        .map(|c| c.consumer)
}

#[test]
fn the_consumer_section_is_read_with_the_configuration() {
    let defaults = consumer_config(&[]).expect("defaults");
    assert_eq!(defaults, ConsumerConfig::default());
    assert_eq!(defaults.concurrency, 8);
    let set = consumer_config(&[
        ("JOBLINE_CONSUMER_CONCURRENCY", " 3 "),
        ("SQS_QUEUE_URL", "https://sqs.eu-west-1.amazonaws.com/1/q"),
        ("AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:5000"),
    ])
    .expect("set");
    assert_eq!(set.concurrency, 3);
    assert_eq!(
        set.queue_url.as_deref(),
        Some("https://sqs.eu-west-1.amazonaws.com/1/q")
    );
    assert_eq!(set.endpoint_url.as_deref(), Some("http://127.0.0.1:5000"));
    for bad in ["0", "-1", "many", "100000"] {
        let err = consumer_config(&[("JOBLINE_CONSUMER_CONCURRENCY", bad)]).expect_err(bad);
        assert_eq!(err.var, "JOBLINE_CONSUMER_CONCURRENCY");
        assert!(err.to_string().contains("JOBLINE_CONSUMER_CONCURRENCY"), "{err}");
    }
}

#[tokio::test]
async fn queue_urls_come_from_the_event_source_arn_or_sqs_queue_url() {
    let arn = QueueArn::parse("arn:aws:sqs:eu-west-1:123456789012:jobs").expect("arn");
    assert_eq!(
        arn.url(None),
        "https://sqs.eu-west-1.amazonaws.com/123456789012/jobs"
    );
    assert_eq!(
        arn.url(Some("http://127.0.0.1:5000/")),
        "http://127.0.0.1:5000/123456789012/jobs"
    );
    assert_eq!(
        QueueArn::parse("arn:aws-cn:sqs:cn-north-1:1:q")
            .expect("cn")
            .url(None),
        "https://sqs.cn-north-1.amazonaws.com.cn/1/q"
    );
    assert_eq!(QueueArn::parse("arn:aws:sns:eu-west-1:1:topic"), None);
    assert_eq!(QueueArn::parse("nonsense"), None);

    let with = |queue_url: Option<&str>| {
        let processor = Processor::new(
            dummy_store(),
            Arc::new(Registry::new()),
            Duration::from_secs(1),
            "x",
        );
        Consumer::new(
            processor,
            sqs(),
            ConsumerConfig {
                concurrency: 1,
                queue_url: queue_url.map(str::to_owned),
                endpoint_url: None,
            },
        )
    };
    let rec = |arn: Option<&str>| {
        let mut r = record("m", "{}");
        r["eventSourceARN"] = arn.map_or(Value::Null, |a| Value::String(a.to_owned()));
        serde_json::from_value::<aws_lambda_events::event::sqs::SqsMessage>(r).expect("record")
    };
    let configured = "https://vpce-1.sqs.eu-west-1.vpce.amazonaws.com/123456789012/jobs";
    // The configured URL wins when it names the record's queue...
    assert_eq!(
        with(Some(configured)).queue_url_for(&rec(Some("arn:aws:sqs:eu-west-1:123456789012:jobs"))),
        Some(configured.to_owned())
    );
    // ...not for another queue's records, which map from their ARN...
    assert_eq!(
        with(Some(configured)).queue_url_for(&rec(Some("arn:aws:sqs:eu-west-1:123456789012:other"))),
        Some("https://sqs.eu-west-1.amazonaws.com/123456789012/other".to_owned())
    );
    // ...and it is the fallback without an ARN.
    assert_eq!(
        with(Some(configured)).queue_url_for(&rec(None)),
        Some(configured.to_owned())
    );
    assert_eq!(with(None).queue_url_for(&rec(None)), None);

    let d = delivery_of(&rec(None));
    assert_eq!(d.receipt, "fake-receipt-m");
    assert_eq!(d.receive_count, 1);
    assert_eq!(d.message, None, "`{{}}` is not a job message");
}

/// A store whose pool never connects (for tests that never reach it).
fn dummy_store() -> Store {
    let pool = pool::build(&PoolOptions::new("postgres://nobody@127.0.0.1:9/none", 1)).expect("pool");
    Store::new(pool, StoreSettings::default())
}

// ---------------------------------------------------------------------------
// The sweeper.

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
        lost.push(db.create_published(noop()).await);
    }
    db.advance(400);
    // t1 = t0 + 400: claims that go silent, rows nobody published, and
    // jobs that are fine.
    let mut stale = Vec::new();
    for _ in 0..n {
        let id = db.create_published(noop()).await;
        let ClaimByIdOutcome::Claimed(_) = db.store.claim_by_id("doomed", id).await.expect("claim") else {
            panic!("claimable")
        };
        stale.push(id);
    }
    let spent = db
        .create_published(NewJob {
            max_attempts: Some(1),
            ..noop()
        })
        .await;
    let ClaimByIdOutcome::Claimed(_) = db.store.claim_by_id("doomed", spent).await.expect("claim") else {
        panic!("claimable")
    };
    let mut orphans = Vec::new();
    for _ in 0..n {
        orphans.push(db.create(noop()).await);
    }
    let untouched = vec![
        // due, published recently
        db.create_published(noop()).await,
        // not due for an hour
        db.create_published(noop().schedule(Schedule::AfterSeconds(3600)))
            .await,
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
    }
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
            db.count_for("SELECT count(*) FROM outbox WHERE job_id = $1", *id)
                .await,
            1
        );
    }

    // Nobody consumes anything: each job is woken again once it has been
    // due and silent for 300 s. At t2 + 299 that is the job published at t1,
    // not those published at t2 (the woken, released and orphaned ones)...
    db.advance(299);
    assert_eq!(sweeper.sweep().await.expect("sweep").rewoken.rewoken, 1);
    assert_eq!(
        db.count_for("SELECT count(*) FROM outbox WHERE job_id = $1", s.untouched[0])
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
        sweep_once(&db.store, &a, &config),
        sweep_once(&db.store, &b, &config)
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
            db.count_for("SELECT count(*) FROM outbox WHERE job_id = $1", *id)
                .await,
            2
        );
        assert_eq!(
            db.count_for(
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
            db.count_for("SELECT count(*) FROM outbox WHERE job_id = $1", id)
                .await,
            1
        );
    }
}
