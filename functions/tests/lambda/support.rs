//! The test bed of these tests: `jobline::testing`, plus SQS (moto) and
//! Lambda-event helpers.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use jobline::config::ConsumerConfig;
use jobline::domain::NewJob;
use jobline::queue::Message;
use jobline::testing::TestDb;
use jobline::worker::{Processor, Registry};
use jobline_functions::consumer::Consumer;
use serde_json::{Value, json};
use uuid::Uuid;

pub(crate) fn noop() -> NewJob {
    NewJob::new("noop", json!({}))
}

// SQS (moto).

pub(crate) fn sqs() -> Client {
    jobline::testing::sqs_client()
}

fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL_SQS").expect("AWS_ENDPOINT_URL_SQS")
}

/// A fresh queue; its URL and ARN.
pub(crate) async fn fresh_queue(client: &Client, visibility_secs: u32) -> (String, String) {
    let q = jobline::testing::fresh_sqs_queue(client, visibility_secs, 10).await;
    (q.url, q.arn)
}

pub(crate) async fn send(client: &Client, url: &str, body: &str) {
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
pub(crate) async fn receive_all(client: &Client, url: &str, arn: &str) -> Vec<Value> {
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

pub(crate) fn event(records: Vec<Value>) -> SqsEvent {
    serde_json::from_value(json!({ "Records": records })).expect("an SqsEvent")
}

/// A record the way Lambda sends it, for tests that never talk to SQS.
pub(crate) fn record(message_id: &str, body: &str) -> Value {
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

pub(crate) fn body_of(id: Uuid, at_ms: i64) -> String {
    serde_json::to_string(&Message {
        job_id: id,
        timestamp: at_ms,
    })
    .expect("json")
}

pub(crate) fn consumer(db: &TestDb, registry: Registry, options: ConsumerConfig) -> Consumer {
    let processor = Processor::new(
        db.store.clone(),
        Arc::new(registry),
        Duration::from_secs(1),
        "test-consumer",
    );
    Consumer::new(processor, sqs(), options)
}

pub(crate) fn sqs_options(concurrency: usize) -> ConsumerConfig {
    ConsumerConfig {
        concurrency,
        queue_url: None,
        endpoint_url: Some(endpoint()),
        ..ConsumerConfig::default()
    }
}

pub(crate) fn failures(response: &SqsBatchResponse) -> HashSet<String> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}
