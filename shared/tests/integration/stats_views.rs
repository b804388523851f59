use jobline::domain::{JobStatus, NewJob};
use jobline::store::{ClaimByIdOutcome, JobFailure};
use serde_json::json;

use crate::support::test_db;

#[tokio::test]
async fn stats_count_statuses_waits_dead_letters_and_durations() {
    let db = test_db().await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(db.noop_for("acme").await.id);
    }
    db.store
        .create("globex", "test", NewJob::new("noop", json!({})))
        .await
        .expect("other tenant");
    // Two complete, after 4 s and 10 s of work.
    for (id, secs) in [(ids[0], 4), (ids[1], 10)] {
        let ClaimByIdOutcome::Claimed(c) = db.store.claim_by_id("w", id).await.expect("claim") else {
            panic!("claimable")
        };
        db.advance(secs);
        db.store.complete(&c, None, None).await.expect("complete");
    }
    // One fails for good, one is cancelled, one is running.
    let ClaimByIdOutcome::Claimed(c) = db.store.claim_by_id("w", ids[2]).await.expect("claim") else {
        panic!("claimable")
    };
    db.store
        .fail(&c, &JobFailure::permanent("BAD", "no"))
        .await
        .expect("fail");
    db.store
        .cancel(Some("acme"), ids[3], "api")
        .await
        .expect("cancel");
    db.store.claim_by_id("w", ids[4]).await.expect("claim");

    let stats = db.store.stats(Some("acme")).await.expect("stats");
    assert_eq!(stats.total, 5);
    assert_eq!(stats.by_status["completed"], 2);
    assert_eq!(stats.by_status["failed"], 1);
    assert_eq!(stats.by_status["cancelled"], 1);
    assert_eq!(stats.by_status["processing"], 1);
    assert_eq!(stats.by_status["pending"], 0);
    assert_eq!(stats.dead_letter, 1);
    assert_eq!(stats.p50_seconds, Some(7.0));
    assert!((stats.p95_seconds.expect("p95") - 9.7).abs() < 1e-9);

    let all = db.store.stats(None).await.expect("stats");
    assert_eq!(all.total, 6);
    assert_eq!(all.by_status["pending"], 1);
    // globex's job was created 14 s ago (clock time) and has waited since.
    assert_eq!(all.oldest_pending_age_seconds, 14.0);
}

async fn columns(db: &crate::support::TestDb, view: &str) -> Vec<String> {
    db.client
        .query(
            "SELECT column_name::text FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position",
            &[&view],
        )
        .await
        .expect("columns")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn the_operator_views_have_their_columns_and_agree_with_the_jobs() {
    let db = test_db().await;
    let a = db
        .store
        .create("acme", "test", NewJob::new("render", json!({})))
        .await
        .expect("create")
        .job;
    db.store
        .create("acme", "test", NewJob::new("render", json!({})))
        .await
        .expect("create");
    let ClaimByIdOutcome::Claimed(c) = db.store.claim_by_id("w9", a.id).await.expect("claim") else {
        panic!("claimable")
    };
    db.store
        .heartbeat(c.token(), Some("encode"), Some(50.0))
        .await
        .expect("beat");

    assert_eq!(
        columns(&db, "job_queue_stats").await,
        [
            "job_type",
            "status",
            "jobs",
            "oldest_created_at",
            "oldest_age_seconds",
            "delayed"
        ]
    );
    for col in [
        "stage",
        "progress",
        "running_seconds",
        "heartbeat_age_seconds",
        "locked_by",
    ] {
        assert!(
            columns(&db, "running_jobs_monitor")
                .await
                .contains(&col.to_owned()),
            "{col}"
        );
    }
    assert_eq!(
        columns(&db, "job_timing_stats").await,
        [
            "status",
            "job_type",
            "jobs",
            "avg_seconds",
            "p50_seconds",
            "p95_seconds"
        ]
    );
    assert_eq!(
        columns(&db, "stage_distribution").await,
        ["job_type", "status", "stage", "jobs", "avg_progress"]
    );
    for col in ["id", "error_code", "failure_reason", "failed_at"] {
        assert!(
            columns(&db, "dead_letter_jobs").await.contains(&col.to_owned()),
            "{col}"
        );
    }

    let row = db
        .client
        .query_one("SELECT locked_by, stage, progress FROM running_jobs_monitor", &[])
        .await
        .expect("one running job");
    assert_eq!(row.get::<_, String>(0), "w9");
    assert_eq!(row.get::<_, String>(1), "encode");
    assert_eq!(row.get::<_, f32>(2), 50.0);
    let pending: i64 = db
        .client
        .query_one(
            "SELECT jobs FROM job_queue_stats WHERE job_type = 'render' AND status = 'pending'",
            &[],
        )
        .await
        .expect("cell")
        .get(0);
    assert_eq!(pending, 1);
    db.store
        .fail(&c, &JobFailure::permanent("X", "y"))
        .await
        .expect("fail");
    assert_eq!(db.count("SELECT count(*) FROM dead_letter_jobs").await, 1);
    assert_eq!(
        db.count("SELECT sum(jobs)::int8 FROM stage_distribution WHERE stage = 'encode'")
            .await,
        1
    );
    let _ = JobStatus::Failed;
}

/// The claim query stays an index scan on the partial claim index however
/// many finished jobs pile up (docs/architecture.md shows the plan at a
/// million rows).
#[tokio::test]
async fn the_claim_query_is_an_index_scan_over_a_large_table() {
    let db = test_db().await;
    db.client
        .batch_execute(
            "INSERT INTO jobs (id, tenant_id, job_type, status, max_attempts, attempts, completed_at, started_at)
             SELECT gen_random_uuid(), 'acme', 'noop', 'completed', 5, 1, now(), now()
             FROM generate_series(1, 200000);
             INSERT INTO jobs (id, tenant_id, job_type, max_attempts)
             SELECT gen_random_uuid(), 'acme', 'noop', 5 FROM generate_series(1, 2000);
             ANALYZE jobs;",
        )
        .await
        .expect("load");
    // The claim is claim_jobs (migration 0010): explain its statement, as
    // the function holds it, with the store's arguments in place.
    let body: String = db
        .client
        .query_one("SELECT prosrc FROM pg_proc WHERE proname = 'claim_jobs'", &[])
        .await
        .expect("claim_jobs")
        .get(0);
    let start = body.find("RETURN QUERY").expect("one statement") + "RETURN QUERY".len();
    let end = body.rfind(';').expect("its end");
    let sql = body[start..end]
        .replace("p_now", "now()")
        .replace("p_worker", "'w'")
        .replace("p_limit", "10")
        .replace("p_job_types", "NULL::text[]")
        .replace("p_free_slots", "4");
    let plan: Vec<String> = db
        .client
        .query(&format!("EXPLAIN {sql}"), &[])
        .await
        .expect("explain")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let plan = plan.join("\n");
    assert!(plan.contains("Index Scan using jobs_claim_order"), "{plan}");
    assert!(!plan.contains("Seq Scan on jobs"), "{plan}");
}

/// A tenant's list without a status filter, and the processing jobs, are
/// index scans over a large table though neither has an index of its own
/// (migrations 0007 and 0008).
#[tokio::test]
async fn the_list_and_the_processing_jobs_are_index_scans_over_a_large_table() {
    let db = test_db().await;
    db.client
        .batch_execute(
            "INSERT INTO jobs (id, tenant_id, job_type, status, max_attempts, attempts, completed_at, started_at)
             SELECT gen_random_uuid(), 't' || (g % 7), 'noop', 'completed', 5, 1, now(), now()
             FROM generate_series(1, 100000) g;
             INSERT INTO jobs (id, tenant_id, job_type, status, max_attempts, attempts, started_at,
                               locked_by, locked_at, heartbeat_at)
             SELECT gen_random_uuid(), 't' || (g % 7), 'noop', 'processing', 5, 1, now(), 'w', now(), now()
             FROM generate_series(1, 300) g;
             ANALYZE jobs;",
        )
        .await
        .expect("load");
    let explain = |sql: String| {
        let client = &db.client;
        async move {
            let rows = client
                .query(&format!("EXPLAIN {sql}"), &[])
                .await
                .expect("explain");
            rows.iter()
                .map(|r| r.get::<_, String>(0))
                .collect::<Vec<_>>()
                .join("\n")
        }
    };
    let list = include_str!("../../src/store/sql/list_jobs.sql")
        .replace("JOB_COLUMNS", "*")
        .replace("$1", "'t3'")
        .replace("$2", "NULL")
        .replace("$3", "NULL")
        .replace("$4", "NULL")
        .replace("$5", "NULL")
        .replace("$6", "NULL")
        .replace("$7", "50");
    let plan = explain(list).await;
    assert!(plan.contains("jobs_tenant_status_recent"), "{plan}");
    assert!(!plan.contains("Seq Scan on jobs"), "{plan}");
    let plan = explain("SELECT id FROM processing_jobs".into()).await;
    assert!(plan.contains("jobs_tenant_status_recent"), "{plan}");
    assert!(!plan.contains("Seq Scan on jobs"), "{plan}");
    let found: i64 = db
        .client
        .query_one("SELECT count(*) FROM processing_jobs", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(found, 300, "every tenant's processing jobs");

    // Stats read the counts and the backlog, never the 100,000 finished jobs;
    // retention walks the oldest finished jobs by index.
    for tenant in ["'t3'", "NULL"] {
        let stats = include_str!("../../src/store/sql/stats.sql")
            .replace("$1", tenant)
            .replace("$2", "now()")
            .replace("$3", "(now() - interval '1 minute')")
            .replace("$4", "NULL");
        let plan = explain(stats).await;
        assert!(!plan.contains("Seq Scan on jobs"), "{plan}");
        assert!(!plan.contains("Bitmap Heap Scan on jobs"), "{plan}");
    }
    let prune = include_str!("../../src/store/sql/prune_jobs.sql")
        .replace("$1", "now()")
        .replace("$2", "(now() - interval '7 days')")
        .replace("$3", "(now() - interval '7 days')")
        .replace("$4", "(now() - interval '30 days')")
        .replace("$5", "500");
    let plan = explain(prune).await;
    assert!(plan.contains("jobs_tenant_status_recent"), "{plan}");
    assert!(!plan.contains("Seq Scan on jobs"), "{plan}");
    let stats = db.store.stats(None).await.expect("stats");
    assert_eq!(stats.by_status["completed"], 100_000);
    assert_eq!(stats.by_status["processing"], 300);
    assert_eq!(stats.total, 100_300);
}
