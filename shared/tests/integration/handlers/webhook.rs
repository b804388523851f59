//! `webhook`: signed deliveries, results, failures and the SSRF guard.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::response::Response;
use hmac::{Hmac, Mac};
use jobline::handlers::webhook::{Signed, WebhookConfig, WebhookHandler, tenant_secret, verify_signature};
use jobline::testing::run_job;
use jobline::worker::{Finished, Registry};
use jobline::{Job, JobStatus};
use serde_json::{Value, json};
use sha2::Sha256;

use super::{Server, assert_failed, assert_retrying, reason};
use crate::support::{TestDb, test_db};

fn webhook_registry(config: WebhookConfig) -> Registry {
    let mut r = Registry::new();
    r.register("webhook", WebhookHandler::new(config));
    r
}

/// The guard fully on, except for this test server's exact host:port.
fn allow_server(server: &Server) -> WebhookConfig {
    WebhookConfig::new().allow_host("127.0.0.1", Some(server.port()))
}

/// Runs a `webhook` job for `payload` with the handler configured by `config`.
async fn webhook_job(db: &TestDb, config: WebhookConfig, payload: Value) -> (Finished, Job) {
    run_job(db, webhook_registry(config), "webhook", payload).await
}

/// A payload that posts `body` to `path` on `server`.
fn hook_to(server: &Server, path: &str, body: Value) -> Value {
    json!({"url": server.url(path), "body": body})
}

/// A `webhook` job posting `body` to `path` on `server`, which the guard lets through.
async fn a_webhook_to(server: &Server, path: &str, body: Value) -> (Finished, Job) {
    let db = test_db().await;
    webhook_job(&db, allow_server(server), hook_to(server, path, body)).await
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
    let body = json!({"event": "story.ready", "n": 1, "text": "héllo \"world\""});
    let payload = hook_to(&server, "/hooks/in?src=jobline", body.clone());
    let (finished, job) = webhook_job(&db, allow_server(&server).with_secret(secret), payload).await;

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
    assert_eq!(req.json(), body, "the payload's body, not the whole payload");
    let job_id = job.id.to_string();
    assert_eq!(req.header("x-jobline-job-id"), Some(job_id.as_str()));
    let ts: u64 = req
        .header("x-jobline-timestamp")
        .expect("timestamp header")
        .parse()
        .expect("unix seconds");
    assert!(ts.abs_diff(unix_now()) < 300, "timestamp {ts} is now-ish");

    // Verify as a receiver would: over exactly the bytes received, with the
    // job's tenant's own secret (what `jobline webhook-secret` prints).
    let signature = req.header("x-jobline-signature").expect("signature header");
    let (t, v2) = signature
        .split_once(',')
        .and_then(|(t, v)| Some((t.strip_prefix("t=")?, v.strip_prefix("v2=")?)))
        .expect("t=<ts>,v2=<hex>");
    assert_eq!(t, ts.to_string(), "the signed time is the timestamp header");
    let tenant_key = tenant_secret(secret.as_bytes(), &job.tenant_id);
    let url = server.url("/hooks/in?src=jobline");
    let mut mac = Hmac::<Sha256>::new_from_slice(tenant_key.as_bytes()).expect("key");
    mac.update(format!("{t}.{job_id}.{url}.").as_bytes());
    mac.update(&req.body);
    mac.verify_slice(&hex::decode(v2).expect("hex"))
        .expect("the signature verifies with the tenant's secret");
    let signed = Signed {
        job_id: &job_id,
        url: &url,
        body: &req.body,
    };
    assert!(verify_signature(
        tenant_key.as_bytes(),
        signature,
        &signed,
        unix_now(),
        300
    ));
    let other_tenant = tenant_secret(secret.as_bytes(), "globex");
    assert!(
        !verify_signature(other_tenant.as_bytes(), signature, &signed, unix_now(), 300),
        "not under another tenant's secret"
    );
    assert!(
        !verify_signature(secret.as_bytes(), signature, &signed, unix_now(), 300),
        "nor under the master secret"
    );
    let elsewhere = Signed {
        url: "https://billing.example.com/in",
        ..signed
    };
    assert!(
        !verify_signature(tenant_key.as_bytes(), signature, &elsewhere, unix_now(), 300),
        "nor for another URL"
    );
}

#[tokio::test]
async fn webhook_without_a_body_posts_the_whole_payload_to_the_configured_url_unsigned() {
    let db = test_db().await;
    let server = Server::replying(204, "", &[]).await;
    let config = allow_server(&server).with_url(server.url("/configured").parse().expect("url"));
    let payload = json!({"order": 42, "items": ["a", "b"]});
    let (finished, job) = webhook_job(&db, config, payload.clone()).await;

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
    // 1 + 2 × 3000 bytes: the 4096-byte limit falls inside an "é".
    let long = format!("a{}", "é".repeat(3000));
    let server = Server::replying(201, long.clone(), &[]).await;
    let (finished, job) = a_webhook_to(&server, "/big", json!({})).await;

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
    let server = Server::replying(422, r#"{"error":"unknown event"}"#, &[]).await;
    let (finished, job) = a_webhook_to(&server, "/hook", json!({"x": 1})).await;

    assert_failed(finished, &job, "HTTP_422");
    let reason = reason(&job);
    assert!(reason.contains("unknown event"), "quotes the answer: {reason}");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn webhook_redirects_are_not_followed() {
    let server = Server::replying(302, "", &[("location", "/elsewhere")]).await;
    let (finished, job) = a_webhook_to(&server, "/hook", json!({})).await;

    assert_failed(finished, &job, "HTTP_302");
    assert!(reason(&job).contains("redirects are not followed"));
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "the redirect was not followed");
    assert_eq!(requests[0].path, "/hook");
}

#[tokio::test]
async fn webhook_5xx_408_and_429_are_retried() {
    let db = test_db().await;
    for status in [500, 503, 408, 429] {
        let server = Server::replying(status, "try later", &[]).await;
        let payload = hook_to(&server, "/hook", json!({}));
        let (finished, job) = webhook_job(&db, allow_server(&server), payload).await;
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
    let (finished, job) = webhook_job(&db, config, hook_to(&server, "/slow", json!({}))).await;

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
    let (finished, job) = webhook_job(&db, config, payload).await;
    assert_retrying(finished, &job, "NETWORK");
}

/// A hostile DNS answer: a public address first, then loopback.
struct Rebinding(u16);

impl jobline::handlers::webhook::Resolve for Rebinding {
    fn resolve<'a>(
        &'a self,
        _host: &'a str,
        _port: u16,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = std::io::Result<Vec<std::net::SocketAddr>>> + Send + 'a>,
    > {
        let port = self.0;
        Box::pin(async move {
            Ok(vec![
                std::net::SocketAddr::from(([93, 184, 216, 34], port)),
                std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            ])
        })
    }
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
        (
            strict.clone(),
            "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/hook".into(),
            "Teredo",
        ),
        (
            strict.clone(),
            "https://[::ffff:0:7f00:1]/hook".into(),
            "IPv4-translated",
        ),
        (
            // DNS rebinding: the name answers a public address first and
            // loopback second; every answer is checked, so it is refused
            // before any connection.
            strict.clone().with_resolver(Rebinding(port)),
            format!("https://hooks.rebind.test:{port}/hook"),
            "resolves to 127.0.0.1",
        ),
        (strict.clone(), "ftp://example.com/hook".into(), "only https"),
        (strict.clone(), "file:///etc/passwd".into(), "only https"),
    ];
    for (config, url, why) in cases {
        let payload = json!({"url": url, "body": {"secret": "data"}});
        let (finished, job) = webhook_job(&db, config, payload).await;
        assert_failed(finished, &job, "SSRF_BLOCKED");
        let reason = reason(&job);
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
    let (finished, job) = webhook_job(&db, config, payload).await;
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
    let (finished, job) = webhook_job(&db, WebhookConfig::new(), json!({"body": {}})).await;
    assert_failed(finished, &job, "BAD_PAYLOAD");
}

#[tokio::test]
async fn the_production_registry_has_every_handler() {
    let registry = jobline::handlers::production(&jobline::Config::from_lookup(|_| None).expect("defaults"));
    let types = registry.types();
    for t in ["fail", "noop", "sleep", "story_script", "webhook"] {
        assert!(types.iter().any(|x| x == t), "{t} missing from {types:?}");
    }
}
