//! The `upstash` adapter against the Upstash-REST-compatible fixture over a
//! real redis-server (both started by scripts/upstash-rest-up): the adapter
//! contract, the layout (read with a plain Redis connection), interoperation
//! with the `redis` adapter, missing keys; and, against a small stand-in
//! HTTP server that counts requests, retries of 5xx and network errors and
//! the refused token.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::post;
use jobline::queue::upstash::{UpstashOptions, UpstashQueue};
use jobline::queue::{Broker, Message, Outgoing, Queue, QueueError};
use tokio::time::Instant;
use uuid::Uuid;

use crate::queue_contract::{Subject, receive_until};
use crate::queue_redis::{self, body, fresh_name, lrange, now, plain};

fn rest_env() -> (String, String) {
    let get = |k: &str| {
        std::env::var(k).unwrap_or_else(|_| {
            panic!(
                "{k} is not set: run the suite with scripts/test \
                 (or eval \"$(scripts/upstash-rest-up)\" first)"
            )
        })
    };
    (get("UPSTASH_REDIS_REST_URL"), get("UPSTASH_REDIS_REST_TOKEN"))
}

fn options() -> UpstashOptions {
    UpstashOptions {
        consumer_ttl: Duration::from_secs(5),
        ..UpstashOptions::default()
    }
}

fn queue(name: &str) -> UpstashQueue {
    let (url, token) = rest_env();
    UpstashQueue::new(&url, &token, name, options()).expect("upstash queue")
}

/// One command straight to the REST endpoint.
async fn rest(http: &reqwest::Client, args: &[&str]) -> serde_json::Value {
    let (url, token) = rest_env();
    let resp = http
        .post(&url)
        .bearer_auth(token)
        .json(&args)
        .send()
        .await
        .expect("REST request");
    assert!(resp.status().is_success(), "{args:?}: {}", resp.status());
    resp.json().await.expect("REST reply")
}

async fn subject() -> Subject {
    let name = fresh_name();
    let http = reqwest::Client::new();
    let (inject_http, inject_name) = (http.clone(), name.clone());
    let (bury_http, bury_name) = (http, name.clone());
    Subject {
        queue: Arc::new(queue(&name)),
        inject_raw: Box::new(move |raw| {
            let (h, n) = (inject_http.clone(), inject_name.clone());
            Box::pin(async move {
                rest(&h, &["LPUSH", &n, &raw]).await;
            })
        }),
        redelivery_within: Duration::from_secs(1),
        bury_consumer: Box::new(move |consumer| {
            let (h, n) = (bury_http.clone(), bury_name.clone());
            Box::pin(async move {
                rest(&h, &["DEL", &format!("{n}:consumer:{consumer}")]).await;
            })
        }),
    }
}

crate::contract_tests!(subject);

#[tokio::test]
async fn published_messages_sit_in_the_list_as_json_strings() {
    let name = fresh_name();
    queue_redis::layout_is_what_operators_see(&queue(&name), &name).await;
}

#[tokio::test]
async fn missing_keys_mid_flight_are_recreated_not_fatal() {
    let name = fresh_name();
    queue_redis::missing_keys_are_recreated(&queue(&name), &name).await;
}

#[tokio::test]
async fn a_key_of_the_wrong_type_is_a_configuration_error() {
    let name = fresh_name();
    queue_redis::a_foreign_key_is_misconfigured(&queue(&name), &name).await;
}

#[tokio::test]
async fn a_flushed_script_cache_is_not_an_error() {
    queue_redis::a_flushed_script_cache_is_refilled(&queue(&fresh_name())).await;
}

#[tokio::test]
async fn the_redis_and_upstash_adapters_share_one_queue() {
    let name = fresh_name();
    let rest_q = queue(&name);
    let native = queue_redis::queue(&name).await;
    let mut r = plain().await;

    // Published natively (one now, one delayed), taken over REST.
    let (a, b) = (now(Uuid::now_v7()), now(Uuid::now_v7()));
    let b_later = Outgoing {
        delay: Duration::from_millis(500),
        ..b
    };
    native.publish(&[a, b_later]).await.expect("publish (redis)");
    let got = receive_until(&rest_q, "rest", 2, Duration::from_secs(10)).await;
    assert_eq!(
        got.iter().map(|d| d.raw.clone()).collect::<Vec<_>>(),
        [body(&a), body(&b)]
    );
    for d in &got {
        rest_q.ack("rest", d).await.expect("ack (upstash)");
    }

    // Published over REST, nacked natively, counted across both.
    let c = now(Uuid::now_v7());
    rest_q.publish(&[c]).await.expect("publish (upstash)");
    let first = receive_until(&native, "native", 1, Duration::from_secs(10)).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].receive_count, 1);
    native
        .nack("native", &first[0], Duration::ZERO)
        .await
        .expect("nack (redis)");
    let second = receive_until(&rest_q, "rest", 1, Duration::from_secs(10)).await;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].raw, body(&c));
    assert_eq!(second[0].receive_count, 2);

    // Taken over REST by a consumer that dies; recovered natively.
    let _: i64 = queue_redis::run(&mut r, &["DEL", &format!("{name}:consumer:rest")]).await;
    assert_eq!(native.recover().await.expect("recover (redis)"), 1);
    let third = receive_until(&native, "native", 1, Duration::from_secs(10)).await;
    assert_eq!(third.len(), 1);
    assert_eq!(third[0].receive_count, 3);
    native.ack("native", &third[0]).await.expect("ack (redis)");
    let left: i64 = queue_redis::run(&mut r, &["EXISTS", &name, &format!("{name}:receives")]).await;
    assert_eq!(left, 0);
    assert!(
        lrange(&mut r, &format!("{name}:processing:native"))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn a_refused_token_is_a_configuration_error_at_once() {
    let (url, _) = rest_env();
    let q = UpstashQueue::new(&url, "not-the-token", &fresh_name(), options()).expect("queue");
    let started = Instant::now();
    let err = q.check().await.expect_err("refused");
    assert!(
        matches!(&err, QueueError::Misconfigured(m) if m.contains("401") && m.contains("token")),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let err = q
        .publish(&[now(Uuid::now_v7())])
        .await
        .expect_err("refused")
        .error;
    assert!(matches!(err, QueueError::Misconfigured(_)), "{err:?}");
}

#[tokio::test]
async fn a_long_wait_is_cut_into_blocks_under_the_http_timeout() {
    let (url, token) = rest_env();
    let name = fresh_name();
    let q = UpstashQueue::new(
        &url,
        &token,
        &name,
        UpstashOptions {
            http_timeout: Duration::from_secs(1),
            max_block: Duration::from_secs(30),
            ..options()
        },
    )
    .expect("queue");
    // Empty all along: a 2.5 s wait is several blocking requests, none of
    // which may outlast the 1 s HTTP timeout.
    let started = Instant::now();
    let got = q
        .receive("c", 1, Duration::from_millis(2500))
        .await
        .expect("no timeout");
    assert!(got.is_empty());
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(2400) && took < Duration::from_secs(5),
        "{took:?}"
    );

    // And one that arrives meanwhile is taken by the block waiting for it.
    let publisher = queue(&name);
    let id = Uuid::now_v7();
    let waiter = tokio::spawn(async move { q.receive("c", 1, Duration::from_secs(10)).await });
    publisher.publish(&[now(id)]).await.expect("publish");
    let got = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("woke")
        .expect("task")
        .expect("receive");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message.map(|m| m.job_id), Some(id));
}

/// A request the stand-in server received.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    authorization: Option<String>,
    body: String,
}

/// A stand-in for the REST server: answers each request with the next of
/// `replies` (the last one repeats) and records what it was sent.
struct StandIn {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

#[derive(Clone)]
struct StandInState {
    replies: Arc<Vec<(u16, &'static str)>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

async fn answer(
    State(s): State<StandInState>,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let n = {
        let mut seen = s.seen.lock().expect("lock");
        seen.push(Seen {
            path: uri.path().to_owned(),
            authorization: auth,
            body,
        });
        seen.len()
    };
    let (status, reply) = s.replies[(n - 1).min(s.replies.len() - 1)];
    (StatusCode::from_u16(status).expect("status"), reply.to_owned())
}

async fn stand_in(replies: Vec<(u16, &'static str)>) -> StandIn {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let state = StandInState {
        replies: Arc::new(replies),
        seen: seen.clone(),
    };
    let app = axum::Router::new()
        .route("/", post(answer))
        .route("/pipeline", post(answer))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    StandIn { url, seen }
}

fn fast_retries() -> UpstashOptions {
    UpstashOptions {
        attempts: 4,
        backoff: Duration::from_millis(20),
        http_timeout: Duration::from_secs(2),
        ..options()
    }
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff() {
    let server = stand_in(vec![
        (503, r#"{"error":"busy"}"#),
        (502, "bad gateway"),
        (200, r#"{"result":"PONG"}"#),
    ])
    .await;
    let q = UpstashQueue::new(&server.url, "tok", &fresh_name(), fast_retries()).expect("queue");
    q.check().await.expect("the third attempt succeeds");
    let seen = server.seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 3);
    for request in &seen {
        assert_eq!(request.path, "/");
        assert_eq!(request.authorization.as_deref(), Some("Bearer tok"));
        assert_eq!(request.body, r#"["PING"]"#);
    }
}

#[tokio::test]
async fn persistent_server_errors_give_up_after_the_attempts() {
    let server = stand_in(vec![(500, r#"{"error":"ERR down"}"#)]).await;
    let q = UpstashQueue::new(&server.url, "tok", &fresh_name(), fast_retries()).expect("queue");
    let err = q.publish(&[now(Uuid::now_v7())]).await.expect_err("down").error;
    assert!(
        matches!(&err, QueueError::Unavailable(m) if m.contains("500")),
        "{err:?}"
    );
    assert_eq!(server.seen.lock().expect("lock").len(), 4);
}

#[tokio::test]
async fn a_refused_token_is_not_retried() {
    let server = stand_in(vec![(401, r#"{"error":"Unauthorized"}"#)]).await;
    let q = UpstashQueue::new(&server.url, "tok", &fresh_name(), fast_retries()).expect("queue");
    let err = q.receive("c", 1, Duration::ZERO).await.expect_err("refused");
    assert!(
        matches!(&err, QueueError::Misconfigured(m) if m.contains("token")),
        "{err:?}"
    );
    assert_eq!(
        server.seen.lock().expect("lock").len(),
        1,
        "one request, no retry storm"
    );
}

#[tokio::test]
async fn pipelines_go_to_the_pipeline_endpoint() {
    let server = stand_in(vec![(200, r#"[{"result":1},{"result":1}]"#)]).await;
    let q = UpstashQueue::new(&server.url, "tok", "jobs", fast_retries()).expect("queue");
    let m = Message::new(Uuid::now_v7(), chrono::Utc::now());
    q.publish(&[
        Outgoing {
            message: m,
            delay: Duration::ZERO,
        },
        Outgoing {
            message: m,
            delay: Duration::from_secs(5),
        },
    ])
    .await
    .expect("publish");
    let seen = server.seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/pipeline");
    let cmds: Vec<Vec<String>> = serde_json::from_str(&seen[0].body).expect("array of commands");
    let raw = serde_json::to_string(&m).expect("json");
    assert_eq!(cmds[0], ["LPUSH", "jobs", raw.as_str()]);
    assert_eq!(cmds[1][..2], ["ZADD", "jobs:delayed"]);
    assert_eq!(cmds[1][3], raw);
}

#[tokio::test]
async fn network_errors_are_retried_then_unavailable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let q =
        UpstashQueue::new(&format!("http://127.0.0.1:{port}"), "tok", "q", fast_retries()).expect("queue");
    let started = Instant::now();
    let err = q.check().await.expect_err("nobody listens");
    assert!(
        matches!(&err, QueueError::Unavailable(m) if m.contains("after 4 attempts")),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(q.kind(), "upstash");
}

/// `jobline worker --once` with the broker unreachable ends (having
/// processed nothing) instead of backing off forever.
#[tokio::test]
async fn a_once_worker_exits_when_the_broker_is_unreachable() {
    let db = crate::support::test_db().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let q = UpstashQueue::new(&url, "tok", &fresh_name(), fast_retries()).expect("queue");
    let feed = jobline::queue::Feed::Deliveries(Arc::new(q));
    let processor = jobline::worker::Processor::new(
        db.store.clone(),
        Arc::new(jobline::handlers::builtins()),
        Duration::from_millis(100),
        "w-once",
    );
    let options = jobline::worker::WorkerOptions {
        once: true,
        register: false,
        ..jobline::worker::WorkerOptions::default()
    };
    let (_stop, rx) = tokio::sync::watch::channel(false);
    let summary = tokio::time::timeout(
        Duration::from_secs(20),
        jobline::worker::runner::run(processor, feed, options, rx),
    )
    .await
    .expect("the --once worker ended");
    assert_eq!(summary.processed, 0);
}

/// The audit's count over REST: the messages of a consumer with no liveness
/// mark, not those of a live one, and none after `recover`.
#[tokio::test]
async fn orphaned_processing_counts_only_dead_consumers_messages_over_rest() {
    use redis::AsyncCommands as _;
    let name = fresh_name();
    let q = queue(&name);
    q.publish(&[now(Uuid::new_v4())]).await.expect("publish");
    let held = q
        .receive("alive", 1, Duration::from_secs(1))
        .await
        .expect("receive");
    assert_eq!(held.len(), 1);
    let _: () = plain()
        .await
        .rpush(format!("{name}:processing:dead"), vec!["m1", "m2", "m3"])
        .await
        .expect("plant");
    assert_eq!(q.orphaned_processing().await.expect("count"), 3);
    assert_eq!(q.recover().await.expect("recover"), 3);
    assert_eq!(q.orphaned_processing().await.expect("count"), 0);
}
