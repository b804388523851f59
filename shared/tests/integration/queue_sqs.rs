//! The `sqs` adapter against moto's SQS server (started by scripts/test).

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::Client;
use jobline::queue::sqs::SqsQueue;
use jobline::queue::{Broker, Message, Outgoing, Queue};
use uuid::Uuid;

use crate::queue_contract::{Subject, receive_until};

pub use jobline::testing::sqs_client as client;

/// A fresh queue with a dead-letter queue after `max_receives` receives:
/// its URL and the dead-letter queue's.
pub async fn fresh_queue(client: &Client, visibility_secs: u32, max_receives: u32) -> (String, String) {
    let q = jobline::testing::fresh_sqs_queue(client, visibility_secs, max_receives).await;
    (q.url, q.dlq_url)
}

async fn subject() -> Subject {
    let client = client();
    let (url, _) = fresh_queue(&client, 2, 10).await;
    let raw_client = client.clone();
    let raw_url = url.clone();
    Subject {
        queue: Arc::new(SqsQueue::with_client(client, url)),
        inject_raw: Box::new(move |body| {
            let (c, u) = (raw_client.clone(), raw_url.clone());
            Box::pin(async move {
                c.send_message()
                    .queue_url(u)
                    .message_body(body)
                    .send()
                    .await
                    .expect("send raw");
            })
        }),
        redelivery_within: Duration::from_secs(3),
        bury_consumer: Box::new(|_| Box::pin(async {})),
    }
}

crate::contract_tests!(subject);

#[tokio::test]
async fn batches_larger_than_ten_are_sent_in_chunks() {
    let client = client();
    let (url, _) = fresh_queue(&client, 30, 10).await;
    let q = SqsQueue::with_client(client, url);
    let out: Vec<Outgoing> = (0..25)
        .map(|_| Outgoing {
            message: Message::new(Uuid::now_v7(), chrono::Utc::now()),
            delay: Duration::ZERO,
        })
        .collect();
    q.publish(&out).await.expect("publish 25");
    let got = receive_until(&q, "c", 25, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 25);
}

#[tokio::test]
async fn a_message_received_too_often_moves_to_the_dead_letter_queue() {
    let client = client();
    let (url, dlq_url) = fresh_queue(&client, 30, 2).await;
    let q = SqsQueue::with_client(client.clone(), url);
    let id = Uuid::now_v7();
    q.publish(&[Outgoing {
        message: Message::new(id, chrono::Utc::now()),
        delay: Duration::ZERO,
    }])
    .await
    .expect("publish");
    for round in 1..=2 {
        let got = receive_until(&q, "c", 1, Duration::from_secs(10)).await;
        assert_eq!(got.len(), 1, "round {round}");
        assert_eq!(got[0].receive_count, round);
        q.nack("c", &got[0], Duration::ZERO).await.expect("nack");
    }
    let dlq = SqsQueue::with_client(client, dlq_url);
    let mut dead = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while dead.is_empty() && tokio::time::Instant::now() < deadline {
        // SQS moves it on the receive after maxReceiveCount.
        assert!(
            q.receive("c", 1, Duration::from_millis(200))
                .await
                .expect("receive")
                .is_empty()
        );
        dead = dlq
            .receive("ops", 1, Duration::from_secs(1))
            .await
            .expect("receive dlq");
    }
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].message.map(|m| m.job_id), Some(id));
}

#[tokio::test]
async fn a_missing_queue_is_a_configuration_error() {
    let q = SqsQueue::with_client(client(), "http://127.0.0.1:1/000000000000/missing");
    let moto = std::env::var("AWS_ENDPOINT_URL_SQS").expect("endpoint");
    let missing = SqsQueue::with_client(
        client(),
        format!("{moto}/123456789012/no_such_queue_{}", Uuid::new_v4().simple()),
    );
    assert!(matches!(
        missing.check().await,
        Err(jobline::queue::QueueError::Misconfigured(_))
    ));
    assert!(q.check().await.is_err());
}

/// SQS with a fault: the connection drops after the first chunk of ten
/// (everything else is the real adapter on moto).
#[derive(Debug)]
struct FailsAfterFirstChunk(SqsQueue);

#[jobline::async_trait]
impl Queue for FailsAfterFirstChunk {
    fn kind(&self) -> &'static str {
        "sqs"
    }
    fn max_delay(&self) -> Duration {
        self.0.max_delay()
    }
    async fn publish(&self, messages: &[Outgoing]) -> Result<(), jobline::queue::PublishError> {
        self.0.publish(&messages[..10]).await?;
        Err(jobline::queue::PublishError {
            error: jobline::queue::QueueError::Unavailable("injected: connection reset".into()),
            sent: 10,
        })
    }
    async fn check(&self) -> Result<(), jobline::queue::QueueError> {
        self.0.check().await
    }
}

#[tokio::test]
async fn a_publish_that_fails_part_way_marks_only_the_unsent_rows_failed() {
    let db = crate::support::test_db().await;
    let news: Vec<jobline::NewJob> = (0..25)
        .map(|i| jobline::NewJob::new("noop", serde_json::json!({ "i": i })))
        .collect();
    let created = db.store.create_many("acme", "test", news).await.expect("create");
    let client = client();
    let (url, _) = fresh_queue(&client, 30, 10).await;
    let publisher = jobline::queue::Publisher::new(
        db.store.clone(),
        Arc::new(FailsAfterFirstChunk(SqsQueue::with_client(
            client.clone(),
            url.clone(),
        ))),
        "api",
    );
    let outcome = publisher.publish_created(&created).await;
    assert_eq!((outcome.published, outcome.failed), (10, 15), "{outcome:?}");
    assert_eq!(
        db.count("SELECT count(*) FROM outbox WHERE status = 'sent'")
            .await,
        10
    );
    assert_eq!(
        db.count("SELECT count(*) FROM outbox WHERE status = 'failed'")
            .await,
        15
    );
    let sent_first: Vec<Uuid> = created[..10].iter().map(|c| c.job.id).collect();
    let got = receive_until(
        &SqsQueue::with_client(client, url),
        "w",
        10,
        Duration::from_secs(8),
    )
    .await;
    let mut ids: Vec<Uuid> = got.iter().filter_map(|d| d.message.map(|m| m.job_id)).collect();
    ids.sort();
    let mut want = sent_first.clone();
    want.sort();
    assert_eq!(ids, want, "the first chunk is out, and marked sent");
}
