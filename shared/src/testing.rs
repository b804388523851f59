//! The test bed every crate's integration tests share (feature `testing`):
//! a database per test, cloned from a migrated template on the throwaway
//! cluster `scripts/test` starts (`JOBLINE_TEST_DATABASE_URL`), a manual
//! clock to move instead of sleeping, and moto's SQS (`AWS_ENDPOINT_URL_SQS`).
//! Test code: it panics with a clear message when the servers are missing.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::types::QueueAttributeName;
use chrono::{DateTime, Utc};
use tokio_postgres::NoTls;
use uuid::Uuid;

use crate::domain::{Job, ManualClock, NewJob, RetryPolicy};
use crate::store::ClaimByIdOutcome;
use crate::store::migrate::{self, MIGRATIONS};
use crate::store::pool::{self, PoolOptions};
use crate::worker::{Finished, Processor, Registry};
use crate::{Store, StoreSettings};

/// A fresh migrated database with a store over it (on a manual clock) and a
/// plain client for assertions.
#[derive(Debug)]
pub struct TestDb {
    pub store: Store,
    pub clock: ManualClock,
    pub url: String,
    pub client: tokio_postgres::Client,
}

/// The admin URL of the test cluster.
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

/// Named after the migrations' checksums, so a schema change makes a new one.
fn template_name() -> String {
    use std::hash::{Hash, Hasher};
    let sum: String = MIGRATIONS.iter().map(|m| m.checksum()).collect();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    sum.hash(&mut h);
    format!("jobline_tpl_{:016x}", h.finish())
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
    let name = format!("t_{}", Uuid::new_v4().simple());
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create database");
    url_for(&name)
}

/// Store settings for tests: backoff base 2 s, cap 60 s.
pub fn test_settings() -> StoreSettings {
    StoreSettings {
        retry: RetryPolicy::new(Duration::from_secs(2), Duration::from_secs(60)),
        ..StoreSettings::default()
    }
}

/// A fresh migrated database with [`test_settings`].
pub async fn test_db() -> TestDb {
    test_db_with(test_settings()).await
}

pub async fn test_db_with(settings: StoreSettings) -> TestDb {
    let admin = connect_raw(&admin_url()).await;
    let template = ensure_template(&admin).await;
    let name = format!("t_{}", Uuid::new_v4().simple());
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

/// The tenant scene builders use when a test does not care which.
pub const TENANT: &str = "acme";
/// The actor scene builders write into `created` events.
pub const ACTOR: &str = "test";
/// The worker [`run_job`] claims as.
pub const WORKER: &str = "test-worker";

/// Scenes: the jobs a test starts from, in one line each ("a noop job for
/// tenant acme").
impl TestDb {
    /// `new` created for `tenant` through the store (not published).
    pub async fn job_for(&self, tenant: &str, new: NewJob) -> Job {
        self.store.create(tenant, ACTOR, new).await.expect("create").job
    }

    /// A `noop` job for `tenant`.
    pub async fn noop_for(&self, tenant: &str) -> Job {
        self.job_for(tenant, NewJob::new("noop", serde_json::json!({})))
            .await
    }

    /// `new` for [`TENANT`], created and its first message marked published,
    /// as the create route leaves it after its commit.
    pub async fn published_job(&self, new: NewJob) -> Job {
        let created = self.store.create(TENANT, ACTOR, new).await.expect("create");
        let outbox = created.outbox_id.expect("a new job has an outbox row");
        assert_eq!(
            self.store.mark_published(&[outbox], ACTOR).await.expect("mark"),
            1,
            "the outbox row is marked sent"
        );
        created.job
    }

    /// Claims `id` as [`WORKER`] and completes it.
    pub async fn complete_now(&self, id: Uuid) {
        let ClaimByIdOutcome::Claimed(c) = self.store.claim_by_id(WORKER, id).await.expect("claim") else {
            panic!("job {id} is claimable");
        };
        self.store.complete(&c, None, None).await.expect("complete");
    }

    /// Claims `id` as [`WORKER`] and fails it for good (into the dead letter).
    pub async fn fail_for_good(&self, id: Uuid) {
        let ClaimByIdOutcome::Claimed(c) = self.store.claim_by_id(WORKER, id).await.expect("claim") else {
            panic!("job {id} is claimable");
        };
        self.store
            .fail(&c, &crate::store::JobFailure::permanent("BAD", "no"))
            .await
            .expect("fail");
    }

    /// The job as the store has it now.
    pub async fn job(&self, id: Uuid) -> Job {
        self.store
            .get_any(id)
            .await
            .expect("get")
            .expect("the job exists")
    }
}

/// Creates a `job_type` job for [`TENANT`], claims it as [`WORKER`] and runs
/// it with `registry` to its end (the processing core every consumer uses);
/// how the attempt ended and the job row after.
pub async fn run_job(
    db: &TestDb,
    registry: Registry,
    job_type: &str,
    payload: serde_json::Value,
) -> (Finished, Job) {
    let job = db.job_for(TENANT, NewJob::new(job_type, payload)).await;
    let ClaimByIdOutcome::Claimed(claim) = db.store.claim_by_id(WORKER, job.id).await.expect("claim") else {
        panic!("a new job is claimable");
    };
    let processor = Processor::new(
        db.store.clone(),
        Arc::new(registry),
        Duration::from_millis(50),
        WORKER,
    );
    let finished = processor.run_claim(*claim).await;
    (finished, db.job(job.id).await)
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
    pub async fn events(&self, id: Uuid) -> Vec<String> {
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

/// A client for moto's SQS server.
pub fn sqs_client() -> aws_sdk_sqs::Client {
    let endpoint = std::env::var("AWS_ENDPOINT_URL_SQS")
        .expect("AWS_ENDPOINT_URL_SQS is not set: run the suite with scripts/test (it starts moto)");
    pool::install_crypto_provider();
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

/// A fresh SQS queue with a dead-letter queue after `max_receives` receives.
#[derive(Debug, Clone)]
pub struct TestQueue {
    pub url: String,
    pub arn: String,
    pub dlq_url: String,
}

async fn queue_arn(client: &aws_sdk_sqs::Client, url: &str) -> String {
    client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue arn")
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .expect("arn")
}

pub async fn fresh_sqs_queue(
    client: &aws_sdk_sqs::Client,
    visibility_secs: u32,
    max_receives: u32,
) -> TestQueue {
    let name = format!("t_{}", Uuid::new_v4().simple());
    let dlq_url = client
        .create_queue()
        .queue_name(format!("{name}_dlq"))
        .send()
        .await
        .expect("create dlq")
        .queue_url()
        .expect("url")
        .to_owned();
    let dlq_arn = queue_arn(client, &dlq_url).await;
    let url = client
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::VisibilityTimeout, visibility_secs.to_string())
        .attributes(
            QueueAttributeName::RedrivePolicy,
            format!(r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"{max_receives}"}}"#),
        )
        .send()
        .await
        .expect("create queue")
        .queue_url()
        .expect("url")
        .to_owned();
    let arn = queue_arn(client, &url).await;
    TestQueue { url, arn, dlq_url }
}
