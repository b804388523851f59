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
        .create("t", jobline::NewJob::new("noop", json!({})))
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
