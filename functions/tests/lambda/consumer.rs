//! The consumer.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::Utc;
use jobline::config::ConsumerConfig;
use jobline::domain::job::Schedule;
use jobline::domain::{JobStatus, NewJob};
use jobline::store::pool::{self, PoolOptions};
use jobline::store::{Store, StoreSettings};
use jobline::testing::{TENANT, test_db};
use jobline::worker::{
    Disposition, HandlerError, HandlerOutput, JobContext, JobHandler, Processor, Registry,
};
use jobline_functions::consumer::{Consumer, QueueArn, delivery_of};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{
    body_of, consumer, event, failures, fresh_queue, noop, receive_all, record, send, sqs, sqs_options,
};

#[tokio::test]
async fn a_batch_names_only_the_records_that_should_come_back() {
    let db = test_db().await;
    let client = sqs();
    let (url, arn) = fresh_queue(&client, 1).await;

    let done = db.noop_for(TENANT).await.id;
    let later = db
        .job_for(TENANT, noop().schedule(Schedule::AfterSeconds(120)))
        .await
        .id;
    let flaky = db.job_for(TENANT, NewJob::new("fail", json!({}))).await.id;
    let doomed = db
        .job_for(TENANT, NewJob::new("fail", json!({ "permanent": true })))
        .await
        .id;
    let twice = db.noop_for(TENANT).await.id;
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

    // The visibility change is real: the records nobody deleted come back
    // after the queue's own timeout (1 s), and `flaky` after its retry delay
    // (1 to 2 s, set in the same pass as `later`'s 120 s), but `later` stays
    // hidden. Each look ends with an empty long poll of 1 s: `later` is
    // watched for 1 s more after the last of them is back.
    let back = ["done", "doomed", "poison", "missing", "flaky"];
    let mut visible: HashSet<String> = HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !back.iter().all(|a| visible.contains(&bodies[a])) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not all of {back:?} came back: {visible:?}"
        );
        visible.extend(
            receive_all(&client, &url, &arn)
                .await
                .iter()
                .map(|r| r["body"].as_str().expect("body").to_owned()),
        );
        assert!(
            !visible.contains(&bodies["later"]),
            "the not-yet-due record is held back 120 s"
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
    let done = db.noop_for(TENANT).await.id;
    let later = db
        .job_for(TENANT, noop().schedule(Schedule::AfterSeconds(120)))
        .await
        .id;
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
    let done = db.noop_for(TENANT).await.id;
    let later = db
        .job_for(TENANT, noop().schedule(Schedule::AfterSeconds(60)))
        .await
        .id;
    let flaky = db
        .job_for(TENANT, NewJob::new("fail", json!({ "times": 1 })))
        .await
        .id;
    let doomed = db
        .job_for(TENANT, NewJob::new("fail", json!({ "permanent": true })))
        .await
        .id;
    let twice = db.noop_for(TENANT).await.id;
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
        ..ConsumerConfig::default()
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
    let job = db.job_for(TENANT, NewJob::new("count", json!({}))).await.id;
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
        // The work: the run lasts while the other copies try (not a wait).
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
        // The work, and the test's measure: 12 runs of 100 ms, 3 at a time,
        // take at least 400 ms (not a wait for anything).
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
        let id = db.job_for(TENANT, NewJob::new("tracked", json!({}))).await.id;
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
    assert_eq!(defaults.concurrency, 10);
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
                ..ConsumerConfig::default()
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

#[tokio::test]
async fn a_clean_batch_of_ten_records_costs_at_most_three_statements() {
    let db = test_db().await;
    db.client
        .batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .await
        .expect("pg_stat_statements");
    let consumer = consumer(&db, jobline::handlers::builtins(), sqs_options(10));
    let now = Utc::now().timestamp_millis();
    let batch = |jobs: &[Uuid]| {
        event(
            jobs.iter()
                .enumerate()
                .map(|(i, id)| record(&format!("m-{i}"), &body_of(*id, now)))
                .collect(),
        )
    };
    let ten = |db: &jobline::testing::TestDb| {
        let store = db.store.clone();
        async move {
            let news: Vec<NewJob> = (0..10).map(|_| noop()).collect();
            let created = store.create_many(TENANT, "test", news).await.expect("create");
            created.iter().map(|c| c.job.id).collect::<Vec<Uuid>>()
        }
    };
    // A first batch opens the pool's connections and prepares the statements.
    let warm = ten(&db).await;
    assert!(consumer.handle(batch(&warm)).await.batch_item_failures.is_empty());
    let jobs = ten(&db).await;
    let this_db = "(SELECT oid FROM pg_database WHERE datname = current_database())";
    db.client
        .batch_execute(&format!("SELECT pg_stat_statements_reset(0, {this_db}, 0)"))
        .await
        .expect("reset (pg_stat_statements must be preloaded: scripts/test sets JOBLINE_PG_STATEMENTS=1)");
    let response = consumer.handle(batch(&jobs)).await;
    assert!(response.batch_item_failures.is_empty());
    let rows = db
        .client
        .query(
            &format!(
                "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 60), calls FROM pg_stat_statements
                 WHERE dbid = {this_db} AND toplevel AND query NOT LIKE '%pg_stat_statements%'"
            ),
            &[],
        )
        .await
        .expect("pg_stat_statements (preloaded by scripts/test: JOBLINE_PG_STATEMENTS=1)");
    // Top-level only: what the consumer sends. The `job_counts` triggers'
    // statements run inside those (pg-up tracks nested statements too).
    let seen: Vec<(String, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let statements: i64 = seen.iter().map(|(_, n)| n).sum();
    eprintln!("{statements} statements for 10 records: {seen:?}");
    assert!(
        statements <= 3,
        "{statements} statements for 10 records (at most 0.3 per record): {seen:#?}"
    );
    for id in &jobs {
        assert_eq!(db.job(*id).await.status, JobStatus::Completed);
        assert_eq!(db.events(*id).await, ["created", "claimed", "completed"]);
    }
}

#[tokio::test]
async fn a_record_that_waited_a_heartbeat_interval_for_a_slot_is_handed_back_unstarted() {
    let db = test_db().await;
    // One slot, heartbeats every second, jobs of 1.2 s: the second record's
    // claim waits past an interval unrenewed.
    let consumer = consumer(&db, jobline::handlers::builtins(), sqs_options(1));
    let news: Vec<NewJob> = (0..2)
        .map(|_| NewJob::new("sleep", json!({"ms": 1200})))
        .collect();
    let created = db.store.create_many(TENANT, "test", news).await.expect("create");
    let (first, second) = (created[0].job.id, created[1].job.id);
    let now = Utc::now().timestamp_millis();
    let response = consumer
        .handle(event(vec![
            record("m-1", &body_of(first, now)),
            record("m-2", &body_of(second, now)),
        ]))
        .await;
    assert_eq!(
        failures(&response),
        HashSet::from(["m-2".to_owned()]),
        "its message comes back"
    );
    assert_eq!(db.job(first).await.status, JobStatus::Completed);
    let back = db.job(second).await;
    assert_eq!(
        (back.status, back.attempts),
        (JobStatus::Pending, 0),
        "no attempt spent"
    );
    assert_eq!(db.events(second).await, ["created", "claimed", "handed_back"]);
    let outbox_rows: i64 = db
        .client
        .query_one("SELECT count(*) FROM outbox WHERE job_id = $1", &[&second])
        .await
        .expect("count")
        .get(0);
    assert_eq!(
        outbox_rows, 1,
        "its record comes back: no second message (only the create's row)"
    );
}
