//! The consumer within its invocation's deadline: what cannot finish is not
//! started, what outlives its time is released, and the types it serves fit
//! the function's timeout (the template's defaults included).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use jobline::domain::{JobStatus, NewJob};
use jobline::testing::{TENANT, test_db};
use jobline::worker::{HandlerError, HandlerOutput, JobContext, JobHandler, OtherTypes, Processor, Registry};
use jobline_functions::consumer::{Consumer, ConsumerStartError, check_served_types};
use serde_json::json;

use crate::support::{body_of, event, failures, fresh_queue, receive_all, send, sqs, sqs_options};

/// Completes at once, but says it may take `timeout`.
struct TakesUpTo(Duration);

#[async_trait]
impl JobHandler for TakesUpTo {
    async fn run(&self, _ctx: JobContext) -> Result<HandlerOutput, HandlerError> {
        Ok(HandlerOutput::json(json!({})))
    }
    fn timeout(&self) -> Duration {
        self.0
    }
}

/// Blocks its thread past its own timeout (as blocking code in a handler
/// does: the runtime's timer cannot interrupt it).
struct Stubborn;

#[async_trait]
impl JobHandler for Stubborn {
    async fn run(&self, _ctx: JobContext) -> Result<HandlerOutput, HandlerError> {
        std::thread::sleep(Duration::from_secs(6));
        Ok(HandlerOutput::json(json!({})))
    }
    fn timeout(&self) -> Duration {
        Duration::from_secs(1)
    }
}

fn consumer_of(db: &jobline::testing::TestDb, registry: Registry, types: &[&str]) -> Consumer {
    let processor = Processor::new(
        db.store.clone(),
        Arc::new(registry),
        Duration::from_secs(1),
        "test-consumer",
    )
    .with_types(Some(types.iter().map(|t| (*t).to_owned()).collect()))
    .with_other_types(OtherTypes::Drop);
    Consumer::new(processor, sqs(), sqs_options(4))
}

#[tokio::test]
async fn a_job_that_cannot_finish_in_the_time_left_comes_back_unclaimed() {
    let db = test_db().await;
    let client = sqs();
    let (url, arn) = fresh_queue(&client, 30).await;
    let mut registry = Registry::new();
    registry.register("quick", TakesUpTo(Duration::from_secs(1)));
    registry.register("long", TakesUpTo(Duration::from_secs(30)));
    let consumer = consumer_of(&db, registry, &["quick", "long"]);

    let quick = db.job_for(TENANT, NewJob::new("quick", json!({}))).await.id;
    let long = db.job_for(TENANT, NewJob::new("long", json!({}))).await.id;
    let now = Utc::now().timestamp_millis();
    send(&client, &url, &body_of(quick, now)).await;
    send(&client, &url, &body_of(long, now)).await;
    let records = receive_all(&client, &url, &arn).await;
    assert_eq!(records.len(), 2);
    let long_record = records
        .iter()
        .find(|r| r["body"].as_str() == Some(body_of(long, now).as_str()))
        .expect("the long job's record")["messageId"]
        .as_str()
        .expect("id")
        .to_owned();

    // Ten seconds left: enough for `quick` (1 s + the margin), not for `long`.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let response = consumer.handle_until(event(records), Some(deadline)).await;

    assert_eq!(failures(&response), [long_record].into_iter().collect());
    assert_eq!(db.job(quick).await.status, JobStatus::Completed);
    let l = db.job(long).await;
    assert_eq!(
        (l.status, l.attempts),
        (JobStatus::Pending, 0),
        "no attempt spent"
    );
    assert_eq!(db.events(long).await, ["created"]);
    // Its visibility was set to zero: the queue hands it out again at once
    // (the queue's own timeout is 30 s), to an invocation with time.
    let again = receive_all(&client, &url, &arn).await;
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0]["body"].as_str(), Some(body_of(long, now).as_str()));

    // With the whole timeout ahead, the same record runs.
    let response = consumer
        .handle_until(
            event(again),
            Some(tokio::time::Instant::now() + Duration::from_secs(60)),
        )
        .await;
    assert!(failures(&response).is_empty());
    assert_eq!(db.job(long).await.status, JobStatus::Completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_still_running_just_before_the_deadline_is_released_not_frozen() {
    let db = test_db().await;
    let client = sqs();
    let (url, arn) = fresh_queue(&client, 30).await;
    let mut registry = Registry::new();
    registry.register("stubborn", Stubborn);
    let consumer = consumer_of(&db, registry, &["stubborn"]);
    let job = db.job_for(TENANT, NewJob::new("stubborn", json!({}))).await.id;
    send(&client, &url, &body_of(job, Utc::now().timestamp_millis())).await;
    let records = receive_all(&client, &url, &arn).await;

    // 1 s of handler timeout + 5 s of margin fit in 7 s: it starts; it then
    // blocks for 6 s, past the release point (4 s before the deadline).
    let started = tokio::time::Instant::now();
    let deadline = started + Duration::from_secs(7);
    let response = consumer.handle_until(event(records), Some(deadline)).await;

    assert!(
        started.elapsed() < Duration::from_millis(5800),
        "answered before the handler returned and before the deadline: {:?}",
        started.elapsed()
    );
    assert_eq!(failures(&response).len(), 1, "the record comes back");
    let j = db.job(job).await;
    assert_eq!(
        (j.status, j.attempts, j.error_code.as_deref()),
        (JobStatus::Pending, 1, Some("DEADLINE")),
        "released at once, not left processing for the heartbeat timeout"
    );
}

#[tokio::test]
async fn a_message_for_a_type_edge_workers_serve_is_dropped_and_the_job_left_alone() {
    let db = test_db().await;
    let mut registry = Registry::new();
    registry.register("quick", TakesUpTo(Duration::from_secs(1)));
    let consumer = consumer_of(&db, registry, &["quick"]);
    let job = db
        .job_for(TENANT, NewJob::new("story_script", json!({})))
        .await
        .id;
    let record = crate::support::record("m-1", &body_of(job, Utc::now().timestamp_millis()));

    let response = consumer
        .handle_until(
            event(vec![record]),
            Some(tokio::time::Instant::now() + Duration::from_secs(60)),
        )
        .await;

    assert!(
        failures(&response).is_empty(),
        "not returned to spend its receives"
    );
    let j = db.job(job).await;
    assert_eq!((j.status, j.attempts), (JobStatus::Pending, 0));
}

fn production_processor(db: &jobline::testing::TestDb, types: Option<&str>) -> Processor {
    let mut pairs = vec![("DATABASE_URL", db.url.clone())];
    if let Some(t) = types {
        pairs.push(("JOBLINE_JOB_TYPES", t.to_owned()));
    }
    let config =
        jobline::Config::from_lookup(|name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone()))
            .expect("config");
    jobline::app::processor(&config, db.store.clone(), "check").with_types(config.job_types.clone())
}

#[tokio::test]
async fn a_type_whose_handler_outlasts_the_function_stops_the_cold_start() {
    let db = test_db().await;
    let all = production_processor(&db, None);
    let err = check_served_types(&all, Duration::from_secs(60)).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ConsumerStartError::TypesDoNotFit(_)));
    assert!(text.contains("story_script may take 150 s"), "{text}");
    assert!(text.contains("sleep may take 900 s"), "{text}");
    assert!(!text.contains("webhook"), "{text}");

    let lambda = production_processor(&db, Some("noop,fail,webhook"));
    check_served_types(&lambda, Duration::from_secs(60)).expect("they fit the default timeout");
    // The boundary: webhook's 25 s + 5 s of margin would end exactly at a
    // 30 s timeout, leaving no time to start; an invocation could never
    // claim it, so the check refuses it.
    let err = check_served_types(&lambda, Duration::from_secs(30)).unwrap_err();
    assert!(err.to_string().contains("webhook may take 25 s"), "{err}");
    check_served_types(&lambda, Duration::from_secs(32)).expect("25 + 5 + 2 fits 32");
    let story = production_processor(&db, Some("story_script"));
    check_served_types(&story, Duration::from_secs(300)).expect("fits 300 s");

    let unknown = production_processor(&db, Some("noop,transcode"));
    let err = check_served_types(&unknown, Duration::from_secs(60)).unwrap_err();
    assert!(err.to_string().contains("transcode has no handler"), "{err}");
}

/// The `Default:` of a parameter of template.yaml.
fn parameter_default<'a>(template: &'a str, name: &str) -> &'a str {
    let start = template
        .find(&format!("\n  {name}:\n"))
        .unwrap_or_else(|| panic!("parameter {name}"));
    template[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with("    "))
        .find_map(|l| l.trim().strip_prefix("Default: "))
        .unwrap_or_else(|| panic!("no Default for {name}"))
}

#[tokio::test]
async fn the_template_s_consumer_types_fit_every_timeout_it_allows() {
    let template = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml"))
        .expect("template.yaml");
    // The consumer is told what it serves and the time it has.
    let consumer = &template[template.find("\n  SqsConsumerFunction:\n").expect("consumer")..];
    let consumer = &consumer[..consumer[1..].find("\n  SqsConsumerRole:").expect("end")];
    assert!(consumer.contains("JOBLINE_JOB_TYPES: !Ref ConsumerJobTypes"));
    assert!(consumer.contains("JOBLINE_CONSUMER_TIMEOUT_SECONDS: !Ref ConsumerTimeoutSeconds"));
    assert!(consumer.contains("Timeout: !Ref ConsumerTimeoutSeconds"));

    let types = parameter_default(&template, "ConsumerJobTypes");
    let db = test_db().await;
    let processor = production_processor(&db, Some(types));
    let allowed = template[template.find("\n  ConsumerTimeoutSeconds:\n").expect("param")..]
        .lines()
        .find_map(|l| l.trim().strip_prefix("AllowedValues: "))
        .expect("AllowedValues");
    let shortest: u64 = allowed
        .trim_matches(['[', ']'])
        .split(',')
        .map(|v| v.trim().parse::<u64>().expect("a number"))
        .min()
        .expect("values");
    check_served_types(&processor, Duration::from_secs(shortest))
        .unwrap_or_else(|e| panic!("ConsumerJobTypes={types} with ConsumerTimeoutSeconds={shortest}: {e}"));
}
