//! Retention and the counts: finished jobs leave after their time with every
//! row they wrote, nothing else is touched, and `job_counts` always agrees
//! with the jobs table.

use std::time::Duration;

use jobline::domain::NewJob;
use jobline::store::Retention;
use jobline::sweeper::{SweepConfig, sweep_once};
use serde_json::json;
use uuid::Uuid;

use crate::support::{TestDb, test_db};

const DAY: i64 = 24 * 3600;

/// Rows of `table` for job `id`.
async fn rows_of(db: &TestDb, table: &str, id: Uuid) -> i64 {
    db.client
        .query_one(&format!("SELECT count(*) FROM {table} WHERE job_id = $1"), &[&id])
        .await
        .expect("count")
        .get(0)
}

/// The counts as `job_counts` has them and as the jobs table has them, per
/// tenant, type and status (zero rows left out).
async fn counts_agree(db: &TestDb) {
    let tallied = db
        .client
        .query(
            "SELECT tenant_id, job_type, status::text, sum(entered - exited)::bigint AS n
             FROM job_counts GROUP BY 1, 2, 3 HAVING sum(entered - exited) <> 0 ORDER BY 1, 2, 3",
            &[],
        )
        .await
        .expect("tallies");
    let counted = db
        .client
        .query(
            "SELECT tenant_id, job_type, status::text, count(*)::bigint AS n
             FROM jobs GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
            &[],
        )
        .await
        .expect("counts");
    let rows = |rows: Vec<tokio_postgres::Row>| {
        rows.iter()
            .map(|r| {
                (
                    r.get::<_, String>(0),
                    r.get::<_, String>(1),
                    r.get::<_, String>(2),
                    r.get::<_, i64>(3),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        rows(tallied),
        rows(counted),
        "job_counts agrees with the jobs table"
    );
}

#[tokio::test]
async fn finished_jobs_past_their_retention_leave_with_their_events_and_outbox_rows() {
    let db = test_db().await;
    let done = db.noop_for("acme").await.id;
    db.complete_now(done).await;
    let cancelled = db.noop_for("acme").await.id;
    db.store
        .cancel(Some("acme"), cancelled, "api")
        .await
        .expect("cancel");
    let failed = db.noop_for("globex").await.id;
    db.fail_for_good(failed).await;
    let waiting = db.noop_for("acme").await.id;
    let running = db.noop_for("globex").await.id;
    db.store.claim_by_id("w", running).await.expect("claim");
    assert!(rows_of(&db, "job_events", done).await >= 3);
    assert_eq!(rows_of(&db, "outbox", done).await, 1);

    // Eight days on: completed and cancelled are past their 7 days, the dead
    // letter (30 days) is not; a job finished today is kept.
    db.advance(8 * DAY);
    let fresh = db.noop_for("acme").await.id;
    db.complete_now(fresh).await;
    let pruned = db
        .store
        .prune_jobs(&Retention::default(), 100)
        .await
        .expect("prune");
    assert_eq!((pruned.completed, pruned.cancelled, pruned.failed), (1, 1, 0));
    for gone in [done, cancelled] {
        assert!(
            db.store.get_any(gone).await.expect("get").is_none(),
            "{gone} deleted"
        );
        assert_eq!(rows_of(&db, "job_events", gone).await, 0, "its events too");
        assert_eq!(rows_of(&db, "outbox", gone).await, 0, "its outbox rows too");
    }
    for kept in [failed, waiting, running, fresh] {
        assert!(
            db.store.get_any(kept).await.expect("get").is_some(),
            "{kept} kept"
        );
    }

    // Past 30 days the dead letter goes too; pending and processing never do.
    db.advance(23 * DAY);
    let pruned = db
        .store
        .prune_jobs(&Retention::default(), 100)
        .await
        .expect("prune");
    assert_eq!((pruned.completed, pruned.failed), (1, 1));
    assert_eq!(rows_of(&db, "job_events", failed).await, 0);
    for kept in [waiting, running] {
        assert!(
            db.store.get_any(kept).await.expect("get").is_some(),
            "{kept} kept"
        );
    }
    counts_agree(&db).await;
}

#[tokio::test]
async fn a_retention_of_zero_keeps_that_status_forever() {
    let db = test_db().await;
    let done = db.noop_for("acme").await.id;
    db.complete_now(done).await;
    let cancelled = db.noop_for("acme").await.id;
    db.store
        .cancel(Some("acme"), cancelled, "api")
        .await
        .expect("cancel");
    db.advance(3650 * DAY);
    let keep_completed = Retention {
        completed: None,
        ..Retention::default()
    };
    let pruned = db.store.prune_jobs(&keep_completed, 100).await.expect("prune");
    assert_eq!((pruned.completed, pruned.cancelled), (0, 1));
    assert!(db.store.get_any(done).await.expect("get").is_some());
    let pruned = db
        .store
        .prune_jobs(&Retention::FOREVER, 100)
        .await
        .expect("prune");
    assert_eq!(pruned.total(), 0);
}

#[tokio::test]
async fn an_idempotency_key_is_free_again_once_its_job_is_pruned() {
    let db = test_db().await;
    let first = db
        .job_for("acme", NewJob::new("noop", json!({})).idempotency_key("order-1"))
        .await;
    db.complete_now(first.id).await;
    let again = db
        .store
        .create(
            "acme",
            "test",
            NewJob::new("noop", json!({})).idempotency_key("order-1"),
        )
        .await
        .expect("replay");
    assert!(
        again.already_existed,
        "within retention the key names the same job"
    );
    assert_eq!(again.job.id, first.id);

    db.advance(8 * DAY);
    db.store
        .prune_jobs(&Retention::default(), 100)
        .await
        .expect("prune");
    let after = db
        .store
        .create(
            "acme",
            "test",
            NewJob::new("noop", json!({})).idempotency_key("order-1"),
        )
        .await
        .expect("create");
    assert!(!after.already_existed, "past retention the key makes a new job");
    assert_ne!(after.job.id, first.id);
}

#[tokio::test]
async fn a_job_another_transaction_holds_is_skipped_not_waited_for() {
    let db = test_db().await;
    let held = db.noop_for("acme").await.id;
    db.complete_now(held).await;
    let free = db.noop_for("acme").await.id;
    db.complete_now(free).await;
    db.advance(8 * DAY);

    let mut other = jobline::testing::connect_raw(&db.url).await;
    let tx = other.transaction().await.expect("begin");
    tx.execute("SELECT 1 FROM jobs WHERE id = $1 FOR UPDATE", &[&held])
        .await
        .expect("lock");
    let pruned = tokio::time::timeout(
        Duration::from_secs(10),
        db.store.prune_jobs(&Retention::default(), 100),
    )
    .await
    .expect("pruning does not wait for the lock")
    .expect("prune");
    assert_eq!(pruned.completed, 1, "only the free one");
    assert!(db.store.get_any(free).await.expect("get").is_none());
    tx.rollback().await.expect("rollback");
    let pruned = db
        .store
        .prune_jobs(&Retention::default(), 100)
        .await
        .expect("prune");
    assert_eq!(pruned.completed, 1, "the next pass takes the one that was held");
}

#[tokio::test]
async fn a_sweep_prunes_in_bounded_statements_and_goes_on_where_it_stopped() {
    let db = test_db().await;
    for tenant in ["acme", "globex", "initech"] {
        for _ in 0..4 {
            let id = db.noop_for(tenant).await.id;
            db.complete_now(id).await;
        }
    }
    db.advance(8 * DAY);
    let queue = std::sync::Arc::new(jobline::queue::postgres::PostgresQueue::new(
        db.store.clone(),
        None,
    ));
    let publisher = jobline::queue::Publisher::new(db.store.clone(), queue, "sweeper");
    let config = SweepConfig {
        batch: 5,
        prune_passes: 2,
        ..SweepConfig::default()
    };
    let first = sweep_once(&db.store, &publisher, None, &config)
        .await
        .expect("sweep");
    assert_eq!(first.pruned.jobs.completed, 10, "two statements of five");
    assert!(first.pruned.capped);
    let second = sweep_once(&db.store, &publisher, None, &config)
        .await
        .expect("sweep");
    assert_eq!(second.pruned.jobs.completed, 2);
    assert!(!second.pruned.capped);
    assert_eq!(db.count("SELECT count(*) FROM jobs").await, 0);
    counts_agree(&db).await;
}

#[tokio::test]
async fn replay_tokens_leave_with_the_dead_letter() {
    let db = test_db().await;
    db.client
        .execute(
            "INSERT INTO dead_letter_replays (tenant_id, token, created_at) VALUES
             ('acme', 'old', now() - interval '31 days'), ('acme', 'new', now())",
            &[],
        )
        .await
        .expect("tokens");
    // The tokens' age is the database's own time; the store's clock is now too.
    let pruned = db
        .store
        .prune_replays(&Retention::default(), 100)
        .await
        .expect("prune");
    assert_eq!(pruned, 1);
    assert_eq!(
        db.count("SELECT count(*) FROM dead_letter_replays WHERE token = 'new'")
            .await,
        1
    );
}

#[tokio::test]
async fn the_counts_stay_exact_through_every_transition_folding_and_pruning() {
    let db = test_db().await;
    let mut ids = Vec::new();
    for (tenant, kind) in [("acme", "noop"), ("acme", "render"), ("globex", "noop")] {
        for _ in 0..6 {
            ids.push(db.job_for(tenant, NewJob::new(kind, json!({}))).await.id);
        }
    }
    // One batch: created, claimed, completed, failed, cancelled, retried.
    db.store
        .create_many(
            "initech",
            "test",
            (0..20).map(|_| NewJob::new("noop", json!({}))).collect(),
        )
        .await
        .expect("batch");
    for id in &ids[0..4] {
        db.complete_now(*id).await;
    }
    db.fail_for_good(ids[6]).await;
    db.store.cancel(None, ids[7], "ops").await.expect("cancel");
    db.store
        .retry(None, ids[6], "ops", None)
        .await
        .expect("retry from the dead letter");
    db.store.claim_by_id("w", ids[12]).await.expect("claim");
    db.store.claim("w2", 5, None).await.expect("a batch of claims");
    counts_agree(&db).await;

    // A heartbeat counts nothing; a transaction rolled back counts nothing.
    let mut other = jobline::testing::connect_raw(&db.url).await;
    let tx = other.transaction().await.expect("begin");
    tx.execute("DELETE FROM jobs WHERE tenant_id = 'globex'", &[])
        .await
        .expect("delete");
    tx.rollback().await.expect("rollback");
    counts_agree(&db).await;

    // Folding keeps the sums; an hour and a day later, minutes fold into
    // hours and hours into one row per key.
    let before = db.count("SELECT count(*) FROM job_counts").await;
    db.store.compact_job_counts().await.expect("fold");
    let after = db.count("SELECT count(*) FROM job_counts").await;
    assert!(after < before, "folding writes fewer rows ({before} → {after})");
    counts_agree(&db).await;
    assert_eq!(
        db.store.compact_job_counts().await.expect("fold"),
        0,
        "compact rows are not taken again: an idle sweep writes nothing"
    );
    db.advance(2 * DAY);
    db.store.compact_job_counts().await.expect("fold");
    assert_eq!(
        db.count("SELECT count(*) FROM job_counts WHERE bucket <> '-infinity'")
            .await,
        0,
        "older than a day: one row per key"
    );
    counts_agree(&db).await;

    db.advance(8 * DAY);
    let pruned = db
        .store
        .prune_jobs(&Retention::default(), 1000)
        .await
        .expect("prune");
    assert_eq!(pruned.completed, 4);
    counts_agree(&db).await;
    let stats = db.store.stats(None).await.expect("stats");
    assert_eq!(stats.by_status["completed"], 0);
    assert_eq!(stats.total, db.count("SELECT count(*) FROM jobs").await);
}
