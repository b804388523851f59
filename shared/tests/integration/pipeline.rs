//! The full path for every adapter: create over HTTP → publish → a worker
//! consumes → completed, with the timeline to show for it.

use std::time::Duration;

use jobline::worker::WorkerOptions;
use jobline::worker::runner::run;
use reqwest::Method;
use serde_json::json;
use tokio::sync::watch;

use crate::support::{TestApi, send, test_api_with};

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

fn unique_queue() -> String {
    format!("t_{}", uuid::Uuid::new_v4().simple())
}

#[tokio::test]
async fn postgres_create_publish_consume_complete() {
    let api = test_api_with(&[("JOBLINE_QUEUE", "postgres")]).await;
    assert_eq!(api.state.enqueuer.publisher().queue().kind(), "postgres");
    create_and_complete(api).await;
}

#[tokio::test]
async fn sqs_create_publish_consume_complete() {
    let (url, _) = crate::queue_sqs::fresh_queue(&crate::queue_sqs::client(), 30, 10).await;
    let api = test_api_with(&[("JOBLINE_QUEUE", "sqs"), ("SQS_QUEUE_URL", &url)]).await;
    assert_eq!(api.state.enqueuer.publisher().queue().kind(), "sqs");
    create_and_complete(api).await;
}

#[tokio::test]
async fn redis_create_publish_consume_complete() {
    let url = std::env::var("REDIS_URL").expect("REDIS_URL: run scripts/test");
    let name = unique_queue();
    let api = test_api_with(&[
        ("JOBLINE_QUEUE", "redis"),
        ("REDIS_URL", &url),
        ("JOBLINE_QUEUE_NAME", &name),
    ])
    .await;
    assert_eq!(api.state.enqueuer.publisher().queue().kind(), "redis");
    create_and_complete(api).await;
}

#[tokio::test]
async fn upstash_create_publish_consume_complete() {
    let url = std::env::var("UPSTASH_REDIS_REST_URL").expect("UPSTASH_REDIS_REST_URL: run scripts/test");
    let token = std::env::var("UPSTASH_REDIS_REST_TOKEN").expect("token");
    let name = unique_queue();
    let api = test_api_with(&[
        ("JOBLINE_QUEUE", "upstash"),
        ("UPSTASH_REDIS_REST_URL", &url),
        ("UPSTASH_REDIS_REST_TOKEN", &token),
        ("JOBLINE_QUEUE_NAME", &name),
    ])
    .await;
    assert_eq!(api.state.enqueuer.publisher().queue().kind(), "upstash");
    create_and_complete(api).await;
}
