//! The sweeper's re-wake republishes only what a consumer could take and
//! whose message is plausibly lost; stats name the types nobody serves.

use std::time::Duration;

use jobline::domain::NewJob;
use jobline::store::rewake::Rewoken;
use jobline::store::workers::WorkerBeat;
use jobline::store::{ClaimByIdOutcome, StoreSettings};
use jobline::testing::{TestDb, test_db, test_db_with, test_settings};
use serde_json::json;

use crate::support::test_api;

const STALE: Duration = Duration::from_secs(300);

/// A live worker serving `types` (`None`: every type), as the runner beats.
async fn worker_serving(db: &TestDb, id: &str, types: Option<&[&str]>) {
    let beat = WorkerBeat {
        id: id.into(),
        host: "h".into(),
        version: "0.1.0".into(),
        queue: "postgres".into(),
        concurrency: 4,
        started_at: db.now(),
        in_flight: 0,
        processed: 0,
        failed: 0,
        state: "running".into(),
        job_types: types.map(|t| t.iter().map(|s| (*s).to_owned()).collect()),
    };
    db.store.worker_beat(&beat).await.expect("beat");
}

async fn published(db: &TestDb, job_type: &str) -> uuid::Uuid {
    db.published_job(NewJob::new(job_type, json!({}))).await.id
}

fn ids(woken: &[Rewoken]) -> Vec<uuid::Uuid> {
    let mut v: Vec<_> = woken.iter().map(|w| w.job_id).collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_backlog_behind_busy_consumers_waits_for_the_long_horizon() {
    let db = test_db().await;
    let running = published(&db, "noop").await;
    let ClaimByIdOutcome::Claimed(_) = db.store.claim_by_id("busy", running).await.expect("claim") else {
        panic!("claimable")
    };
    let mut waiting = vec![published(&db, "noop").await, published(&db, "noop").await];
    waiting.sort();
    let other = published(&db, "sleep").await;

    // Due and silent for 400 s, but a noop job is being processed: the noop
    // backlog's messages are in the queue. The sleep job's consumers are idle
    // while it waits: its message is plausibly lost.
    db.advance(400);
    assert_eq!(
        ids(&db.store.rewake_due(STALE, 100).await.expect("rewake")),
        [other]
    );
    db.advance(400);
    assert!(db.store.rewake_due(STALE, 100).await.expect("rewake").is_empty());

    // Past the long horizon (12 x 300 s since due) they are woken anyway, once.
    db.advance(3600 - 800 + 1);
    assert_eq!(
        ids(&db.store.rewake_due(STALE, 100).await.expect("rewake")),
        waiting
    );
    db.advance(400);
    assert!(
        db.store.rewake_due(STALE, 100).await.expect("rewake").is_empty(),
        "not again every sweep"
    );
}

#[tokio::test]
async fn a_type_no_live_worker_serves_is_not_rewoken_and_is_named_in_stats() {
    let db = test_db().await;
    let noop = published(&db, "noop").await;
    let transcode = published(&db, "transcode").await;
    db.advance(400);
    worker_serving(&db, "edge-noop", Some(&["noop"])).await;

    assert_eq!(
        ids(&db.store.rewake_due(STALE, 100).await.expect("rewake")),
        [noop]
    );
    assert_eq!(
        db.store.stats(None).await.expect("stats").unserved_types,
        ["transcode"]
    );

    // A worker of every type comes: the job is served, and woken.
    worker_serving(&db, "edge-all", None).await;
    assert_eq!(
        ids(&db.store.rewake_due(STALE, 100).await.expect("rewake")),
        [transcode]
    );
    assert!(
        db.store
            .stats(None)
            .await
            .expect("stats")
            .unserved_types
            .is_empty()
    );

    // Workers not seen for a minute serve nothing.
    db.advance(400);
    let stats = db.store.stats(None).await.expect("stats");
    assert!(
        stats.unserved_types.is_empty(),
        "nothing known: every type counts as served"
    );
    worker_serving(&db, "edge-story", Some(&["story_script"])).await;
    let mut unserved = db.store.stats(None).await.expect("stats").unserved_types;
    unserved.sort();
    assert_eq!(unserved, ["noop", "transcode"]);
}

#[tokio::test]
async fn the_lambda_consumer_s_configured_types_count_as_served() {
    let db = test_db_with(StoreSettings {
        consumer_job_types: Some(vec!["webhook".into()]),
        ..test_settings()
    })
    .await;
    let webhook = published(&db, "webhook").await;
    let _story = published(&db, "story_script").await;
    db.advance(400);

    assert_eq!(
        ids(&db.store.rewake_due(STALE, 100).await.expect("rewake")),
        [webhook]
    );
    assert_eq!(
        db.store.stats(None).await.expect("stats").unserved_types,
        ["story_script"]
    );
}

#[tokio::test]
async fn stats_degrade_health_and_say_which_types_nobody_serves() {
    let api = test_api().await;
    worker_serving(&api.db, "edge-1", Some(&["noop"])).await;
    api.post("/v1/jobs", json!({"type": "sleep", "payload": {"ms": 1}}))
        .await;

    let (s, stats) = api.get("/v1/stats").await;
    assert_eq!(s, 200);
    assert_eq!(stats["unserved_types"], json!(["sleep"]));
    assert_eq!(stats["health"], "degraded", "{stats}");
    let reasons = stats["health_reasons"].to_string();
    assert!(
        reasons.contains("no worker serves job type(s) sleep"),
        "{reasons}"
    );
}

#[tokio::test]
async fn registrations_of_workers_gone_for_a_week_are_forgotten_others_kept() {
    let db = test_db().await;
    worker_serving(&db, "restarted-long-ago", None).await;
    db.advance(6 * 24 * 3600);
    worker_serving(&db, "gone-yesterday", None).await;
    db.advance(24 * 3600 + 1);
    worker_serving(&db, "alive", None).await;

    let forget = jobline::store::WORKER_FORGET_AFTER;
    assert_eq!(db.store.forget_workers(forget, 100).await.expect("forget"), 1);
    let mut left: Vec<String> = db
        .store
        .workers(Duration::from_secs(60))
        .await
        .expect("list")
        .into_iter()
        .map(|w| w.worker.id)
        .collect();
    left.sort();
    assert_eq!(left, ["alive", "gone-yesterday"]);
    assert_eq!(db.store.forget_workers(forget, 100).await.expect("again"), 0);
}
