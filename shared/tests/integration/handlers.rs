//! The production handlers (`webhook`, `story_script`) driven through the
//! real pipeline (create → claim → `Processor::run_claim` → the job row)
//! against real HTTP servers started here on 127.0.0.1.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use http::{HeaderMap, StatusCode};
use jobline::handlers::story::{StoryConfig, StoryScriptHandler};
use jobline::handlers::webhook::{WebhookConfig, WebhookHandler, verify_signature};
use jobline::store::ClaimByIdOutcome;
use jobline::worker::{Finished, Processor, Registry};
use jobline::{Job, JobStatus, NewJob};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::support::{TestDb, test_db};

const WORKER: &str = "w-handlers";

/// Creates a job, claims it and runs it to its end; the job row after.
async fn run_job(db: &TestDb, registry: Registry, job_type: &str, payload: Value) -> (Finished, Job) {
    let created = db
        .store
        .create("t", "test", NewJob::new(job_type, payload))
        .await
        .expect("create")
        .job;
    let ClaimByIdOutcome::Claimed(claim) = db.store.claim_by_id(WORKER, created.id).await.expect("claim")
    else {
        panic!("the new job should be claimable");
    };
    let processor = Processor::new(
        db.store.clone(),
        Arc::new(registry),
        Duration::from_millis(50),
        WORKER,
    );
    let finished = processor.run_claim(*claim).await;
    let job = db.store.get_any(created.id).await.expect("get").expect("found");
    (finished, job)
}

fn assert_failed(job: &Job, code: &str) {
    assert_eq!(job.status, JobStatus::Failed, "{job:?}");
    assert_eq!(job.error_code.as_deref(), Some(code), "{job:?}");
    assert_eq!(job.attempts, 1, "a permanent failure is not retried");
}

fn assert_retrying(finished: Finished, job: &Job, code: &str) {
    assert!(matches!(finished, Finished::Retrying(_)), "{finished:?}");
    assert_eq!(job.status, JobStatus::Pending, "{job:?}");
    assert_eq!(job.error_code.as_deref(), Some(code), "{job:?}");
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

// ---------------------------------------------------------------------------
// webhook

fn webhook_registry(config: WebhookConfig) -> Registry {
    let mut r = Registry::new();
    r.register("webhook", WebhookHandler::new(config));
    r
}

/// The guard fully on, except for this test server's exact host:port.
fn allow_server(server: &Server) -> WebhookConfig {
    WebhookConfig::new().allow_host("127.0.0.1", Some(server.port()))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

#[tokio::test]
async fn webhook_posts_the_signed_body_and_stores_the_reply() {
    let db = test_db().await;
    let server = Server::replying(200, r#"{"ok":true}"#, &[("content-type", "application/json")]).await;
    let secret = "whsec-test-0123456789";
    let registry = webhook_registry(allow_server(&server).with_secret(secret));
    let payload = json!({
        "url": server.url("/hooks/in?src=jobline"),
        "body": {"event": "story.ready", "n": 1, "text": "héllo \"world\""},
    });
    let (finished, job) = run_job(&db, registry, "webhook", payload).await;

    assert_eq!(finished, Finished::Completed, "{job:?}");
    assert_eq!(job.status, JobStatus::Completed);
    assert_eq!(
        job.result,
        Some(json!({"status": 200, "body": "{\"ok\":true}", "truncated": false}))
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "one delivery");
    let req = &requests[0];
    assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", "/hooks/in"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(
        req.json(),
        json!({"event": "story.ready", "n": 1, "text": "héllo \"world\""}),
        "the payload's body, not the whole payload"
    );
    let job_id = job.id.to_string();
    assert_eq!(req.header("x-jobline-job-id"), Some(job_id.as_str()));
    let ts: u64 = req
        .header("x-jobline-timestamp")
        .expect("timestamp header")
        .parse()
        .expect("unix seconds");
    assert!(ts.abs_diff(unix_now()) < 300, "timestamp {ts} is now-ish");

    // Verify as a receiver would: over exactly the bytes received.
    let signature = req.header("x-jobline-signature").expect("signature header");
    let (t, v1) = signature
        .split_once(',')
        .and_then(|(t, v)| Some((t.strip_prefix("t=")?, v.strip_prefix("v1=")?)))
        .expect("t=<ts>,v1=<hex>");
    assert_eq!(t, ts.to_string(), "the signed time is the timestamp header");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(format!("{t}.").as_bytes());
    mac.update(&req.body);
    mac.verify_slice(&hex::decode(v1).expect("hex"))
        .expect("the signature verifies with the shared secret");
    assert!(verify_signature(
        secret.as_bytes(),
        signature,
        &req.body,
        unix_now(),
        300
    ));
    assert!(
        !verify_signature(b"another secret", signature, &req.body, unix_now(), 300),
        "and only with it"
    );
}

#[tokio::test]
async fn webhook_without_a_body_posts_the_whole_payload_to_the_configured_url_unsigned() {
    let db = test_db().await;
    let server = Server::replying(204, "", &[]).await;
    let config = allow_server(&server).with_url(server.url("/configured").parse().expect("url"));
    let payload = json!({"order": 42, "items": ["a", "b"]});
    let (finished, job) = run_job(&db, webhook_registry(config), "webhook", payload.clone()).await;

    assert_eq!(finished, Finished::Completed, "{job:?}");
    assert_eq!(
        job.result,
        Some(json!({"status": 204, "body": "", "truncated": false}))
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, "/configured");
    assert_eq!(requests[0].json(), payload);
    assert_eq!(
        requests[0].header("x-jobline-signature"),
        None,
        "no secret, no signature"
    );
    assert!(requests[0].header("x-jobline-timestamp").is_some());
}

#[tokio::test]
async fn webhook_result_keeps_the_first_4_kib_cut_on_a_char_boundary() {
    let db = test_db().await;
    // 1 + 2 × 3000 bytes: the 4096-byte limit falls inside an "é".
    let long = format!("a{}", "é".repeat(3000));
    let server = Server::replying(201, long.clone(), &[]).await;
    let payload = json!({"url": server.url("/big"), "body": {}});
    let (finished, job) = run_job(&db, webhook_registry(allow_server(&server)), "webhook", payload).await;

    assert_eq!(finished, Finished::Completed, "{job:?}");
    let result = job.result.expect("result");
    assert_eq!(result["status"], 201);
    assert_eq!(result["truncated"], true);
    let body = result["body"].as_str().expect("text");
    assert_eq!(body.len(), 4095, "the split character is dropped whole");
    assert!(long.starts_with(body));
}

#[tokio::test]
async fn webhook_4xx_fails_the_job_for_good() {
    let db = test_db().await;
    let server = Server::replying(422, r#"{"error":"unknown event"}"#, &[]).await;
    let payload = json!({"url": server.url("/hook"), "body": {"x": 1}});
    let (finished, job) = run_job(&db, webhook_registry(allow_server(&server)), "webhook", payload).await;

    assert_eq!(finished, Finished::Failed);
    assert_failed(&job, "HTTP_422");
    let reason = job.failure_reason.as_deref().unwrap_or_default();
    assert!(reason.contains("unknown event"), "quotes the answer: {reason}");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn webhook_redirects_are_not_followed() {
    let db = test_db().await;
    let server = Server::replying(302, "", &[("location", "/elsewhere")]).await;
    let payload = json!({"url": server.url("/hook"), "body": {}});
    let (finished, job) = run_job(&db, webhook_registry(allow_server(&server)), "webhook", payload).await;

    assert_eq!(finished, Finished::Failed);
    assert_failed(&job, "HTTP_302");
    assert!(
        job.failure_reason
            .as_deref()
            .unwrap_or_default()
            .contains("redirects are not followed")
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "the redirect was not followed");
    assert_eq!(requests[0].path, "/hook");
}

#[tokio::test]
async fn webhook_5xx_408_and_429_are_retried() {
    let db = test_db().await;
    for status in [500, 503, 408, 429] {
        let server = Server::replying(status, "try later", &[]).await;
        let payload = json!({"url": server.url("/hook"), "body": {}});
        let (finished, job) = run_job(&db, webhook_registry(allow_server(&server)), "webhook", payload).await;
        assert_retrying(finished, &job, &format!("HTTP_{status}"));
        assert_eq!(server.requests().len(), 1);
    }
}

#[tokio::test]
async fn webhook_timeout_is_retried() {
    let db = test_db().await;
    // Never answers: the request's own timeout ends the attempt.
    let server = Server::start(|_| std::future::pending::<Response>()).await;
    let config = allow_server(&server).with_timeout(Duration::from_millis(300));
    let payload = json!({"url": server.url("/slow"), "body": {}});
    let (finished, job) = run_job(&db, webhook_registry(config), "webhook", payload).await;

    assert_retrying(finished, &job, "TIMEOUT");
    assert_eq!(server.requests().len(), 1, "the request did reach the server");
}

#[tokio::test]
async fn webhook_connection_refused_is_a_retryable_network_error() {
    let db = test_db().await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let config = WebhookConfig::new().allow_host("127.0.0.1", Some(closed.port()));
    let payload = json!({"url": format!("http://{closed}/hook"), "body": {}});
    let (finished, job) = run_job(&db, webhook_registry(config), "webhook", payload).await;
    assert_retrying(finished, &job, "NETWORK");
}

#[tokio::test]
async fn webhook_ssrf_refusals_never_reach_the_server() {
    let db = test_db().await;
    let server = Server::replying(200, "reached", &[]).await;
    let port = server.port();
    // The guard fully on: no allow-list, no private addresses.
    let strict = WebhookConfig::new();
    // Allowed private addresses still need https (or the allow-list).
    let private_ok = WebhookConfig::new().with_allow_private(true);
    // An allow-list entry for another port does not cover this one.
    let other_port = WebhookConfig::new().allow_host("127.0.0.1", Some(port.wrapping_add(1).max(1)));
    let cases: Vec<(WebhookConfig, String, &str)> = vec![
        (
            strict.clone(),
            format!("http://127.0.0.1:{port}/hook"),
            "only https",
        ),
        (private_ok, format!("http://127.0.0.1:{port}/hook"), "only https"),
        (other_port, format!("http://127.0.0.1:{port}/hook"), "only https"),
        (
            strict.clone(),
            format!("http://localhost:{port}/hook"),
            "only https",
        ),
        (
            strict.clone(),
            format!("https://127.0.0.1:{port}/hook"),
            "loopback",
        ),
        (
            strict.clone(),
            format!("https://127.1.2.3:{port}/hook"),
            "loopback",
        ),
        (
            strict.clone(),
            format!("https://2130706433:{port}/hook"),
            "loopback",
        ),
        (
            strict.clone(),
            format!("https://0.0.0.0:{port}/hook"),
            "unspecified",
        ),
        (strict.clone(), "https://10.0.0.8/hook".into(), "private"),
        (strict.clone(), "https://172.16.5.4/hook".into(), "private"),
        (strict.clone(), "https://192.168.1.20/hook".into(), "private"),
        (strict.clone(), "https://100.64.0.1/hook".into(), "CGNAT"),
        (
            strict.clone(),
            "https://169.254.169.254/latest/meta-data/".into(),
            "link-local",
        ),
        (strict.clone(), "https://224.0.0.1/hook".into(), "multicast"),
        (
            strict.clone(),
            format!("https://localhost:{port}/hook"),
            "resolves to",
        ),
        (strict.clone(), format!("https://[::1]:{port}/hook"), "loopback"),
        (strict.clone(), format!("https://[::]:{port}/hook"), "unspecified"),
        (
            strict.clone(),
            format!("http://[::ffff:127.0.0.1]:{port}/hook"),
            "only https",
        ),
        (
            strict.clone(),
            format!("https://[::ffff:127.0.0.1]:{port}/hook"),
            "IPv4-mapped",
        ),
        (
            strict.clone(),
            "https://[::ffff:10.1.1.1]/hook".into(),
            "IPv4-mapped",
        ),
        (
            strict.clone(),
            "https://[fd12:3456::1]/hook".into(),
            "unique local",
        ),
        (strict.clone(), "https://[fe80::1]/hook".into(), "link-local"),
        (strict.clone(), "ftp://example.com/hook".into(), "only https"),
        (strict.clone(), "file:///etc/passwd".into(), "only https"),
    ];
    for (config, url, why) in cases {
        let payload = json!({"url": url, "body": {"secret": "data"}});
        let (finished, job) = run_job(&db, webhook_registry(config), "webhook", payload).await;
        assert_eq!(finished, Finished::Failed, "{url}");
        assert_failed(&job, "SSRF_BLOCKED");
        let reason = job.failure_reason.as_deref().unwrap_or_default();
        assert!(reason.contains(why), "{url}: expected {why:?} in {reason:?}");
    }
    assert_eq!(
        server.requests().len(),
        0,
        "no refused request reached the server"
    );
}

#[tokio::test]
async fn webhook_allow_listed_loopback_host_by_name_works() {
    let db = test_db().await;
    let server = Server::replying(200, "hi", &[]).await;
    // Any port of `localhost`, plain http, loopback address: all allowed.
    let config = WebhookConfig::new().allow_host("LocalHost", None);
    let payload = json!({"url": format!("http://localhost:{}/hook", server.port()), "body": {"a": 1}});
    let (finished, job) = run_job(&db, webhook_registry(config), "webhook", payload).await;
    assert_eq!(finished, Finished::Completed, "{job:?}");
    assert_eq!(
        job.result,
        Some(json!({"status": 200, "body": "hi", "truncated": false}))
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn webhook_without_a_url_is_a_bad_payload() {
    let db = test_db().await;
    let (finished, job) = run_job(
        &db,
        webhook_registry(WebhookConfig::new()),
        "webhook",
        json!({"body": {}}),
    )
    .await;
    assert_eq!(finished, Finished::Failed);
    assert_failed(&job, "BAD_PAYLOAD");
}

#[tokio::test]
async fn the_production_registry_has_every_handler() {
    let registry = jobline::handlers::production(&jobline::Config::from_lookup(|_| None).expect("defaults"));
    let types = registry.types();
    for t in ["fail", "noop", "sleep", "story_script", "webhook"] {
        assert!(types.iter().any(|x| x == t), "{t} missing from {types:?}");
    }
}

// ---------------------------------------------------------------------------
// story_script, against a local stand-in that speaks the chat-completions
// wire format.

const API_KEY: &str = "sk-test-0123456789";

#[derive(Clone, Copy)]
enum Model {
    Writes,
    RateLimited,
    NoChoices,
}

/// `POST /v1/chat/completions`, checking the key and the request shape the
/// way the real service does.
async fn chat_server(mode: Model) -> Server {
    Server::start(move |req: Received| async move {
        let error = |status: StatusCode, kind: &str, message: &str| {
            (
                status,
                axum::Json(json!({"error": {"message": message, "type": kind, "param": null, "code": null}})),
            )
                .into_response()
        };
        if req.method != "POST" || req.path != "/v1/chat/completions" {
            return error(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "Unknown request URL",
            );
        }
        if req.header("authorization") != Some(format!("Bearer {API_KEY}").as_str()) {
            return error(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                "Incorrect API key provided",
            );
        }
        let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "We could not parse the JSON body",
            );
        };
        if body["max_tokens"].as_u64() > Some(4000) {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "max_tokens is too large: this model supports at most 4000 completion tokens",
            );
        }
        if !body["model"].is_string() || !body["messages"].is_array() {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "model and messages are required",
            );
        }
        match mode {
            Model::RateLimited => {
                let mut r = error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "requests",
                    "Rate limit reached for gpt-4o-mini on requests per min (RPM)",
                );
                r.headers_mut()
                    .insert("retry-after", http::HeaderValue::from_static("20"));
                r
            }
            Model::NoChoices => axum::Json(json!({
                "id": "chatcmpl-empty", "object": "chat.completion", "created": 1_700_000_000,
                "model": "gpt-4o-mini-2024-07-18", "choices": [],
            }))
            .into_response(),
            Model::Writes => axum::Json(json!({
                "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
                "object": "chat.completion",
                "created": 1_727_000_000,
                "model": "gpt-4o-mini-2024-07-18",
                "choices": [{
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": "The Dragon Who Was Afraid of the Dark\n\nOnce upon a time...",
                        "refusal": null
                    },
                    "logprobs": null,
                    "finish_reason": "stop"
                }],
                "usage": {"prompt_tokens": 91, "completion_tokens": 412, "total_tokens": 503},
                "system_fingerprint": "fp_f85bea6784"
            }))
            .into_response(),
        }
    })
    .await
}

fn story_registry(server: &Server, api_key: Option<&str>, max_tokens: u32) -> Registry {
    let config = StoryConfig::new(server.url("/v1"), api_key.map(str::to_owned)).with_max_tokens(max_tokens);
    let mut r = Registry::new();
    r.register("story_script", StoryScriptHandler::new(config));
    r
}

fn story_payload() -> Value {
    json!({"theme": "a dragon afraid of the dark", "tone": "funny", "ageRange": "4-6", "storyId": "story-123"})
}

#[tokio::test]
async fn story_script_writes_the_script_through_a_chat_completions_server() {
    let db = test_db().await;
    let server = chat_server(Model::Writes).await;
    let registry = story_registry(&server, Some(API_KEY), 900);
    let (finished, job) = run_job(&db, registry, "story_script", story_payload()).await;

    assert_eq!(finished, Finished::Completed, "{job:?}");
    assert_eq!(job.status, JobStatus::Completed);
    assert_eq!(job.stage.as_deref(), Some("done"));
    assert_eq!(job.progress, Some(100.0));
    let result = job.result.expect("result");
    assert_eq!(result["storyId"], "story-123");
    assert_eq!(
        result["script"],
        "The Dragon Who Was Afraid of the Dark\n\nOnce upon a time..."
    );
    assert_eq!(result["model"], "gpt-4o-mini-2024-07-18");
    assert_eq!(
        result["usage"],
        json!({"prompt_tokens": 91, "completion_tokens": 412, "total_tokens": 503})
    );

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let req = &requests[0];
    assert_eq!(
        req.header("authorization"),
        Some(format!("Bearer {API_KEY}").as_str())
    );
    assert_eq!(req.header("content-type"), Some("application/json"));
    let body = req.json();
    assert_eq!(body["model"], "gpt-4o-mini");
    assert_eq!(body["max_tokens"], 900);
    let messages = body["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["role"], "system");
    assert!(!messages[0]["content"].as_str().unwrap_or_default().is_empty());
    assert_eq!(messages[1]["role"], "user");
    let user = messages[1]["content"].as_str().expect("user content");
    for part in ["a dragon afraid of the dark", "funny", "4-6"] {
        assert!(user.contains(part), "{part:?} missing from {user:?}");
    }
}

#[tokio::test]
async fn story_script_rate_limit_is_retried() {
    let db = test_db().await;
    let server = chat_server(Model::RateLimited).await;
    let (finished, job) = run_job(
        &db,
        story_registry(&server, Some(API_KEY), 900),
        "story_script",
        story_payload(),
    )
    .await;
    assert_retrying(finished, &job, "RATE_LIMITED");
    assert!(
        job.failure_reason
            .as_deref()
            .unwrap_or_default()
            .contains("Rate limit reached")
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn story_script_bad_request_fails_for_good() {
    let db = test_db().await;
    let server = chat_server(Model::Writes).await;
    // The stand-in refuses max_tokens above 4000, as the real API does per model.
    let (finished, job) = run_job(
        &db,
        story_registry(&server, Some(API_KEY), 100_000),
        "story_script",
        story_payload(),
    )
    .await;
    assert_eq!(finished, Finished::Failed);
    assert_failed(&job, "HTTP_400");
    assert!(
        job.failure_reason
            .as_deref()
            .unwrap_or_default()
            .contains("max_tokens is too large")
    );
}

#[tokio::test]
async fn story_script_wrong_key_fails_for_good() {
    let db = test_db().await;
    let server = chat_server(Model::Writes).await;
    let (finished, job) = run_job(
        &db,
        story_registry(&server, Some("sk-wrong"), 900),
        "story_script",
        story_payload(),
    )
    .await;
    assert_eq!(finished, Finished::Failed);
    assert_failed(&job, "HTTP_401");
    assert!(
        !job.failure_reason
            .as_deref()
            .unwrap_or_default()
            .contains("sk-wrong"),
        "the key is never written to the job"
    );
}

#[tokio::test]
async fn story_script_without_a_key_is_not_configured() {
    let db = test_db().await;
    let server = chat_server(Model::Writes).await;
    let (finished, job) = run_job(
        &db,
        story_registry(&server, None, 900),
        "story_script",
        story_payload(),
    )
    .await;
    assert_eq!(finished, Finished::Failed);
    assert_failed(&job, "NOT_CONFIGURED");
    assert_eq!(server.requests().len(), 0);
}

#[tokio::test]
async fn story_script_without_a_theme_is_a_bad_payload() {
    let db = test_db().await;
    let server = chat_server(Model::Writes).await;
    let (finished, job) = run_job(
        &db,
        story_registry(&server, Some(API_KEY), 900),
        "story_script",
        json!({"tone": "funny", "storyId": "s"}),
    )
    .await;
    assert_eq!(finished, Finished::Failed);
    assert_failed(&job, "BAD_PAYLOAD");
    assert_eq!(server.requests().len(), 0);
}

#[tokio::test]
async fn story_script_reply_without_choices_is_retried() {
    let db = test_db().await;
    let server = chat_server(Model::NoChoices).await;
    let (finished, job) = run_job(
        &db,
        story_registry(&server, Some(API_KEY), 900),
        "story_script",
        story_payload(),
    )
    .await;
    assert_retrying(finished, &job, "BAD_REPLY");
}
