//! The `jobline` binary as real processes against a real Postgres: a worker
//! killed with SIGKILL mid-job, the sweeper releasing its claim, another
//! worker finishing the job exactly once; and a graceful SIGTERM.

#[path = "process/sentry.rs"]
mod sentry;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_jobline");

/// A fresh database of its own, migrated by the binary under test.
async fn database() -> (String, tokio_postgres::Client) {
    let url = jobline::testing::empty_database().await;
    let out = jobline(&url).arg("migrate").output().expect("run migrate");
    assert!(
        out.status.success(),
        "migrate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (url.clone(), jobline::testing::connect_raw(&url).await)
}

fn jobline(url: &str) -> Command {
    let mut c = Command::new(BIN);
    c.env("DATABASE_URL", url)
        .env("JOBLINE_QUEUE", "postgres")
        .env("JOBLINE_LOG", "warn")
        .env("JOBLINE_HEARTBEAT_INTERVAL_SECONDS", "1")
        .env("JOBLINE_HEARTBEAT_TIMEOUT_SECONDS", "2")
        .env_remove("REDIS_URL")
        .env_remove("UPSTASH_REDIS_REST_URL")
        .env_remove("SQS_QUEUE_URL");
    c
}

fn worker(url: &str, id: &str, extra: &[&str]) -> Child {
    jobline(url)
        .args(["worker", "--id", id, "--poll-interval", "0.1"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn worker")
}

/// Creates a `sleep` job through the CLI (the same path as the API).
fn create_job(url: &str, payload: &str) {
    let out = jobline(url)
        .args([
            "jobs",
            "create",
            "--type",
            "sleep",
            "--max-attempts",
            "3",
            "--payload",
            payload,
        ])
        .output()
        .expect("jobs create");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

async fn one(db: &tokio_postgres::Client, sql: &str) -> String {
    db.query_one(sql, &[]).await.expect(sql).get(0)
}

async fn wait_for(db: &tokio_postgres::Client, sql: &str, want: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        if one(db, sql).await == want {
            return;
        }
        assert!(Instant::now() < deadline, "{sql} never became {want:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_worker_killed_mid_job_is_released_and_the_job_completes_exactly_once() {
    let (url, db) = database().await;
    create_job(&url, r#"{"ms": 2500}"#);
    let status = "SELECT status::text || ':' || coalesce(locked_by, '') FROM jobs";

    let mut doomed = worker(&url, "doomed", &[]);
    wait_for(&db, status, "processing:doomed", Duration::from_secs(15)).await;
    // SIGKILL: no chance to release anything.
    Command::new("kill")
        .args(["-9", &doomed.id().to_string()])
        .status()
        .expect("kill");
    let _ = doomed.wait();

    // The sweeper releases the claim once its heartbeat is older than the timeout.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = jobline(&url)
            .arg("release-stale")
            .output()
            .expect("release-stale");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if text.contains("released=1") {
            break;
        }
        assert!(Instant::now() < deadline, "never released: {text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        one(&db, "SELECT status::text || ':' || error_code FROM jobs").await,
        "pending:HEARTBEAT_TIMEOUT"
    );

    let rescuer = worker(&url, "rescuer", &["--once"])
        .wait_with_output()
        .expect("rescuer");
    assert!(rescuer.status.success());
    assert!(String::from_utf8_lossy(&rescuer.stdout).contains("succeeded=1"));
    assert_eq!(
        one(&db, "SELECT status::text || ':' || attempts FROM jobs").await,
        "completed:2"
    );
    // The rescuer's relay listener may also publish the released job's
    // outbox row (it relays what is due when it starts): not part of the story.
    let events = one(
        &db,
        "SELECT string_agg(event || '@' || coalesce(actor, ''), ',' ORDER BY id) FROM job_events
         WHERE NOT (event = 'published' AND actor = 'relay')",
    )
    .await;
    assert_eq!(
        events,
        "created@cli,published@cli,claimed@doomed,heartbeat_released@sweeper,claimed@rescuer,completed@rescuer"
    );
}

#[tokio::test]
async fn sigterm_lets_the_job_in_flight_finish_and_exits_zero() {
    let (url, db) = database().await;
    create_job(&url, r#"{"ms": 700}"#);
    let mut w = worker(&url, "graceful", &["--grace", "10"]);
    wait_for(
        &db,
        "SELECT status::text FROM jobs",
        "processing",
        Duration::from_secs(15),
    )
    .await;
    Command::new("kill")
        .args(["-TERM", &w.id().to_string()])
        .status()
        .expect("kill");
    let deadline = Instant::now() + Duration::from_secs(15);
    let code = loop {
        if let Some(code) = w.try_wait().expect("wait") {
            break code;
        }
        assert!(Instant::now() < deadline, "worker did not exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(code.success(), "exit code {code:?}");
    assert_eq!(one(&db, "SELECT status::text FROM jobs").await, "completed");
    assert_eq!(one(&db, "SELECT state FROM workers").await, "stopped");
}

#[test]
fn webhook_secret_prints_a_secret_per_tenant() {
    let secret = |tenant: &str, master: Option<&str>| {
        let mut c = Command::new(BIN);
        c.args(["webhook-secret", "--tenant", tenant])
            .env_remove("JOBLINE_WEBHOOK_SECRET");
        if let Some(m) = master {
            c.env("JOBLINE_WEBHOOK_SECRET", m);
        }
        c.output().expect("run")
    };
    let acme = secret("acme", Some("master-secret-0123"));
    assert!(acme.status.success(), "{}", String::from_utf8_lossy(&acme.stderr));
    let acme = String::from_utf8_lossy(&acme.stdout).trim().to_owned();
    assert_eq!(
        acme,
        jobline::handlers::webhook::tenant_secret(b"master-secret-0123", "acme"),
        "the secret the handler signs acme's requests with"
    );
    let globex = secret("globex", Some("master-secret-0123"));
    assert_ne!(String::from_utf8_lossy(&globex.stdout).trim(), acme);
    let unset = secret("acme", None);
    assert!(!unset.status.success());
    assert!(String::from_utf8_lossy(&unset.stderr).contains("JOBLINE_WEBHOOK_SECRET"));
}

#[tokio::test]
async fn a_worker_serves_only_jobline_job_types_when_no_types_flag_is_given() {
    let (url, db) = database().await;
    create_job(&url, r#"{"ms": 1}"#);
    let out = jobline(&url)
        .args(["jobs", "create", "--type", "noop"])
        .output()
        .expect("jobs create");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let done = jobline(&url)
        .env("JOBLINE_JOB_TYPES", "noop")
        .args(["worker", "--id", "noop-only", "--once"])
        .output()
        .expect("worker --once");
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));

    assert_eq!(
        one(
            &db,
            "SELECT string_agg(job_type || ':' || status, ' ' ORDER BY job_type) FROM jobs"
        )
        .await,
        "noop:completed sleep:pending"
    );
    assert_eq!(
        one(
            &db,
            "SELECT array_to_string(job_types, ',') FROM workers WHERE id = 'noop-only'"
        )
        .await,
        "noop",
        "it registers the types it serves"
    );
}

#[tokio::test]
async fn jobline_audit_prints_the_report_and_exits_non_zero_when_a_promise_is_broken() {
    let (url, db) = database().await;
    create_job(&url, r#"{"ms": 0}"#);
    let out = jobline(&url).arg("audit").output().expect("audit");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("1 examined"), "{text}");
    assert!(text.lines().any(|l| l == "ok"), "{text}");

    db.execute("UPDATE jobs SET attempts = 1", &[])
        .await
        .expect("plant");
    let out = jobline(&url).args(["audit", "--json"]).output().expect("audit");
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("the report as JSON");
    assert_eq!(report["ok"], false);
    assert_eq!(report["violations"]["claims_not_attempts"], 1);
    let id = one(&db, "SELECT id::text FROM jobs").await;
    assert_eq!(report["examples"]["claims_not_attempts"], serde_json::json!([id]));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the audit found violations: claims_not_attempts=1"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = jobline(&url)
        .args(["audit", "--since", "yesterday"])
        .output()
        .expect("audit");
    assert_eq!(
        out.status.code(),
        Some(2),
        "clap refuses a since that is not a time"
    );
}
