//! The production handlers (`webhook`, `story_script`) driven through the
//! real pipeline (`jobline::testing::run_job`: create → claim →
//! `Processor::run_claim` → the job row) against real HTTP servers started
//! here on 127.0.0.1.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use jobline::worker::Finished;
use jobline::{Job, JobStatus};
use serde_json::Value;

mod story;
mod webhook;

fn assert_failed(finished: Finished, job: &Job, code: &str) {
    assert_eq!(finished, Finished::Failed, "{job:?}");
    assert_eq!(job.status, JobStatus::Failed, "{job:?}");
    assert_eq!(job.error_code.as_deref(), Some(code), "{job:?}");
    assert_eq!(job.attempts, 1, "a permanent failure is not retried");
}

fn assert_retrying(finished: Finished, job: &Job, code: &str) {
    assert!(matches!(finished, Finished::Retrying(_)), "{finished:?}");
    assert_eq!(job.status, JobStatus::Pending, "{job:?}");
    assert_eq!(job.error_code.as_deref(), Some(code), "{job:?}");
}

/// Why the job's last attempt failed, or "" when it did not.
fn reason(job: &Job) -> &str {
    job.failure_reason.as_deref().unwrap_or_default()
}

// ---------------------------------------------------------------------------
// A local HTTP server that records what it receives.

#[derive(Debug, Clone)]
struct Received {
    method: String,
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the request body is JSON")
    }
}

type Seen = Arc<Mutex<Vec<Received>>>;

struct Server {
    addr: SocketAddr,
    seen: Seen,
}

impl Server {
    /// Starts a server on 127.0.0.1 that records each request and answers
    /// with `respond`.
    async fn start<F, Fut>(respond: F) -> Self
    where
        F: Fn(Received) -> Fut + Clone + Send + Sync + 'static,
        Fut: std::future::Future<Output = Response> + Send + 'static,
    {
        let seen: Seen = Arc::default();
        let recorder = seen.clone();
        let app = Router::new().fallback(move |req: Request| {
            let recorder = recorder.clone();
            let respond = respond.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = axum::body::to_bytes(body, 1 << 20).await.expect("read body");
                let received = Received {
                    method: parts.method.to_string(),
                    path: parts.uri.path().to_owned(),
                    headers: parts.headers,
                    body: body.to_vec(),
                };
                recorder.lock().expect("lock").push(received.clone());
                respond(received).await
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, seen }
    }

    /// Answers every request with `status`, `body` and `headers`.
    async fn replying(
        status: u16,
        body: impl Into<String>,
        headers: &[(&'static str, &'static str)],
    ) -> Self {
        let body: String = body.into();
        let headers: Vec<(&'static str, &'static str)> = headers.to_vec();
        Self::start(move |_| {
            let body = body.clone();
            let headers = headers.clone();
            async move {
                let mut response = (StatusCode::from_u16(status).expect("status"), body).into_response();
                for (k, v) in headers {
                    response
                        .headers_mut()
                        .insert(k, http::HeaderValue::from_static(v));
                }
                response
            }
        })
        .await
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    fn requests(&self) -> Vec<Received> {
        self.seen.lock().expect("lock").clone()
    }
}
