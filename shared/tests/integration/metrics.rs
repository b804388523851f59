//! Metrics against real servers: `GET /metrics` of `jobline serve`'s code
//! over HTTP on a real Postgres, and the edge worker's own listener while it
//! drains real jobs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jobline::NewJob;
use jobline::metrics::worker::WorkerMetrics;
use jobline::queue::Feed;
use jobline::queue::postgres::PostgresQueue;
use jobline::store::{ClaimByIdOutcome, JobFailure};
use jobline::testing::{TENANT, TestDb};
use jobline::worker::runner::run;
use jobline::worker::{HandlerError, HandlerOutput, JobContext, JobHandler, Processor, WorkerOptions};
use jobline::{async_trait, handlers};
use reqwest::Method;
use serde_json::json;
use tokio::sync::watch;

use crate::support::{ADMIN_KEY, TestApi, poll_for, test_api};

const WITHIN: Duration = Duration::from_secs(5);

/// One sample of an exposition: its metric name and labels.
type Series = (String, BTreeMap<String, String>);

/// Every sample of a Prometheus text exposition (`# ` lines skipped).
fn samples(text: &str) -> Vec<(Series, f64)> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a sample line ends in its value");
            let value: f64 = value.parse().expect("a number");
            let Some((name, labels)) = series.split_once('{') else {
                return ((series.to_owned(), BTreeMap::new()), value);
            };
            let mut parsed = BTreeMap::new();
            let mut rest = labels.strip_suffix('}').expect("labels end in }");
            while !rest.is_empty() {
                let (key, after) = rest.split_once("=\"").expect("label=\"value\"");
                let end = after.find('"').expect("a closing quote");
                parsed.insert(key.to_owned(), after[..end].to_owned());
                rest = after[end + 1..].trim_start_matches(',');
            }
            ((name.to_owned(), parsed), value)
        })
        .collect()
}

/// The value of `name{labels}` in `text`, when it has that sample.
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    samples(text)
        .into_iter()
        .find(|((n, l), _)| n == name && *l == want)
        .map(|(_, v)| v)
}

/// `GET /metrics` with `key`: status, content type and body.
async fn scrape_as(api: &TestApi, key: &str) -> (u16, String, String) {
    let resp = api
        .with_key(key, Method::GET, "/metrics")
        .send()
        .await
        .expect("scrape");
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, content_type, resp.text().await.expect("body"))
}

/// The operator's scrape, which must succeed.
async fn scrape(api: &TestApi) -> String {
    let (status, content_type, body) = scrape_as(api, ADMIN_KEY).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    body
}

/// A job of `tenant` failed for good (the dead letter).
async fn failed_job(db: &TestDb, tenant: &str) {
    let job = db.noop_for(tenant).await;
    let ClaimByIdOutcome::Claimed(claim) = db.store.claim_by_id("w-metrics", job.id).await.expect("claim")
    else {
        panic!("a new job is claimable");
    };
    db.store
        .fail(&claim, &JobFailure::permanent("BROKEN", "for the dead letter"))
        .await
        .expect("fail");
}

#[tokio::test]
async fn the_scrape_counts_jobs_by_status_and_type_over_every_tenant() {
    let api = test_api().await;
    for _ in 0..2 {
        api.db.noop_for(TENANT).await;
    }
    api.db.noop_for("globex").await;
    api.db.job_for(TENANT, NewJob::new("webhook", json!({}))).await;
    failed_job(&api.db, TENANT).await;
    let text = scrape(&api).await;
    let jobs = |status, job_type| value(&text, "jobline_jobs", &[("status", status), ("type", job_type)]);
    assert_eq!(jobs("pending", "noop"), Some(3.0), "{text}");
    assert_eq!(jobs("failed", "noop"), Some(1.0), "{text}");
    assert_eq!(jobs("pending", "webhook"), Some(1.0), "{text}");
    assert_eq!(
        jobs("completed", "noop"),
        Some(0.0),
        "every status of a type shows: {text}"
    );
    assert_eq!(
        jobs("pending", "story_script"),
        None,
        "a type without jobs has no series"
    );
    assert_eq!(value(&text, "jobline_dead_letter_jobs", &[]), Some(1.0), "{text}");
    assert_eq!(
        value(&text, "jobline_dead_letter_outbox", &[]),
        Some(0.0),
        "{text}"
    );
}

#[tokio::test]
async fn the_oldest_pending_age_and_the_due_outbox_follow_the_clock() {
    let api = test_api().await;
    for _ in 0..3 {
        api.db.noop_for(TENANT).await;
    }
    let text = scrape(&api).await;
    assert_eq!(
        value(&text, "jobline_oldest_pending_age_seconds", &[]),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "jobline_outbox_due", &[]),
        Some(0.0),
        "left to their creator for the grace: {text}"
    );
    // Past the creator's grace (30 s) nobody published them: due.
    api.db.advance(45);
    let text = scrape(&api).await;
    assert_eq!(
        value(&text, "jobline_oldest_pending_age_seconds", &[]),
        Some(45.0),
        "{text}"
    );
    assert_eq!(value(&text, "jobline_outbox_due", &[]), Some(3.0), "{text}");
}

#[tokio::test]
async fn only_the_operators_admin_key_may_scrape() {
    let api = test_api().await;
    let (status, _, body) = scrape_as(&api, "").await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).expect("JSON")["error"]["code"],
        "unauthorized"
    );
    let other_admin = api.key("globex", &["admin"]).await;
    let reader = api.key("default", &["jobs:read"]).await;
    for key in [other_admin, reader] {
        let (status, _, body) = scrape_as(&api, &key).await;
        assert_eq!(status, 403, "{body}");
        let error = &serde_json::from_str::<serde_json::Value>(&body).expect("JSON")["error"];
        assert_eq!(error["code"], "forbidden", "{body}");
    }
    let (status, _, _) = scrape_as(&api, ADMIN_KEY).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn request_metrics_are_labelled_by_route_template_and_status_code() {
    let api = test_api().await;
    let ids = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()];
    for id in ids {
        let (status, _) = api.get(&format!("/v1/jobs/{id}")).await;
        assert_eq!(status, 404);
    }
    let (status, _) = api.get("/v1/jobs").await;
    assert_eq!(status, 200);
    let (status, _) = api.get("/no/such/route").await;
    assert_eq!(status, 404);
    let (status, _, _) = scrape_as(&api, "not-a-key").await;
    assert_eq!(status, 401);

    let text = scrape(&api).await;
    let requests = |route, code| {
        value(
            &text,
            "jobline_http_requests_total",
            &[("code", code), ("route", route)],
        )
    };
    assert_eq!(requests("/v1/jobs/{id}", "404"), Some(2.0), "{text}");
    assert_eq!(requests("/v1/jobs", "200"), Some(1.0), "{text}");
    assert_eq!(requests("unmatched", "404"), Some(1.0), "{text}");
    assert_eq!(requests("/metrics", "401"), Some(1.0), "{text}");
    assert_eq!(
        value(
            &text,
            "jobline_http_request_duration_seconds_count",
            &[("route", "/v1/jobs/{id}")]
        ),
        Some(2.0),
        "{text}"
    );
    for id in ids {
        assert!(!text.contains(&id.to_string()), "no raw URI in a label: {text}");
    }
    assert!(!text.contains("/no/such/route"), "{text}");
}

#[tokio::test]
async fn a_request_the_guard_answers_408_is_counted_on_its_route() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let api = crate::support::test_api_with(&[("JOBLINE_HTTP_REQUEST_TIMEOUT_SECONDS", "1")]).await;
    // A body that never comes: answered 408 at the request timeout.
    let mut slow = tokio::net::TcpStream::connect(api.base.trim_start_matches("http://"))
        .await
        .expect("connect");
    let request = format!(
        "POST /v1/jobs HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {ADMIN_KEY}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
    );
    slow.write_all(request.as_bytes()).await.expect("write");
    let mut reply = Vec::new();
    tokio::time::timeout(WITHIN, slow.read_to_end(&mut reply))
        .await
        .expect("closed within the timeout")
        .expect("read");
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");

    let text = scrape(&api).await;
    assert_eq!(
        value(
            &text,
            "jobline_http_requests_total",
            &[("code", "408"), ("route", "/v1/jobs")]
        ),
        Some(1.0),
        "{text}"
    );
}

/// Holds its job until the test lets it go.
struct Held(watch::Receiver<bool>);

#[async_trait]
impl JobHandler for Held {
    async fn run(&self, _ctx: JobContext) -> Result<HandlerOutput, HandlerError> {
        let mut released = self.0.clone();
        let _ = released.wait_for(|go| *go).await;
        Ok(HandlerOutput::json(json!({})))
    }
}

/// `GET /metrics` of a worker's listener.
async fn worker_scrape(base: &str) -> String {
    let resp = reqwest::get(format!("{base}/metrics")).await.expect("scrape");
    assert_eq!(resp.status().as_u16(), 200);
    resp.text().await.expect("body")
}

#[tokio::test]
async fn a_worker_serves_its_claims_outcomes_run_times_and_jobs_in_flight() {
    let db = crate::support::test_db().await;
    let (release, released) = watch::channel(false);
    let mut registry = handlers::builtins();
    registry.register("held", Held(released));
    for _ in 0..4 {
        db.noop_for(TENANT).await;
    }
    db.job_for(
        TENANT,
        NewJob {
            max_attempts: Some(1),
            ..NewJob::new("fail", json!({}))
        },
    )
    .await;
    db.job_for(TENANT, NewJob::new("fail", json!({}))).await;
    db.job_for(TENANT, NewJob::new("held", json!({}))).await;

    let metrics = WorkerMetrics::new().expect("metrics");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(jobline::metrics::worker::serve(
        listener,
        metrics.clone(),
        std::future::pending(),
    ));
    let before = worker_scrape(&base).await;
    assert_eq!(
        value(&before, "jobline_worker_claims_total", &[]),
        Some(0.0),
        "{before}"
    );
    assert_eq!(
        value(
            &before,
            "jobline_worker_attempts_total",
            &[("outcome", "completed")]
        ),
        Some(0.0),
        "every outcome shows from the start: {before}"
    );

    let processor = Processor::new(
        db.store.clone(),
        Arc::new(registry),
        Duration::from_millis(200),
        "w-metrics",
    );
    let options = WorkerOptions {
        concurrency: 4,
        poll_interval: Duration::from_millis(50),
        once: true,
        register: false,
        metrics: Some(metrics),
        ..WorkerOptions::default()
    };
    let (_stop, stop) = watch::channel(false);
    let feed = Feed::Claim(Arc::new(PostgresQueue::new(db.store.clone(), None)));
    let worker = tokio::spawn(run(processor, feed, options, stop));

    // The held job is in flight while the others finish.
    let during = poll_for(WITHIN, || async {
        let text = worker_scrape(&base).await;
        let done = value(
            &text,
            "jobline_worker_attempts_total",
            &[("outcome", "completed")],
        ) == Some(4.0);
        let held = value(&text, "jobline_worker_jobs_in_flight", &[]) == Some(1.0);
        (done && held).then_some(text)
    })
    .await;
    let Some(during) = during else {
        panic!("4 completed and 1 in flight: {}", worker_scrape(&base).await);
    };
    assert_eq!(
        value(&during, "jobline_worker_claims_total", &[]),
        Some(7.0),
        "{during}"
    );

    release.send(true).expect("release");
    let summary = tokio::time::timeout(WITHIN, worker)
        .await
        .expect("drained")
        .expect("worker");
    assert_eq!(summary.processed, 7);

    let after = worker_scrape(&base).await;
    let attempts = |outcome| value(&after, "jobline_worker_attempts_total", &[("outcome", outcome)]);
    assert_eq!(attempts("completed"), Some(5.0), "{after}");
    assert_eq!(attempts("failed"), Some(1.0), "{after}");
    assert_eq!(attempts("retry"), Some(1.0), "{after}");
    assert_eq!(attempts("stale"), Some(0.0), "{after}");
    assert_eq!(
        value(&after, "jobline_worker_jobs_in_flight", &[]),
        Some(0.0),
        "{after}"
    );
    let runs = |job_type| {
        value(
            &after,
            "jobline_worker_job_duration_seconds_count",
            &[("type", job_type)],
        )
    };
    assert_eq!(runs("noop"), Some(4.0), "{after}");
    assert_eq!(runs("fail"), Some(2.0), "{after}");
    assert_eq!(runs("held"), Some(1.0), "{after}");
    assert_eq!(runs("sleep"), Some(0.0), "every type it serves shows: {after}");
}

#[tokio::test]
async fn a_worker_on_a_broker_counts_the_jobs_its_deliveries_claimed() {
    use jobline::queue::Queue as _;
    let db = crate::support::test_db().await;
    let name = crate::queue_redis::fresh_name();
    let q = Arc::new(crate::queue_redis::queue(&name).await);
    let mut messages = Vec::new();
    for _ in 0..5 {
        messages.push(crate::queue_redis::now(db.noop_for(TENANT).await.id));
    }
    q.publish(&messages).await.expect("publish");

    let metrics = WorkerMetrics::new().expect("metrics");
    let processor = Processor::new(
        db.store.clone(),
        Arc::new(handlers::builtins()),
        Duration::from_millis(200),
        "w-metrics-redis",
    );
    let options = WorkerOptions {
        poll_interval: Duration::from_millis(50),
        once: true,
        register: false,
        metrics: Some(metrics.clone()),
        ..WorkerOptions::default()
    };
    let (_stop, stop) = watch::channel(false);
    let summary = tokio::time::timeout(WITHIN, run(processor, Feed::Deliveries(q), options, stop))
        .await
        .expect("drained");
    assert_eq!(summary.succeeded, 5, "{summary:?}");

    let text = metrics.encode().expect("exposition");
    assert_eq!(
        value(&text, "jobline_worker_claims_total", &[]),
        Some(5.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "jobline_worker_attempts_total",
            &[("outcome", "completed")]
        ),
        Some(5.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "jobline_worker_job_duration_seconds_count",
            &[("type", "noop")]
        ),
        Some(5.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "jobline_worker_jobs_in_flight", &[]),
        Some(0.0),
        "{text}"
    );
}
