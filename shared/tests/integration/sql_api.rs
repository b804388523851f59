//! The SQL API (migration 0010): an application enqueues inside its own
//! transaction, the relay listener publishes on commit, a worker with any
//! adapter completes the job; one idempotency for SQL and HTTP; bad input
//! refused with its field; the `jobline_app` role reaches its own tenant
//! only, through a transaction-mode PgBouncer; and a worker written in SQL
//! drives the same transitions as the store.

use std::time::Duration;

use jobline::worker::WorkerOptions;
use jobline::worker::runner::run;
use reqwest::Method;
use serde_json::json;
use tokio::sync::watch;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use crate::support::{TestApi, send, test_api_on, test_api_with};
use jobline::testing::{connect_raw, test_db};

/// The seed checklist's query: the queue's operations as functions.
#[tokio::test]
async fn the_checklist_query_lists_all_seven_functions() {
    let db = test_db().await;
    let names: Vec<String> = db
        .client
        .query(
            "SELECT routine_name FROM information_schema.routines
             WHERE routine_schema = 'public'
               AND routine_name IN ('enqueue_job', 'claim_jobs', 'complete_job', 'fail_job',
                                    'cancel_job', 'release_stale_jobs', 'update_job_heartbeat')
             ORDER BY routine_name",
            &[],
        )
        .await
        .expect("routines")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        names,
        [
            "cancel_job",
            "claim_jobs",
            "complete_job",
            "enqueue_job",
            "fail_job",
            "release_stale_jobs",
            "update_job_heartbeat"
        ]
    );
}

/// In one transaction: the application's own row and its job.
async fn order_with_job(client: &mut tokio_postgres::Client, order: &str, commit: bool) -> Uuid {
    client
        .batch_execute("CREATE TABLE IF NOT EXISTS orders (id text PRIMARY KEY)")
        .await
        .expect("orders");
    let tx = client.transaction().await.expect("begin");
    tx.execute("INSERT INTO orders VALUES ($1)", &[&order])
        .await
        .expect("order");
    let row = tx
        .query_one(
            "SELECT job_id, status, already_existed FROM enqueue_job('default', 'sleep', $1, '{}')",
            &[&json!({"ms": 5, "order": order})],
        )
        .await
        .expect("enqueue_job");
    let id: Uuid = row.get(0);
    assert_eq!(row.get::<_, String>(1), "pending");
    assert!(!row.get::<_, bool>(2));
    if commit {
        tx.commit().await.expect("commit");
    } else {
        tx.rollback().await.expect("rollback");
    }
    id
}

/// A rolled-back enqueue leaves nothing; a committed one is published by the
/// relay listener (nothing else runs: no creator publishes, no sweeper) and
/// completed by a worker on the API's adapter.
async fn enqueued_by_sql_and_completed(api: TestApi) {
    let mut app = connect_raw(&api.db.url).await;
    let gone = order_with_job(&mut app, "o-1", false).await;
    for table in ["orders", "jobs", "outbox", "job_events"] {
        assert_eq!(
            api.db.count(&format!("SELECT count(*) FROM {table}")).await,
            0,
            "{table} after a rollback"
        );
    }
    let (stop_tx, stop) = watch::channel(false);
    let relay = tokio::spawn(jobline::queue::relay::listen(
        api.state.enqueuer.publisher().clone(),
        api.db.url.clone(),
        stop.clone(),
    ));
    // The store runs on a manual clock behind the database's: move it ahead
    // of the commit, so the outbox row is due to the relay and the job to
    // the worker.
    api.db.advance(5);
    let id = order_with_job(&mut app, "o-2", true).await;
    assert_ne!(id, gone);
    // Published by the relay on its own (no sweeper, no creator publishes).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while api
        .db
        .count(&format!(
            "SELECT count(*) FROM outbox WHERE job_id = '{id}' AND status = 'sent'"
        ))
        .await
        == 0
    {
        assert!(tokio::time::Instant::now() < deadline, "not published in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let processor = jobline::app::processor(&api.config, api.db.store.clone(), "sql-worker");
    loop {
        let job = api.db.job(id).await;
        if job.status == jobline::JobStatus::Completed {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not completed in time: {job:?}"
        );
        let options = WorkerOptions {
            once: true,
            poll_interval: Duration::from_millis(100),
            ..WorkerOptions::default()
        };
        let (_tx, rx) = watch::channel(false);
        run(processor.clone(), api.feed.clone(), options, rx).await;
    }
    assert_eq!(
        api.db.events(id).await,
        ["created", "published", "claimed", "completed"]
    );
    assert_eq!(api.db.count("SELECT count(*) FROM orders").await, 1);
    stop_tx.send(true).expect("stop");
    relay.await.expect("the relay stops");
}

#[tokio::test]
async fn a_job_enqueued_by_sql_is_completed_with_the_postgres_adapter() {
    enqueued_by_sql_and_completed(test_api_on("postgres").await).await;
}

#[tokio::test]
async fn a_job_enqueued_by_sql_is_completed_with_the_sqs_adapter() {
    enqueued_by_sql_and_completed(test_api_on("sqs").await).await;
}

#[tokio::test]
async fn a_job_enqueued_by_sql_is_completed_with_the_redis_adapter() {
    enqueued_by_sql_and_completed(test_api_on("redis").await).await;
}

#[tokio::test]
async fn a_job_enqueued_by_sql_is_completed_with_the_upstash_adapter() {
    enqueued_by_sql_and_completed(test_api_on("upstash").await).await;
}

async fn sql_enqueue(
    client: &tokio_postgres::Client,
    payload: serde_json::Value,
    options: serde_json::Value,
) -> Result<(Uuid, bool), tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT job_id, already_existed FROM enqueue_job('default', 'noop', $1, $2)",
            &[&payload, &options],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// One idempotency: the same key and request by SQL then HTTP (and the other
/// way round) is one job; another request under the key is a conflict on
/// either path, named `idempotency_conflict`.
#[tokio::test]
async fn sql_and_http_share_idempotency_keys() {
    let api = test_api_with(&[]).await;
    let body = |key: &str, n: i64| {
        json!({"type": "noop", "payload": {"n": n, "b": [1, 2]}, "priority": "P1",
               "delay_seconds": 30, "idempotency_key": key})
    };

    let (sql_id, existed) = sql_enqueue(
        &api.db.client,
        json!({"b": [1, 2], "n": 1}),
        json!({"priority": 1, "delay_seconds": 30, "idempotency_key": "k-sql"}),
    )
    .await
    .expect("enqueue");
    assert!(!existed);
    let (status, job) = send(api.admin(Method::POST, "/v1/jobs").json(&body("k-sql", 1))).await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["id"], sql_id.to_string());
    assert_eq!(job["already_existed"], true);
    let (status, err) = send(api.admin(Method::POST, "/v1/jobs").json(&body("k-sql", 2))).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (409, Some("idempotency_conflict"))
    );

    let (status, job) = send(api.admin(Method::POST, "/v1/jobs").json(&body("k-http", 1))).await;
    assert_eq!(status, 201, "{job}");
    let (again, existed) = sql_enqueue(
        &api.db.client,
        json!({"n": 1, "b": [1, 2]}),
        json!({"priority": "P1", "delay_seconds": 30, "idempotency_key": "k-http"}),
    )
    .await
    .expect("the same request");
    assert_eq!(
        (again.to_string(), existed),
        (job["id"].as_str().unwrap().to_owned(), true)
    );
    let err = sql_enqueue(
        &api.db.client,
        json!({"n": 2, "b": [1, 2]}),
        json!({"priority": "P1", "delay_seconds": 30, "idempotency_key": "k-http"}),
    )
    .await
    .expect_err("another request under the key");
    let db = err.as_db_error().expect("a database error");
    assert_eq!(db.code().code(), "JL409");
    assert_eq!(db.constraint(), Some("idempotency_conflict"));
    assert!(
        db.message().starts_with("idempotency_conflict:"),
        "{}",
        db.message()
    );
    assert_eq!(api.db.count("SELECT count(*) FROM jobs").await, 2);
}

/// A key stored before migration 0010 carries the old hash: the same
/// request again still finds its job; another request is still refused.
#[tokio::test]
async fn a_key_stored_before_the_sql_api_still_answers_its_request() {
    let db = test_db().await;
    let new = jobline::NewJob::new("noop", json!({"x": 1})).idempotency_key("old");
    let first = db
        .store
        .create("acme", "test", new.clone())
        .await
        .expect("create");
    db.client
        .execute(
            "UPDATE jobs SET request_hash = $1 WHERE id = $2",
            &[&new.legacy_request_hash(), &first.job.id],
        )
        .await
        .expect("as before 0010");
    let again = db.store.create("acme", "test", new.clone()).await.expect("again");
    assert_eq!((again.job.id, again.already_existed), (first.job.id, true));
    let mut other = new.clone();
    other.payload = json!({"x": 2});
    assert!(matches!(
        db.store.create("acme", "test", other).await,
        Err(jobline::store::StoreError::IdempotencyConflict { .. })
    ));
}

/// Every bad input names its field (in the message and the error's COLUMN),
/// SQLSTATE 22023, and writes nothing.
#[tokio::test]
async fn bad_input_to_enqueue_job_names_the_field_and_writes_nothing() {
    let db = test_db().await;
    let cases = bad_inputs();
    for (job_type, options, field) in cases {
        let err = db
            .client
            .query_one(
                "SELECT * FROM enqueue_job('acme', $1, '{}', $2)",
                &[&job_type, &options],
            )
            .await
            .expect_err(&format!("{options} is refused"));
        let e = err.as_db_error().expect("a database error");
        assert_eq!(e.code(), &SqlState::INVALID_PARAMETER_VALUE, "{options}");
        assert_eq!(e.column(), Some(field), "{options}");
        assert!(
            e.message().starts_with(&format!("validation_failed: {field}:")),
            "{options}: {}",
            e.message()
        );
    }
    let big = json!({"blob": "x".repeat(300_000)});
    let err = db
        .client
        .query_one("SELECT * FROM enqueue_job('acme', 'noop', $1)", &[&big])
        .await
        .expect_err("too large");
    assert_eq!(err.as_db_error().and_then(|e| e.column()), Some("payload"));
    for table in ["jobs", "outbox", "job_events"] {
        assert_eq!(
            db.count(&format!("SELECT count(*) FROM {table}")).await,
            0,
            "{table}"
        );
    }
}

/// Bad create input and the field each names: refused alike by
/// `enqueue_job` (its options) and by `POST /v1/jobs` (the body), whose
/// rules are written twice (SQL, Rust) and must not drift apart.
fn bad_inputs() -> Vec<(&'static str, serde_json::Value, &'static str)> {
    vec![
        ("bad type", json!({}), "type"),
        ("noop", json!({"priority": 7}), "priority"),
        ("noop", json!({"priority": "high"}), "priority"),
        ("noop", json!({"run_after": "tomorrow"}), "run_after"),
        (
            "noop",
            json!({"run_after": "2030-01-01T00:00:00Z", "delay_seconds": 5}),
            "delay_seconds",
        ),
        ("noop", json!({"delay_seconds": -1}), "delay_seconds"),
        ("noop", json!({"max_attempts": 0}), "max_attempts"),
        ("noop", json!({"max_attempts": 1.5}), "max_attempts"),
        ("noop", json!({"correlation_id": 12}), "correlation_id"),
        ("noop", json!({"correlation_id": ""}), "correlation_id"),
        ("noop", json!({"idempotency_key": ""}), "idempotency_key"),
        (
            "noop",
            json!({"idempotency_key": "k".repeat(257)}),
            "idempotency_key",
        ),
        ("noop", json!({"colour": "red"}), "colour"),
        ("noop", json!([1]), "options"),
    ]
}

#[tokio::test]
async fn http_refuses_the_bad_input_enqueue_job_refuses_naming_the_same_field() {
    let api = test_api_with(&[]).await;
    for (job_type, options, field) in bad_inputs() {
        let serde_json::Value::Object(mut body) = options.clone() else {
            continue; // options that are not an object have no HTTP form
        };
        body.insert("type".into(), json!(job_type));
        let (status, err) = send(api.admin(Method::POST, "/v1/jobs").json(&body)).await;
        assert_eq!(status, 422, "{options}: {err}");
        assert_eq!(err["error"]["code"], "validation_failed", "{options}: {err}");
        let message = err["error"]["message"].as_str().unwrap_or_default();
        assert!(message.starts_with(&format!("{field}:")), "{options}: {message}");
    }
    assert_eq!(api.db.count("SELECT count(*) FROM jobs").await, 0);
}

/// The payload's key order and whitespace are not part of the request.
#[tokio::test]
async fn the_same_document_written_differently_is_the_same_request() {
    let db = test_db().await;
    let one: serde_json::Value = serde_json::from_str(r#"{"a": 1, "b": {"c": [true, null]}}"#).unwrap();
    let two: serde_json::Value = serde_json::from_str(r#"{"b":{"c":[true,null]},"a":1}"#).unwrap();
    let key = json!({"idempotency_key": "k"});
    let (a, _) = sql_enqueue(&db.client, one, key.clone()).await.expect("one");
    let (b, existed) = sql_enqueue(&db.client, two, key).await.expect("two");
    assert_eq!((a, existed), (b, true));
}

/// The login role of an application: a member of `jobline_app`, bound to
/// the tenants it may enqueue for (one role for the cluster, bound per
/// database, so tests in parallel do not meet).
async fn app_login(db: &jobline::testing::TestDb, tenant: &str) -> String {
    db.client
        .batch_execute(
            "DO $$ BEGIN
                 CREATE ROLE jobline_app_login LOGIN IN ROLE jobline_app;
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
             END $$",
        )
        .await
        .expect("the login role");
    db.client
        .execute(
            "INSERT INTO app_role_tenants (app_role, tenant_id) VALUES ('jobline_app_login', $1)",
            &[&tenant],
        )
        .await
        .expect("bind");
    // Through the transaction-mode pooler (scripts/pgbouncer-up), as that role.
    let pooler =
        std::env::var("JOBLINE_TEST_PGBOUNCER_URL").expect("JOBLINE_TEST_PGBOUNCER_URL: run scripts/test");
    let database = db.url.rsplit('/').next().expect("a database name").to_owned();
    // postgres://USER@HOST:PORT/DB
    let (_, rest) = pooler.split_once('@').expect("postgres://user@host:port/db");
    let (host, _) = rest.split_once('/').expect("a database");
    format!("postgres://jobline_app_login@{host}/{database}")
}

#[tokio::test]
async fn the_app_role_enqueues_for_its_tenant_only_and_reads_only_its_jobs() {
    let db = test_db().await;
    let url = app_login(&db, "acme").await;
    let other = db.noop_for("globex").await;
    let mut app = connect_raw(&url).await;

    // Its own tenant, in its own transaction, through the pooler.
    let tx = app.transaction().await.expect("begin");
    let id: Uuid = tx
        .query_one(
            "SELECT job_id FROM enqueue_job('acme', 'noop', '{\"n\": 1}')",
            &[],
        )
        .await
        .expect("enqueue for acme")
        .get(0);
    tx.commit().await.expect("commit");
    assert_eq!(db.job(id).await.tenant_id, "acme");
    assert_eq!(db.events(id).await, ["created"]);

    // Another tenant: refused, nothing written.
    let err = app
        .query_one("SELECT * FROM enqueue_job('globex', 'noop', '{}')", &[])
        .await
        .expect_err("globex is not its tenant");
    assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE));
    assert!(err.as_db_error().unwrap().message().starts_with("forbidden:"));

    // It reads its jobs' status, and nothing of anyone else's.
    let seen: Vec<Uuid> = app
        .query("SELECT job_id FROM app_jobs", &[])
        .await
        .expect("app_jobs")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(seen, [id]);
    assert!(
        app.query_opt("SELECT 1 FROM app_jobs WHERE job_id = $1", &[&other.id])
            .await
            .expect("read")
            .is_none()
    );

    // Nothing else: not the tables, not the workers' functions.
    for sql in [
        "SELECT count(*) FROM jobs",
        "SELECT count(*) FROM app_role_tenants",
        "INSERT INTO app_role_tenants VALUES ('jobline_app_login', 'globex')",
        "SELECT * FROM claim_jobs('me', 10)",
        "SELECT * FROM cancel_job(gen_random_uuid())",
        "SELECT * FROM jobline_create_jobs(now(), 'globex', 'q', NULL, 'me', 5, '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}')",
    ] {
        let err = app.batch_execute(sql).await.expect_err(sql);
        assert_eq!(
            err.code(),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{sql}: {err}"
        );
    }

    // A temporary table named `jobs` does not stand in for the real one.
    app.batch_execute("CREATE TEMP TABLE jobs (id uuid)")
        .await
        .expect("temp table");
    let planted: Uuid = app
        .query_one("SELECT job_id FROM enqueue_job('acme', 'noop', '{}')", &[])
        .await
        .expect("enqueue")
        .get(0);
    assert_eq!(db.job(planted).await.tenant_id, "acme");
    // Nor does it open app_jobs to every tenant (the view holds the real
    // table's OID, not its name).
    let tenants: Vec<String> = app
        .query("SELECT DISTINCT tenant_id FROM app_jobs", &[])
        .await
        .expect("app_jobs")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(tenants, ["acme"]);
    // A session's settings do not reach enqueue_job's own.
    app.batch_execute("SET jobline.max_attempts = '1000000'; SET jobline.queue_name = 'elsewhere'")
        .await
        .expect("set");
    let id: Uuid = app
        .query_one("SELECT job_id FROM enqueue_job('acme', 'noop', '{}')", &[])
        .await
        .expect("enqueue")
        .get(0);
    assert_eq!(db.job(id).await.max_attempts, 5);
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM outbox WHERE job_id = '{id}' AND queue = 'generation_jobs'"
        ))
        .await,
        1
    );
}

/// The migration refuses a schema where PUBLIC may create objects (anyone
/// could plant a function the SQL API would run as its owner), and revokes
/// what a platform's default privileges grant on new functions (Supabase's
/// anon and authenticated).
#[tokio::test]
async fn the_migration_guards_the_sql_api_against_the_schema_and_default_privileges() {
    let url = jobline::testing::empty_database().await;
    let admin = connect_raw(&url).await;
    admin
        .batch_execute("GRANT CREATE ON SCHEMA public TO PUBLIC")
        .await
        .expect("grant");
    let err = jobline::store::migrate::run_url(&url).await.expect_err("refused");
    assert!(err.to_string().contains("PUBLIC may create objects"), "{err}");
    assert_eq!(
        admin
            .query_one("SELECT count(*) FROM pg_proc WHERE proname = 'enqueue_job'", &[])
            .await
            .expect("count")
            .get::<_, i64>(0),
        0,
        "nothing of the migration stays"
    );

    let browser = format!("t_anon_{}", Uuid::new_v4().simple());
    admin
        .batch_execute(&format!(
            "REVOKE CREATE ON SCHEMA public FROM PUBLIC;
             CREATE ROLE {browser} NOLOGIN;
             ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT EXECUTE ON FUNCTIONS TO {browser};
             ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO {browser};"
        ))
        .await
        .expect("a platform's defaults");
    jobline::store::migrate::run_url(&url).await.expect("migrate");
    let reachable: i64 = admin
        .query_one(
            &format!(
                "SELECT count(*) FROM pg_proc
                 WHERE pronamespace = 'public'::regnamespace
                   AND proname IN ('enqueue_job', 'claim_jobs', 'jobline_create_jobs', 'cancel_job')
                   AND has_function_privilege('{browser}', oid, 'EXECUTE')"
            ),
            &[],
        )
        .await
        .expect("privileges")
        .get(0);
    assert_eq!(reachable, 0);
    let views: bool = admin
        .query_one(
            &format!("SELECT has_table_privilege('{browser}', 'app_jobs', 'SELECT') OR has_table_privilege('{browser}', 'app_role_tenants', 'SELECT')"),
            &[],
        )
        .await
        .expect("privileges")
        .get(0);
    assert!(!views);
    admin
        .batch_execute(&format!("DROP OWNED BY {browser}; DROP ROLE {browser}"))
        .await
        .expect("drop the role");
}

/// A delayed job enqueued by SQL is published when it becomes due, by the
/// listener's own timer (no notification comes then), not a minute later.
#[tokio::test]
async fn the_relay_listener_publishes_a_delayed_sql_job_when_it_is_due() {
    let db = test_db().await;
    // A store on the real clock: the database's now() and this one agree.
    let pool = jobline::store::pool::build(&jobline::store::pool::PoolOptions::new(db.url.clone(), 4))
        .expect("pool");
    let store = jobline::Store::new(pool, jobline::testing::test_settings());
    let queue = std::sync::Arc::new(jobline::queue::postgres::PostgresQueue::new(store.clone(), None));
    let publisher = jobline::queue::Publisher::new(store, queue, "relay");
    let (stop_tx, stop) = watch::channel(false);
    let relay = tokio::spawn(jobline::queue::relay::listen(publisher, db.url.clone(), stop));
    let id: Uuid = db
        .client
        .query_one(
            "SELECT job_id FROM enqueue_job('acme', 'noop', '{}', '{\"delay_seconds\": 3}')",
            &[],
        )
        .await
        .expect("enqueue")
        .get(0);
    let sent = format!("SELECT count(*) FROM outbox WHERE job_id = '{id}' AND status = 'sent'");
    let started = tokio::time::Instant::now();
    while db.count(&sent).await == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "not published in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(2500),
        "published before it was due: {waited:?}"
    );
    stop_tx.send(true).expect("stop");
    relay.await.expect("the relay stops");
}

/// A worker written in SQL: claim, heartbeat, fail (retry), claim again,
/// complete; a stale claim's complete and heartbeat change nothing; cancel;
/// stale release. Each with the store's events.
#[tokio::test]
async fn a_worker_written_in_sql_drives_the_same_transitions() {
    let db = test_db().await;
    let c = &db.client;
    let id: Uuid = c
        .query_one(
            "SELECT job_id FROM enqueue_job('acme', 'noop', '{}', '{\"max_attempts\": 3}')",
            &[],
        )
        .await
        .expect("enqueue")
        .get(0);
    let claim = |worker: &'static str| async move {
        c.query("SELECT id, attempts FROM claim_jobs($1, 5)", &[&worker])
            .await
            .expect("claim")
            .iter()
            .map(|r| (r.get::<_, Uuid>(0), r.get::<_, i32>(1)))
            .collect::<Vec<_>>()
    };
    assert_eq!(claim("w1").await, [(id, 1)]);
    assert!(claim("w2").await.is_empty(), "claimed once");
    let beat = |attempt: i32| async move {
        c.query_one(
            "SELECT update_job_heartbeat($1, $2, 'encode', 50)",
            &[&id, &attempt],
        )
        .await
        .expect("heartbeat")
        .get::<_, bool>(0)
    };
    assert!(beat(1).await);
    let status: String = c
        .query_one(
            "SELECT status::text FROM fail_job($1, 1, 'w1', 'HTTP_503', 'try later', now() - interval '1 s')",
            &[&id],
        )
        .await
        .expect("fail")
        .get(0);
    assert_eq!(status, "pending");
    assert_eq!(claim("w2").await, [(id, 2)]);
    // The first claim is stale now: its complete and heartbeat change nothing.
    assert!(
        c.query("SELECT * FROM complete_job($1, 1, 'w1')", &[&id])
            .await
            .expect("stale complete")
            .is_empty()
    );
    assert!(!beat(1).await);
    let done = c
        .query_one(
            "SELECT status::text, result FROM complete_job($1, 2, 'w2', '{\"ok\": true}')",
            &[&id],
        )
        .await
        .expect("complete");
    assert_eq!(done.get::<_, String>(0), "completed");
    assert_eq!(done.get::<_, serde_json::Value>(1), json!({"ok": true}));
    assert_eq!(
        db.events(id).await,
        ["created", "claimed", "retry_scheduled", "claimed", "completed"]
    );

    // Cancel, then nothing more to cancel.
    let (other, _) = sql_enqueue_for(c, "acme").await;
    assert_eq!(
        c.query("SELECT * FROM cancel_job($1)", &[&other])
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        c.query("SELECT * FROM cancel_job($1)", &[&other])
            .await
            .unwrap()
            .is_empty()
    );

    // A claim without heartbeats goes back to pending, with an outbox row.
    let (stale, _) = sql_enqueue_for(c, "acme").await;
    assert_eq!(claim("w3").await, [(stale, 1)]);
    c.execute(
        "UPDATE jobs SET heartbeat_at = now() - interval '5 minutes' WHERE id = $1",
        &[&stale],
    )
    .await
    .expect("age it");
    let released = c
        .query_one(
            "SELECT job_id, status, stale_worker FROM release_stale_jobs(60)",
            &[],
        )
        .await
        .expect("release");
    assert_eq!(
        (
            released.get::<_, Uuid>(0),
            released.get::<_, String>(1),
            released.get::<_, String>(2)
        ),
        (stale, "pending".to_owned(), "w3".to_owned())
    );
    assert_eq!(
        db.count(&format!("SELECT count(*) FROM outbox WHERE job_id = '{stale}'"))
            .await,
        2
    );
}

async fn sql_enqueue_for(c: &tokio_postgres::Client, tenant: &str) -> (Uuid, bool) {
    let row = c
        .query_one(
            "SELECT job_id, already_existed FROM enqueue_job($1, 'noop', '{}')",
            &[&tenant],
        )
        .await
        .expect("enqueue");
    (row.get(0), row.get(1))
}

/// `enqueue_job` notifies the relay's channel on commit, never on rollback.
#[tokio::test]
async fn enqueue_job_notifies_the_relay_on_commit_only() {
    let db = test_db().await;
    let (listener, mut rx) = crate::support::listen(&db.url, jobline::queue::relay::OUTBOX_CHANNEL).await;
    let mut app = connect_raw(&db.url).await;
    let t = app.transaction().await.expect("begin");
    t.batch_execute("SELECT enqueue_job('acme', 'noop', '{}')")
        .await
        .expect("enqueue");
    t.rollback().await.expect("rollback");
    app.batch_execute("SELECT enqueue_job('acme', 'noop', '{}')")
        .await
        .expect("enqueue and commit");
    let channel = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a notification")
        .expect("open");
    assert_eq!(channel, jobline::queue::relay::OUTBOX_CHANNEL);
    // The committed one only: a round trip later, nothing else came.
    listener.batch_execute("SELECT 1").await.expect("round trip");
    assert!(rx.try_recv().is_err(), "the rolled-back enqueue notified");
}
