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
