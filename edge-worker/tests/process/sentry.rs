//! Error tracking as a deployment sees it: the real `jobline` binary with
//! `SENTRY_DSN` pointing at a local HTTP endpoint that keeps every envelope
//! it is sent (the Sentry ingest API: `POST /api/<project>/envelope/`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{database, jobline};

/// Envelopes received, as text (an envelope is newline-separated JSON).
#[derive(Clone, Default)]
struct Ingest {
    envelopes: Arc<Mutex<Vec<String>>>,
}

impl Ingest {
    async fn start() -> (Self, String) {
        let ingest = Self::default();
        let kept = ingest.clone();
        let app = axum::Router::new().route(
            "/api/42/envelope/",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let kept = kept.clone();
                async move {
                    let auth = headers
                        .get("x-sentry-auth")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    assert!(
                        auth.contains("sentry_key=public"),
                        "the DSN's key authenticates: {auth}"
                    );
                    kept.envelopes
                        .lock()
                        .expect("lock")
                        .push(String::from_utf8_lossy(&body).into_owned());
                    axum::http::StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        (ingest, format!("http://public@{addr}/42"))
    }

    fn all(&self) -> Vec<String> {
        self.envelopes.lock().expect("lock").clone()
    }

    /// Waits until an envelope contains `needle`.
    async fn wait_for(&self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            if let Some(e) = self.all().into_iter().find(|e| e.contains(needle)) {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "no envelope with {needle:?} in {:?}",
                self.all()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn create(url: &str, payload: &str) {
    let out = jobline(url)
        .args([
            "jobs",
            "create",
            "--type",
            "fail",
            "--max-attempts",
            "1",
            "--payload",
            payload,
        ])
        .output()
        .expect("jobs create");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

// Multi-threaded: the ingest keeps answering while this thread waits for
// the worker process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_attempt_and_a_panic_reach_sentry_without_the_payload() {
    let (ingest, dsn) = Ingest::start().await;
    let (url, _db) = database().await;
    create(&url, r#"{"permanent": true, "card": "4242-secret-4242"}"#);
    create(&url, r#"{"panic": true, "card": "4242-secret-4242"}"#);
    let out = jobline(&url)
        .env("SENTRY_DSN", &dsn)
        .env("SENTRY_ENVIRONMENT", "test")
        .args(["worker", "--id", "reporting", "--once", "--types", "fail"])
        .output()
        .expect("worker --once");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let failure = ingest.wait_for("FAIL_PERMANENT", Duration::from_secs(10)).await;
    assert!(failure.contains("a handler's attempt failed"), "{failure}");
    assert!(
        !failure.contains("on purpose"),
        "the handler's message stays in the logs: {failure}"
    );
    assert!(failure.contains("\"environment\":\"test\""), "{failure}");
    let panic = ingest
        .wait_for("the fail handler was asked to panic", Duration::from_secs(10))
        .await;
    assert!(panic.contains("panicked at"), "{panic}");
    for envelope in ingest.all() {
        assert!(
            !envelope.contains("4242-secret"),
            "a payload reached sentry: {envelope}"
        );
        assert!(
            !envelope.contains(&url),
            "the database URL reached sentry: {envelope}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_of_the_api_reaches_sentry() {
    let (ingest, dsn) = Ingest::start().await;
    let (url, db) = database().await;
    let key = jobline(&url)
        .args([
            "keys",
            "create",
            "--tenant",
            "acme",
            "--scopes",
            "jobs:read,jobs:write",
        ])
        .output()
        .expect("keys create");
    assert!(key.status.success(), "{}", String::from_utf8_lossy(&key.stderr));
    let key = String::from_utf8_lossy(&key.stdout)
        .trim()
        .lines()
        .last()
        .expect("a key")
        .trim()
        .to_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let _serve = Killed(
        jobline(&url)
            .env("SENTRY_DSN", &dsn)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn serve"),
    );
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while http.get(format!("{base}/health")).send().await.is_err() {
        assert!(Instant::now() < deadline, "jobline serve did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Break what the create writes: the statement fails inside Postgres.
    db.batch_execute("ALTER TABLE job_events RENAME TO job_events_gone")
        .await
        .expect("break");
    let answer = http
        .post(format!("{base}/v1/jobs"))
        .bearer_auth(&key)
        .json(&serde_json::json!({"type": "noop", "payload": {"card": "4242-secret-4242"}}))
        .send()
        .await
        .expect("create");
    assert_eq!(answer.status().as_u16(), 500);
    let body = answer.text().await.expect("body");
    assert!(
        !body.contains("job_events"),
        "5xx details are logged, not leaked: {body}"
    );
    let event = ingest.wait_for("internal error", Duration::from_secs(10)).await;
    assert!(
        event.contains("job_events"),
        "the detail is in the report: {event}"
    );
    for envelope in ingest.all() {
        assert!(
            !envelope.contains("4242-secret"),
            "a payload reached sentry: {envelope}"
        );
        assert!(!envelope.contains(&key), "the API key reached sentry: {envelope}");
    }
}

/// A child process killed when the test ends, passed or not.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
