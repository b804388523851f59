//! Alerts: posted once per change to a real local HTTP receiver, kept in
//! Postgres so overlapping sweepers post once, tried again when a post fails.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use jobline::alerts::{AlertConfig, Alerter};
use jobline::domain::health::HealthThresholds;
use jobline::store::workers::WorkerBeat;
use serde_json::Value;

use crate::support::test_db;

/// A Slack-compatible webhook on a loopback port: keeps every `text` it is
/// sent; answers 500 while `down`.
#[derive(Clone, Default)]
struct Receiver {
    texts: Arc<Mutex<Vec<String>>>,
    down: Arc<Mutex<bool>>,
}

impl Receiver {
    async fn start() -> (Self, reqwest::Url) {
        let receiver = Self::default();
        let app = axum::Router::new()
            .route(
                "/hook",
                axum::routing::post(|State(r): State<Receiver>, Json(body): Json<Value>| async move {
                    if *r.down.lock().expect("lock") {
                        return StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    let text = body["text"].as_str().unwrap_or_default().to_owned();
                    r.texts.lock().expect("lock").push(text);
                    StatusCode::OK
                }),
            )
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        let url = format!("http://{addr}/hook").parse().expect("url");
        (receiver, url)
    }

    /// What was posted since the last call.
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.texts.lock().expect("lock"))
    }

    fn set_down(&self, down: bool) {
        *self.down.lock().expect("lock") = down;
    }
}

fn alerter(url: &reqwest::Url) -> Alerter {
    Alerter::new(AlertConfig {
        webhook_url: url.clone(),
        failure_rate: 0.05,
        health: HealthThresholds::default(),
    })
    .expect("alerter")
}

#[tokio::test]
async fn health_changes_are_posted_once_each_way_and_a_healthy_start_is_quiet() {
    let db = test_db().await;
    let (hook, url) = Receiver::start().await;
    let alerts = alerter(&url);

    alerts.run_once(&db.store, None).await.expect("pass");
    assert!(hook.take().is_empty(), "a healthy first look posts nothing");

    let waiting = db.noop_for("acme").await.id;
    db.advance(61);
    let report = alerts.run_once(&db.store, None).await.expect("pass");
    let posted = hook.take();
    assert_eq!(posted.len(), 1, "{posted:?}");
    assert!(posted[0].contains("from healthy to degraded"), "{}", posted[0]);
    assert!(
        posted[0].contains("oldest pending job has waited 61s"),
        "{}",
        posted[0]
    );
    assert!(report.health.is_some());

    alerts.run_once(&db.store, None).await.expect("pass");
    assert!(hook.take().is_empty(), "no change, no post");

    db.advance(600);
    alerts.run_once(&db.store, None).await.expect("pass");
    assert!(hook.take()[0].contains("from degraded to unhealthy"));

    db.complete_now(waiting).await;
    alerts.run_once(&db.store, None).await.expect("pass");
    assert_eq!(
        hook.take(),
        vec!["jobline: the queue went from unhealthy to healthy".to_owned()]
    );
}

#[tokio::test]
async fn overlapping_sweepers_post_a_change_once() {
    let db = test_db().await;
    let (hook, url) = Receiver::start().await;
    let (a, b) = (alerter(&url), alerter(&url));
    let other = db.store.clone();
    db.noop_for("acme").await;
    db.advance(61);
    let (x, y) = tokio::join!(a.run_once(&db.store, None), b.run_once(&other, None));
    x.expect("pass");
    y.expect("pass");
    assert_eq!(hook.take().len(), 1, "one post for one change");
}

#[tokio::test]
async fn a_post_that_fails_is_tried_again_by_the_next_sweep() {
    let db = test_db().await;
    let (hook, url) = Receiver::start().await;
    let alerts = alerter(&url);
    db.noop_for("acme").await;
    db.advance(61);
    hook.set_down(true);
    let report = alerts
        .run_once(&db.store, None)
        .await
        .expect("a failed post is not a failed sweep");
    assert_eq!(report.failed_posts, 1);
    assert!(report.health.is_none());
    assert_eq!(
        db.count("SELECT count(*) FROM alert_state WHERE key = 'health'")
            .await,
        0,
        "the state did not move"
    );
    hook.set_down(false);
    alerts.run_once(&db.store, None).await.expect("pass");
    let posted = hook.take();
    assert_eq!(posted.len(), 1);
    assert!(posted[0].contains("the queue is degraded"), "{}", posted[0]);
}

#[tokio::test]
async fn a_worker_that_goes_silent_is_posted_once_until_it_comes_back() {
    let db = test_db().await;
    let (hook, url) = Receiver::start().await;
    let alerts = alerter(&url);
    let beat = |id: &str, state: &str| WorkerBeat {
        id: id.into(),
        host: "box".into(),
        version: "test".into(),
        queue: "generation_jobs".into(),
        concurrency: 4,
        started_at: db.now(),
        in_flight: 0,
        processed: 0,
        failed: 0,
        state: state.into(),
        job_types: None,
    };
    db.store.worker_beat(&beat("w-1", "running")).await.expect("beat");
    db.store.worker_beat(&beat("w-2", "stopped")).await.expect("beat");
    alerts.run_once(&db.store, None).await.expect("pass");
    assert!(hook.take().is_empty());

    db.advance(61);
    let report = alerts.run_once(&db.store, None).await.expect("pass");
    assert_eq!(
        report.silent_workers,
        vec!["w-1".to_owned()],
        "a stopped worker is not silent"
    );
    let posted = hook.take();
    assert_eq!(posted.len(), 1);
    assert!(
        posted[0].contains("1 worker(s) went silent") && posted[0].contains("w-1"),
        "{}",
        posted[0]
    );
    alerts.run_once(&db.store, None).await.expect("pass");
    assert!(hook.take().is_empty(), "told once");

    // Seen again, then silent again: told again.
    db.store.worker_beat(&beat("w-1", "running")).await.expect("beat");
    alerts.run_once(&db.store, None).await.expect("pass");
    db.advance(61);
    alerts.run_once(&db.store, None).await.expect("pass");
    assert_eq!(hook.take().len(), 1);
}

#[tokio::test]
async fn a_failure_rate_over_the_limit_is_posted_and_so_is_its_return() {
    let db = test_db().await;
    let (hook, url) = Receiver::start().await;
    let alerts = alerter(&url);
    // 9 finished, 3 failed: too few to judge.
    for n in 0..9 {
        let id = db.noop_for("acme").await.id;
        if n < 3 {
            db.fail_for_good(id).await;
        } else {
            db.complete_now(id).await;
        }
    }
    alerts.run_once(&db.store, None).await.expect("pass");
    let quiet: Vec<String> = hook.take().into_iter().filter(|t| t.contains("failed")).collect();
    assert!(quiet.is_empty(), "{quiet:?}");

    let id = db.noop_for("acme").await.id;
    db.complete_now(id).await;
    let report = alerts.run_once(&db.store, None).await.expect("pass");
    assert_eq!(report.failure_rate, Some("high"));
    let posted: Vec<String> = hook
        .take()
        .into_iter()
        .filter(|t| t.contains("15 minutes"))
        .collect();
    assert_eq!(posted.len(), 1);
    assert!(
        posted[0].contains("30.0%") && posted[0].contains("(3 of 10"),
        "{}",
        posted[0]
    );

    // Fifteen minutes on, the failures are out of the window.
    db.advance(16 * 60);
    for _ in 0..10 {
        let id = db.noop_for("acme").await.id;
        db.complete_now(id).await;
    }
    let report = alerts.run_once(&db.store, None).await.expect("pass");
    assert_eq!(report.failure_rate, Some("normal"));
    let posted: Vec<String> = hook
        .take()
        .into_iter()
        .filter(|t| t.contains("15 minutes"))
        .collect();
    assert!(posted[0].contains("back under the limit"), "{posted:?}");
}

#[tokio::test]
async fn a_sweep_audits_its_window_records_the_counts_and_posts_a_broken_promise_once() {
    let db = test_db().await;
    let (hook, url) = Receiver::start().await;
    let id = db.noop_for("acme").await.id;
    db.complete_now(id).await;
    let queue = Arc::new(jobline::queue::postgres::PostgresQueue::new(
        db.store.clone(),
        None,
    ));
    let publisher = jobline::queue::Publisher::new(db.store.clone(), queue, "sweeper");
    let config = jobline::sweeper::SweepConfig {
        alerts: Some(Arc::new(alerter(&url))),
        ..jobline::sweeper::SweepConfig::default()
    };
    let clean = jobline::sweeper::sweep_once(&db.store, &publisher, None, &config)
        .await
        .expect("sweep");
    assert!(clean.audit.expect("audited").ok);
    assert!(hook.take().is_empty(), "a clean first audit posts nothing");

    // Plant a second completion of the same attempt.
    db.client
        .execute(
            "INSERT INTO job_events (job_id, event, from_status, to_status, attempt, actor, at)
             VALUES ($1, 'completed', 'processing', 'completed', 1, 'planted', now())",
            &[&id],
        )
        .await
        .expect("plant");
    let broken = jobline::sweeper::sweep_once(&db.store, &publisher, None, &config)
        .await
        .expect("sweep");
    let audit = broken.audit.expect("audited");
    assert_eq!(audit.violations["completed_twice"], 1);
    assert_eq!(audit.examples["completed_twice"], vec![id]);
    let (recorded, _) = db.store.last_audit().await.expect("read").expect("recorded");
    assert_eq!(
        recorded["completed_twice"], 1,
        "kept for jobline_audit_violations"
    );
    let posted = hook.take();
    assert_eq!(posted.len(), 1, "{posted:?}");
    assert!(posted[0].contains("completed_twice=1"), "{}", posted[0]);

    jobline::sweeper::sweep_once(&db.store, &publisher, None, &config)
        .await
        .expect("sweep");
    assert!(hook.take().is_empty(), "the same violations are posted once");
}
