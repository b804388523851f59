//! The full path for every adapter: create over HTTP → publish → a worker
//! consumes → completed, with the timeline to show for it.

use std::time::Duration;

use jobline::worker::WorkerOptions;
use jobline::worker::runner::run;
use reqwest::Method;
use serde_json::json;
use tokio::sync::watch;

use crate::support::{TestApi, send, test_api_on};

async fn create_and_complete(api: TestApi) {
    let (status, job) = send(
        api.admin(Method::POST, "/v1/jobs")
            .json(&json!({"type": "sleep", "payload": {"ms": 5}})),
    )
    .await;
    assert_eq!(status, 201, "{job}");
    let id = uuid::Uuid::parse_str(job["id"].as_str().expect("id")).expect("uuid");
    // Built as every consumer builds it: one call from the configuration.
    let processor = jobline::app::processor(&api.config, api.db.store.clone(), "pipeline-worker");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_tx, rx) = watch::channel(false);
        let options = WorkerOptions {
            once: true,
            poll_interval: Duration::from_millis(200),
            ..WorkerOptions::default()
        };
        run(processor.clone(), api.feed.clone(), options, rx).await;
        let now = api.db.store.get_any(id).await.expect("get").expect("found");
        if now.status == jobline::JobStatus::Completed {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not completed in time: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        api.db.events(id).await,
        ["created", "published", "claimed", "completed"]
    );
}

#[tokio::test]
async fn postgres_create_publish_consume_complete() {
    create_and_complete(test_api_on("postgres").await).await;
}

#[tokio::test]
async fn sqs_create_publish_consume_complete() {
    create_and_complete(test_api_on("sqs").await).await;
}

#[tokio::test]
async fn redis_create_publish_consume_complete() {
    create_and_complete(test_api_on("redis").await).await;
}

#[tokio::test]
async fn upstash_create_publish_consume_complete() {
    create_and_complete(test_api_on("upstash").await).await;
}
