//! The connection promises against real servers: TLS when the URL says
//! `sslmode=require` (with the server's certificate verified), and clear 503s
//! — never a 5xx with detail, never a hang — while Postgres is unreachable.

use std::time::Duration;

use jobline::store::pool::{self, PoolOptions};
use jobline::{Store, StoreError, StoreSettings};
use reqwest::Method;
use serde_json::json;

use crate::support::{ADMIN_KEY, send};

fn tls_url() -> String {
    format!("{}?sslmode=require", jobline::testing::admin_url())
}

fn ca() -> String {
    std::env::var("JOBLINE_TEST_PG_CA").expect(
        "JOBLINE_TEST_PG_CA is not set: run the suite with scripts/test (it starts Postgres with TLS)",
    )
}

fn store_over(options: PoolOptions) -> Store {
    Store::new(pool::build(&options).expect("pool"), StoreSettings::default())
}

/// A job's whole life on a one-connection pool, then the statements that
/// connection holds prepared.
async fn prepared_after_a_lifecycle(prepared_statements: bool) -> i64 {
    let db = jobline::testing::test_db().await;
    let settings = StoreSettings {
        prepared_statements,
        ..StoreSettings::default()
    };
    let store = Store::new(
        pool::build(&PoolOptions::new(db.url.clone(), 1)).expect("pool"),
        settings,
    );
    let created = store
        .create("t", "test", jobline::NewJob::new("noop", json!({})))
        .await
        .expect("create");
    let claims = store.claim("w", 1, None).await.expect("claim");
    assert_eq!(claims.len(), 1);
    let done = store.complete(&claims[0], None, None).await.expect("complete");
    assert!(matches!(done, jobline::store::Settled::Applied(_)), "{done:?}");
    assert_eq!(created.job.id, claims[0].job.id);
    let client = store.pool().get().await.expect("the same connection");
    // The simple query protocol: asking must not prepare anything itself.
    let rows = client
        .simple_query("SELECT count(*) FROM pg_prepared_statements")
        .await
        .expect("pg_prepared_statements");
    rows.iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).and_then(|v| v.parse().ok()),
            _ => None,
        })
        .expect("a count")
}

#[tokio::test]
async fn statements_are_prepared_once_per_connection_by_default() {
    assert!(
        prepared_after_a_lifecycle(true).await >= 3,
        "create, claim and complete are prepared"
    );
}

#[tokio::test]
async fn without_prepared_statements_nothing_is_left_on_the_connection_for_a_pooler() {
    assert_eq!(prepared_after_a_lifecycle(false).await, 0);
}

/// The same database name through the PgBouncer `scripts/pgbouncer-up`
/// started (transaction mode, 2 server connections per database).
fn through_pgbouncer(db_url: &str) -> String {
    let bouncer = std::env::var("JOBLINE_TEST_PGBOUNCER_URL").expect(
        "JOBLINE_TEST_PGBOUNCER_URL is not set: run the suite with scripts/test (it starts pgbouncer)",
    );
    let (base, _) = bouncer.rsplit_once('/').expect("a database part");
    let (_, name) = db_url.rsplit_once('/').expect("a database part");
    format!("{base}/{name}")
}

/// A counter of PgBouncer's admin console (`SHOW STATS`) for one database.
async fn bouncer_stat(db_url: &str, column: &str) -> i64 {
    let url = through_pgbouncer(db_url);
    let (base, name) = url.rsplit_once('/').expect("a database part");
    let console = jobline::testing::connect_raw(&format!("{base}/pgbouncer")).await;
    let messages = console.simple_query("SHOW STATS").await.expect("SHOW STATS");
    messages
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) if r.get("database") == Some(name) => {
                r.get(column).and_then(|v| v.parse().ok())
            }
            _ => None,
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn behind_a_transaction_mode_pgbouncer_jobs_live_their_whole_life_with_unnamed_statements() {
    let db = jobline::testing::test_db().await;
    let settings = StoreSettings {
        prepared_statements: false,
        ..StoreSettings::default()
    };
    // Eight client connections share PgBouncer's two server connections, so
    // consecutive statements of one client land on different sessions.
    let store = Store::with_clock(
        pool::build(&PoolOptions::new(through_pgbouncer(&db.url), 8)).expect("pool"),
        settings,
        std::sync::Arc::new(db.clock.clone()),
    );
    let before = bouncer_stat(&db.url, "total_xact_count").await;

    let creates = (0..40).map(|i| {
        let store = store.clone();
        async move {
            let new = jobline::NewJob::new("noop", json!({ "i": i }));
            let new = if i % 2 == 0 {
                new.idempotency_key(format!("k-{i}"))
            } else {
                new
            };
            store.create("t", "test", new).await.expect("create")
        }
    });
    let mut ids: Vec<uuid::Uuid> = futures::future::join_all(creates)
        .await
        .iter()
        .map(|c| c.job.id)
        .collect();
    let batch = (0..10)
        .map(|i| jobline::NewJob::new("noop", json!({ "batch": i })))
        .collect();
    let batch = store.create_many("t", "test", batch).await.expect("create_many");
    ids.extend(batch.iter().map(|c| c.job.id));
    let again = store
        .create(
            "t",
            "test",
            jobline::NewJob::new("noop", json!({ "i": 0 })).idempotency_key("k-0"),
        )
        .await
        .expect("the same key again");
    assert!(again.already_existed, "the key is found through the pooler");
    let outbox: Vec<i64> = batch.iter().filter_map(|c| c.outbox_id).collect();
    assert_eq!(
        store
            .mark_published(&outbox, "test")
            .await
            .expect("mark_published"),
        10
    );

    // Four workers claim and complete concurrently (completions share
    // statements) until nothing is left; the first job fails once on the way,
    // whichever worker claims it.
    let flaky = ids[0];
    let workers = (0..4).map(|w| {
        let store = store.clone();
        async move {
            let mut done = 0;
            loop {
                let claims = store.claim(&format!("w{w}"), 5, None).await.expect("claim");
                if claims.is_empty() {
                    return done;
                }
                let mut completions = Vec::new();
                for claim in &claims {
                    store
                        .heartbeat(claim.token(), Some("run"), Some(0.5))
                        .await
                        .expect("beat");
                    if claim.job.id == flaky && claim.job.attempts == 1 {
                        let failure = jobline::store::JobFailure::retryable("FLAKY", "once");
                        store.fail_with_jitter(claim, &failure, 0.0).await.expect("fail");
                        continue;
                    }
                    completions.push(store.complete(claim, Some(json!({ "ok": true })), None));
                }
                for settled in futures::future::join_all(completions).await {
                    assert!(
                        matches!(settled.expect("complete"), jobline::store::Settled::Applied(_)),
                        "each claim completes once"
                    );
                    done += 1;
                }
            }
        }
    });
    let mut completed: usize = futures::future::join_all(workers).await.iter().sum();
    assert_eq!(completed, ids.len() - 1, "all but the job that failed once");
    // It is due again once its backoff has passed.
    db.advance(3600);
    let claims = store.claim("w-last", 5, None).await.expect("claim");
    assert_eq!(claims.len(), 1, "the failed job, due again");
    assert_eq!(claims[0].job.attempts, 2);
    store.complete(&claims[0], None, None).await.expect("complete");
    completed += 1;
    assert_eq!(completed, ids.len(), "every job completed once");

    for id in &ids {
        let job = store.get("t", *id).await.expect("get").expect("the job");
        assert_eq!(job.status, jobline::JobStatus::Completed);
        let events: Vec<String> = store
            .timeline(Some("t"), *id)
            .await
            .expect("timeline")
            .expect("events")
            .into_iter()
            .map(|e| e.event)
            .collect();
        assert_eq!(events.first().map(String::as_str), Some("created"), "{events:?}");
        assert_eq!(events.last().map(String::as_str), Some("completed"), "{events:?}");
    }
    let stats = store.stats(Some("t")).await.expect("stats");
    assert_eq!(stats.by_status.get("completed"), Some(&(ids.len() as i64)));

    let through = bouncer_stat(&db.url, "total_xact_count").await - before;
    assert!(
        through >= 200,
        "the traffic went through PgBouncer: {through} transactions"
    );
}

#[tokio::test]
async fn migrations_run_through_a_transaction_mode_pgbouncer() {
    let name = format!("m_{}", uuid::Uuid::new_v4().simple());
    let admin = jobline::testing::connect_raw(&jobline::testing::admin_url()).await;
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("an empty database");
    let url = through_pgbouncer(&jobline::testing::url_for(&name));
    let first = jobline::store::migrate::run_url(&url).await.expect("migrate");
    assert!(
        !first.applied.is_empty() && first.already_applied == 0,
        "{first:?}"
    );
    let again = jobline::store::migrate::run_url(&url)
        .await
        .expect("migrate again");
    assert_eq!(
        (again.applied.len(), again.already_applied),
        (0, first.applied.len())
    );
}

#[tokio::test]
async fn sslmode_require_connects_over_tls_to_a_verified_server() {
    let store = store_over(PoolOptions {
        extra_roots_file: Some(ca()),
        ..PoolOptions::new(tls_url(), 2)
    });
    store.ping().await.expect("a TLS connection");
    let client = store.pool().get().await.expect("connection");
    let ssl: bool = client
        .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
        .await
        .expect("pg_stat_ssl")
        .get(0);
    assert!(ssl, "the session is encrypted");
}

#[tokio::test]
async fn a_server_certificate_nobody_vouches_for_is_refused() {
    let store = store_over(PoolOptions {
        extra_roots_file: None,
        wait_timeout: Duration::from_secs(3),
        ..PoolOptions::new(tls_url(), 2)
    });
    match store.ping().await {
        Err(StoreError::Unavailable(why)) => {
            assert!(
                why.to_lowercase().contains("certificate"),
                "refused for its certificate: {why}"
            )
        }
        other => panic!("an untrusted certificate must not connect: {other:?}"),
    }
}

/// An API whose Postgres is down (nothing listens on its port).
async fn api_without_postgres() -> String {
    let config = jobline::Config::from_lookup(|k| match k {
        "DATABASE_URL" => Some("postgres://postgres@127.0.0.1:9/none".into()),
        "JOBLINE_ADMIN_KEY" => Some(ADMIN_KEY.into()),
        "JOBLINE_QUEUE" => Some("postgres".into()),
        _ => None,
    })
    .expect("config");
    let state = jobline::app::state(&config, "test")
        .await
        .expect("state: the pool is lazy");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = jobline::app::serve(listener, state, std::future::pending()).await;
    });
    base
}

#[tokio::test]
async fn with_postgres_down_health_is_503_and_writes_are_refused_with_unavailable() {
    let base = api_without_postgres().await;
    let http = reqwest::Client::new();
    let started = std::time::Instant::now();
    let (status, body) = send(http.get(format!("{base}/health"))).await;
    assert_eq!(status, 503);
    assert_eq!(body["checks"]["database"], "unavailable");
    assert_eq!(body["status"], "unavailable");
    let (status, body) = send(
        http.request(Method::POST, format!("{base}/v1/jobs"))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({"type": "noop"})),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");
    assert!(
        !body.to_string().contains("127.0.0.1:9"),
        "no internal detail: {body}"
    );
    assert!(started.elapsed() < Duration::from_secs(10), "answered, not hung");
}
