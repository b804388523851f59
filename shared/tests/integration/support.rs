//! The test bed: every test gets its own database, cloned from a migrated
//! template, on the throwaway cluster that `scripts/test` starts, and a
//! manual clock it moves instead of sleeping.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use jobline::domain::ManualClock;
use jobline::store::migrate::{self, MIGRATIONS};
use jobline::store::pool::{self, PoolOptions};
use jobline::{Store, StoreSettings};
use tokio_postgres::NoTls;

pub struct TestDb {
    pub store: Store,
    pub clock: ManualClock,
    #[allow(dead_code)]
    pub url: String,
    pub client: tokio_postgres::Client,
}

pub fn admin_url() -> String {
    std::env::var("JOBLINE_TEST_DATABASE_URL").expect(
        "JOBLINE_TEST_DATABASE_URL is not set: run the suite with scripts/test (it starts a throwaway Postgres)",
    )
}

/// The admin URL with another database name.
pub fn url_for(db: &str) -> String {
    let admin = admin_url();
    let (base, _) = admin.rsplit_once('/').expect("URL has a database part");
    format!("{base}/{db}")
}

pub async fn connect_raw(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("connect to test Postgres");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

fn template_name() -> String {
    let sum: String = MIGRATIONS.iter().map(|m| m.checksum()).collect();
    let digest = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        sum.hash(&mut h);
        h.finish()
    };
    format!("jobline_tpl_{digest:016x}")
}

/// Creates the migrated template once per cluster (serialized across test
/// processes with an advisory lock).
async fn ensure_template(admin: &tokio_postgres::Client) -> String {
    let name = template_name();
    admin
        .execute("SELECT pg_advisory_lock(4242)", &[])
        .await
        .expect("lock");
    let exists = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .expect("query pg_database")
        .is_some();
    if !exists {
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create template");
        let mut client = connect_raw(&url_for(&name)).await;
        migrate::run(&mut client).await.expect("migrate template");
        drop(client);
    }
    admin
        .execute("SELECT pg_advisory_unlock(4242)", &[])
        .await
        .expect("unlock");
    name
}

/// An empty database (no migrations), for migration tests.
pub async fn empty_database() -> String {
    let admin = connect_raw(&admin_url()).await;
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create database");
    url_for(&name)
}

/// A fresh migrated database with a store over it.
pub async fn test_db() -> TestDb {
    test_db_with(StoreSettings {
        retry: jobline::domain::RetryPolicy::new(Duration::from_secs(2), Duration::from_secs(60)),
        ..StoreSettings::default()
    })
    .await
}

pub async fn test_db_with(settings: StoreSettings) -> TestDb {
    let admin = connect_raw(&admin_url()).await;
    let template = ensure_template(&admin).await;
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    // A clone fails while anyone is still connected to the template (a
    // just-closed migration connection can linger a moment): retry briefly.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match admin
            .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .await
        {
            Ok(()) => break,
            Err(e)
                if tokio::time::Instant::now() < deadline
                    && e.to_string().contains("accessed by other users") =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("create test database: {e}"),
        }
    }
    let url = url_for(&name);
    let clock = ManualClock::new(Utc::now());
    let pool = pool::build(&PoolOptions::new(url.clone(), 16)).expect("pool");
    let store = Store::with_clock(pool, settings, Arc::new(clock.clone()));
    let client = connect_raw(&url).await;
    TestDb {
        store,
        clock,
        url,
        client,
    }
}

impl TestDb {
    pub fn now(&self) -> DateTime<Utc> {
        self.store.now()
    }

    pub fn advance(&self, secs: i64) {
        self.clock.advance(chrono::Duration::seconds(secs));
    }

    /// A single number from SQL.
    pub async fn count(&self, sql: &str) -> i64 {
        self.client.query_one(sql, &[]).await.expect(sql).get(0)
    }

    /// The events of a job, by name, in order.
    pub async fn events(&self, id: uuid::Uuid) -> Vec<String> {
        self.client
            .query(
                "SELECT event FROM job_events WHERE job_id = $1 ORDER BY id",
                &[&id],
            )
            .await
            .expect("events")
            .iter()
            .map(|r| r.get(0))
            .collect()
    }
}

/// A running API over a fresh database: `jobline serve`'s code on an
/// ephemeral port, with an admin key for tenant `default`.
pub struct TestApi {
    pub db: TestDb,
    pub base: String,
    pub http: reqwest::Client,
    pub state: jobline::http::AppState,
}

pub const ADMIN_KEY: &str = "test-admin-key-0123456789abcdef";

pub async fn test_api() -> TestApi {
    test_api_with(&[]).await
}

/// With extra configuration variables (e.g. `JOBLINE_JOB_TYPES`).
pub async fn test_api_with(vars: &[(&str, &str)]) -> TestApi {
    let db = test_db().await;
    let mut all: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    all.push(("JOBLINE_ADMIN_KEY".into(), ADMIN_KEY.into()));
    all.push(("JOBLINE_QUEUE".into(), "postgres".into()));
    let config = jobline::Config::from_lookup(|k| all.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
        .expect("test config");
    let state = jobline::app::state_with(&config, db.store.clone(), "test-api")
        .await
        .expect("state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let served = state.clone();
    tokio::spawn(async move {
        let _ = jobline::app::serve(listener, served, std::future::pending()).await;
    });
    TestApi {
        db,
        base,
        http: reqwest::Client::new(),
        state,
    }
}

impl TestApi {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with the admin key.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(ADMIN_KEY)
    }

    /// A request with `key`.
    pub fn with_key(&self, key: &str, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(key)
    }

    pub async fn key(&self, tenant: &str, scopes: &[&str]) -> String {
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        self.db
            .store
            .create_api_key(tenant, &scopes, None)
            .await
            .expect("key")
            .key
    }
}

/// Status and JSON body of a response.
pub async fn read(resp: reqwest::Response) -> (u16, serde_json::Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, body)
}
