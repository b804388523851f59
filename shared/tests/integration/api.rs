//! The whole API over real HTTP against real Postgres.

use jobline::store::workers::{WorkerBeat, WorkerCommand};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{ADMIN_KEY, TestApi, eventually, poll_for, send, test_api, test_api_with};

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("(no code)")
}

/// The error message of an error answer.
fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().expect("a message")
}

/// Outbox rows sent to the queue.
async fn outbox_sent(api: &TestApi) -> i64 {
    api.db
        .count("SELECT count(*) FROM outbox WHERE status = 'sent'")
        .await
}

/// Creates a job from `body` with the `Idempotency-Key` header `key`.
async fn create_with_key(api: &TestApi, key: &str, body: &Value) -> (u16, Value) {
    send(
        api.admin(Method::POST, "/v1/jobs")
            .header("Idempotency-Key", key)
            .json(body),
    )
    .await
}

/// A heartbeat of worker `edge-1`, running with nothing done yet.
fn edge_1_beat(api: &TestApi) -> WorkerBeat {
    WorkerBeat {
        id: "edge-1".into(),
        host: "h".into(),
        version: "0.1.0".into(),
        queue: "postgres".into(),
        concurrency: 4,
        started_at: api.db.now(),
        in_flight: 0,
        processed: 0,
        failed: 0,
        state: "running".into(),
        job_types: None,
    }
}

#[tokio::test]
async fn health_needs_no_key_and_reveals_nothing_secret() {
    let api = test_api().await;
    let (status, body) = send(api.http.get(api.url("/health"))).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["checks"]["database"], "ok");
    let text = body.to_string();
    assert!(
        !text.contains("postgres://") && !text.contains(ADMIN_KEY),
        "{text}"
    );
}

#[tokio::test]
async fn a_job_is_created_read_listed_cancelled_and_retried() {
    let api = test_api().await;
    let render = json!({"type": "render", "payload": {"frames": 3}, "priority": 1, "correlation_id": "c1"});
    let (status, created) = api.post("/v1/jobs", render).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["already_existed"], false);
    assert_eq!(created["status"], "pending");
    for field in [
        "id",
        "type",
        "status",
        "priority",
        "payload",
        "attempts",
        "max_attempts",
        "run_after",
        "correlation_id",
        "stage",
        "progress",
        "result",
        "result_uri",
        "failure_reason",
        "error_code",
        "created_at",
        "started_at",
        "completed_at",
    ] {
        assert!(created.get(field).is_some(), "job JSON lacks {field}: {created}");
    }
    let id = created["id"].as_str().expect("id").to_owned();

    let (status, got) = api.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(got["payload"], json!({"frames": 3}));

    let (status, list) = api.get("/v1/jobs?type=render&status=pending").await;
    assert_eq!(status, 200);
    assert_eq!(list["jobs"].as_array().expect("jobs").len(), 1);
    assert_eq!(list["next_cursor"], Value::Null);

    // Published right after commit: the outbox row is sent and the timeline says so.
    let (_, events) = api.get(&format!("/v1/jobs/{id}/events")).await;
    let names: Vec<&str> = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    assert_eq!(names, ["created", "published"]);
    assert_eq!(outbox_sent(&api).await, 1);

    // Each works once: the second ask finds the job already there.
    for (action, status_after) in [("cancel", "cancelled"), ("retry", "pending")] {
        let path = format!("/v1/jobs/{id}/{action}");
        let (status, job) = api.call(Method::POST, &path).await;
        assert_eq!(status, 200, "{action}: {job}");
        assert_eq!(job["status"], status_after);
        let (status, again) = api.call(Method::POST, &path).await;
        assert_eq!((status, code(&again)), (409, "invalid_state"), "{action} again");
    }
    assert_eq!(outbox_sent(&api).await, 2, "the retry was published");
}

#[tokio::test]
async fn idempotency_keys_work_in_the_body_and_the_header() {
    let api = test_api().await;
    let body = json!({"type": "noop", "payload": {"n": 1}});
    let first = create_with_key(&api, "k1", &body).await;
    assert_eq!(first.0, 201);
    let again = create_with_key(&api, "k1", &body).await;
    assert_eq!(again.0, 200);
    assert_eq!(again.1["already_existed"], true);
    assert_eq!(again.1["id"], first.1["id"]);
    let in_body = api
        .post(
            "/v1/jobs",
            json!({"type": "noop", "payload": {"n": 1}, "idempotency_key": "k1"}),
        )
        .await;
    assert_eq!(in_body.0, 200, "the body field is the same key as the header");
    let conflict = create_with_key(&api, "k1", &json!({"type": "noop", "payload": {"n": 2}})).await;
    assert_eq!((conflict.0, code(&conflict.1)), (409, "idempotency_conflict"));
    let mismatch = create_with_key(&api, "a", &json!({"type": "noop", "idempotency_key": "b"})).await;
    assert_eq!((mismatch.0, code(&mismatch.1)), (422, "validation_failed"));
    assert_eq!(api.db.count("SELECT count(*) FROM jobs").await, 1);
}

#[tokio::test]
async fn keys_scopes_and_tenants_are_enforced() {
    let api = test_api().await;
    let reader = api.key("acme", &["jobs:read"]).await;
    let writer = api.key("acme", &["jobs:write", "jobs:read"]).await;
    let stranger = api.key("globex", &["jobs:read", "jobs:write", "admin"]).await;
    let noop = json!({"type": "noop"});

    let (s, b) = send(api.http.post(api.url("/v1/jobs")).json(&noop)).await;
    assert_eq!((s, code(&b)), (401, "unauthorized"));
    let (s, b) = api.call_as("jl_nope", Method::GET, "/v1/jobs").await;
    assert_eq!((s, code(&b)), (401, "unauthorized"));
    let (s, b) = send(api.with_key(&reader, Method::POST, "/v1/jobs").json(&noop)).await;
    assert_eq!((s, code(&b)), (403, "forbidden"));

    let (s, job) = send(
        api.http
            .post(api.url("/v1/jobs"))
            .header("X-Api-Key", &writer)
            .json(&noop),
    )
    .await;
    assert_eq!(s, 201, "X-Api-Key works too");
    let job_path = format!("/v1/jobs/{}", job["id"].as_str().expect("id"));
    let (s, _) = api.call_as(&reader, Method::GET, &job_path).await;
    assert_eq!(s, 200);
    let (s, b) = api.call_as(&stranger, Method::GET, &job_path).await;
    assert_eq!(
        (s, code(&b)),
        (404, "not_found"),
        "another tenant's job does not exist for them"
    );
    let (s, _) = api
        .call_as(&stranger, Method::POST, &format!("{job_path}/cancel"))
        .await;
    assert_eq!(s, 404);
    // Every other route that takes or lists jobs, with globex's admin key.
    for (method, path) in [
        (Method::GET, format!("{job_path}/events")),
        (Method::POST, format!("{job_path}/retry")),
    ] {
        let (s, b) = api.call_as(&stranger, method, &path).await;
        assert_eq!((s, code(&b)), (404, "not_found"), "{path}");
    }
    let acme_id = job["id"].as_str().expect("id").to_owned();
    api.db
        .client
        .execute(
            "UPDATE jobs SET status = 'failed', completed_at = now(), error_code = 'X', failure_reason = 'planted' WHERE id = $1::text::uuid",
            &[&acme_id],
        )
        .await
        .expect("fail acme's job");
    let (s, list) = api.call_as(&stranger, Method::GET, "/v1/jobs").await;
    assert_eq!(
        (s, list["jobs"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{list}"
    );
    let (s, dead) = api.call_as(&stranger, Method::GET, "/v1/dead-letter").await;
    assert_eq!(
        (s, dead["jobs"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{dead}"
    );
    let (s, stats) = api.call_as(&stranger, Method::GET, "/v1/stats").await;
    assert_eq!(
        (s, stats["total"].as_i64(), stats["dead_letter"].as_i64()),
        (200, Some(0), Some(0)),
        "{stats}"
    );
    let (s, _) = api
        .call_as(&stranger, Method::POST, &format!("{job_path}/retry"))
        .await;
    assert_eq!(s, 404, "a failed job of another tenant cannot be retried either");
    let (s, b) = api.call_as(&writer, Method::GET, "/v1/stats").await;
    assert_eq!((s, code(&b)), (403, "forbidden"), "stats need admin");

    // Revoking takes effect on the next request.
    let key_id = uuid::Uuid::parse_str(&reader[3..35]).expect("key id");
    assert!(api.db.store.revoke_api_key(key_id).await.expect("revoke"));
    let (s, _) = api.call_as(&reader, Method::GET, &job_path).await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_writes_nothing() {
    let api = test_api().await;
    let post = |body: &'static str| {
        api.admin(Method::POST, "/v1/jobs")
            .header("content-type", "application/json")
            .body(body)
    };
    let get = |path: &str| api.admin(Method::GET, path);
    let post_json = |path: &str, body: Value| api.admin(Method::POST, path).json(&body);
    // Jobs the create route refuses as invalid, and what the message names.
    let invalid_jobs = [
        ("{}", "type"),
        (r#"{"type": 7}"#, "type"),
        (r#"{"type": "noop", "priority": "high"}"#, "priority"),
        (r#"{"type": "noop", "priority": 9}"#, "priority"),
        (r#"{"type": "noop", "max_attempts": 0}"#, "max_attempts"),
        (r#"{"type": "noop", "run_after": "tomorrow"}"#, "run_after"),
        (
            r#"{"type": "noop", "delay_seconds": 5, "run_after": "2030-01-01T00:00:00Z"}"#,
            "delay_seconds",
        ),
        (r#"{"type": "noop", "surprise": 1}"#, "surprise"),
        (r#"{"type": "has spaces"}"#, "type"),
        ("[1, 2]", "body"),
        // Postgres cannot store NUL in text or jsonb: refused by name,
        // wherever it is (found by the gauntlet's fuzzer as 500s).
        (
            r#"{"type": "noop", "payload": {"scenes": [{"title": "a\u0000b"}]}}"#,
            "payload.scenes[0].title",
        ),
        (
            r#"{"type": "noop", "correlation_id": "x\u0000"}"#,
            "correlation_id",
        ),
    ];
    let mut cases: Vec<(reqwest::RequestBuilder, u16, &str, &str)> = invalid_jobs
        .into_iter()
        .map(|(body, names)| (post(body), 422, "validation_failed", names))
        .collect();
    cases.extend([
        (post("{not json"), 400, "invalid_json", ""),
        (get("/v1/nothing-here"), 404, "not_found", ""),
        (
            api.admin(Method::DELETE, "/v1/jobs"),
            405,
            "method_not_allowed",
            "",
        ),
        (get("/v1/jobs/not-a-uuid"), 404, "not_found", ""),
        (get("/v1/jobs?cursor=garbage"), 400, "invalid_cursor", ""),
        (get("/v1/jobs?status=done"), 422, "validation_failed", "status"),
        (get("/v1/jobs?limit=501"), 422, "validation_failed", "limit"),
        (get("/v1/jobs?type=a%00b"), 422, "validation_failed", ""),
        (
            post_json("/v1/jobs/batch", json!({"jobs": []})),
            422,
            "validation_failed",
            "jobs",
        ),
        (
            post_json("/v1/dead-letter/replay", json!({"token": "t\u{0}"})),
            422,
            "validation_failed",
            "token",
        ),
        (
            post_json("/api/generation/story-script", json!({"theme": "\u{0}"})),
            422,
            "validation_failed",
            "theme",
        ),
    ]);
    for (request, want_status, want_code, names) in cases {
        let (status, body) = send(request).await;
        assert_eq!((status, code(&body)), (want_status, want_code), "{body}");
        let message = message(&body);
        assert!(message.contains(names), "the message names {names:?}: {message}");
    }
    let big = format!(r#"{{"type": "noop", "payload": "{}"}}"#, "x".repeat(300 * 1024));
    let (status, body) = send(api.admin(Method::POST, "/v1/jobs").body(big)).await;
    assert_eq!((status, code(&body)), (413, "payload_too_large"));
    assert_eq!(
        api.db.count("SELECT count(*) FROM jobs").await,
        0,
        "nothing was written"
    );
    // And the server still serves.
    let (status, _) = send(api.http.get(api.url("/health"))).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn priorities_are_taken_as_numbers_or_as_p0_to_p3_labels() {
    let api = test_api().await;
    let (s, b) = api
        .post("/v1/jobs", json!({"type": "noop", "priority": "P0"}))
        .await;
    assert_eq!((s, b["priority"].as_i64()), (201, Some(0)), "{b}");
    let two = json!({"jobs": [{"type": "noop", "priority": "P3"}, {"type": "noop", "priority": 1}]});
    let (s, b) = api.post("/v1/jobs/batch", two).await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(
        (
            b["jobs"][0]["priority"].as_i64(),
            b["jobs"][1]["priority"].as_i64()
        ),
        (Some(3), Some(1))
    );
    // The same request with the label or the number is the same job.
    let (s, first) = api
        .post(
            "/v1/jobs",
            json!({"type": "noop", "priority": "P2", "idempotency_key": "k-prio"}),
        )
        .await;
    assert_eq!(s, 201, "{first}");
    let (s, again) = api
        .post(
            "/v1/jobs",
            json!({"type": "noop", "priority": 2, "idempotency_key": "k-prio"}),
        )
        .await;
    assert_eq!((s, again["id"].clone()), (200, first["id"].clone()), "{again}");
    for bad in [json!("P4"), json!("high"), json!(4), json!(-1), json!(1.5)] {
        let (s, b) = api
            .post("/v1/jobs", json!({"type": "noop", "priority": bad}))
            .await;
        assert_eq!((s, code(&b)), (422, "validation_failed"), "{bad}: {b}");
        assert!(message(&b).contains("priority"), "{b}");
    }
}

#[tokio::test]
async fn a_deployment_can_restrict_job_types() {
    let api = test_api_with(&[("JOBLINE_JOB_TYPES", "noop,story_script")]).await;
    let (s, b) = api.post("/v1/jobs", json!({"type": "rm-rf"})).await;
    assert_eq!((s, code(&b)), (422, "unknown_job_type"));
    let (s, _) = api.post("/v1/jobs", json!({"type": "noop"})).await;
    assert_eq!(s, 201);
}

#[tokio::test]
async fn a_batch_is_all_or_nothing() {
    let api = test_api().await;
    let one_bad = json!({"jobs": [{"type": "noop"}, {"type": "bad type"}]});
    let (s, b) = api.post("/v1/jobs/batch", one_bad).await;
    assert_eq!((s, code(&b)), (422, "validation_failed"));
    assert!(message(&b).contains("jobs[1].type"), "{b}");
    assert_eq!(api.db.count("SELECT count(*) FROM jobs").await, 0);
    let too_many: Vec<Value> = (0..101).map(|_| json!({"type": "noop"})).collect();
    let (s, _) = api.post("/v1/jobs/batch", json!({"jobs": too_many})).await;
    assert_eq!(s, 422);
    let jobs: Vec<Value> = (0..100)
        .map(|i| json!({"type": "noop", "payload": {"i": i}}))
        .collect();
    let (s, b) = api.post("/v1/jobs/batch", json!({"jobs": jobs})).await;
    assert_eq!(s, 201);
    let created = b["jobs"].as_array().expect("jobs");
    assert_eq!(created.len(), 100);
    assert_eq!(created[42]["payload"], json!({"i": 42}), "answers in input order");
    assert_eq!(outbox_sent(&api).await, 100);
}

#[tokio::test]
async fn pages_over_http_are_stable_while_jobs_are_added() {
    let api = test_api().await;
    for i in 0..12 {
        api.db.advance(1);
        let (s, _) = api
            .post("/v1/jobs", json!({"type": "noop", "payload": {"i": i}}))
            .await;
        assert_eq!(s, 201);
    }
    let mut seen = std::collections::HashSet::new();
    let mut path = "/v1/jobs?limit=5".to_owned();
    loop {
        let (s, page) = api.get(&path).await;
        assert_eq!(s, 200);
        for job in page["jobs"].as_array().expect("jobs") {
            assert!(
                seen.insert(job["id"].as_str().expect("id").to_owned()),
                "a job came twice"
            );
        }
        api.db.advance(1);
        api.post("/v1/jobs", json!({"type": "late"})).await;
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/jobs?limit=5&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 12);
}

#[tokio::test]
async fn stats_report_counts_and_a_health_verdict() {
    let api = test_api().await;
    api.post("/v1/jobs", json!({"type": "noop"})).await;
    api.db.advance(120);
    let (s, stats) = api.get("/v1/stats").await;
    assert_eq!(s, 200);
    assert_eq!(stats["by_status"]["pending"], 1);
    assert_eq!(stats["total"], 1);
    assert_eq!(stats["oldest_pending_age_seconds"], 120.0);
    assert_eq!(stats["dead_letter"], 0);
    assert_eq!(
        stats["health"], "degraded",
        "a job has waited two minutes: {stats}"
    );
    assert!(stats.get("p50_seconds").is_some() && stats.get("p95_seconds").is_some());
}

#[tokio::test]
async fn the_dead_letter_is_listed_and_replayed_once_per_token() {
    let api = test_api().await;
    let (_, job) = api
        .post("/v1/jobs", json!({"type": "noop", "max_attempts": 1}))
        .await;
    let id = uuid::Uuid::parse_str(job["id"].as_str().expect("id")).expect("uuid");
    let jobline::store::ClaimByIdOutcome::Claimed(claim) =
        api.db.store.claim_by_id("w", id).await.expect("claim")
    else {
        panic!("claimable")
    };
    api.db
        .store
        .fail(&claim, &jobline::store::JobFailure::permanent("BAD", "nope"))
        .await
        .expect("fail");

    let (s, dl) = api.get("/v1/dead-letter").await;
    assert_eq!(s, 200);
    assert_eq!(dl["jobs"][0]["id"], job["id"]);
    assert_eq!(dl["jobs"][0]["error_code"], "BAD");

    let (s, first) = api.post("/v1/dead-letter/replay", json!({"token": "t-1"})).await;
    assert_eq!(s, 200, "{first}");
    assert_eq!(first["updated"], 1);
    assert_eq!(first["already_used"], false);
    let (_, second) = api.post("/v1/dead-letter/replay", json!({"token": "t-1"})).await;
    assert_eq!(second["updated"], 0);
    assert_eq!(second["already_used"], true);
    let (_, now) = api.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(now["status"], "pending");
    let (s, b) = api.post("/v1/dead-letter/replay", json!({})).await;
    assert_eq!((s, code(&b)), (422, "validation_failed"));
}

#[tokio::test]
async fn the_story_script_route_creates_one_job_per_story() {
    let api = test_api().await;
    let story = json!({"theme": "dragons", "tone": "warm", "ageRange": "4-6", "initiatedBy": "ops-runbook"});
    let (s, b) = api.post("/api/generation/story-script", story).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["ok"], true);
    let story = b["storyId"].as_str().expect("storyId");
    let ids = b["jobIds"].as_array().expect("jobIds");
    assert_eq!(ids.len(), 1);
    let (_, job) = api
        .get(&format!("/v1/jobs/{}", ids[0].as_str().expect("id")))
        .await;
    assert_eq!(job["type"], "story_script");
    assert_eq!(job["correlation_id"], story);
    assert_eq!(job["payload"]["theme"], "dragons");
    assert_eq!(job["initiated_by"], "ops-runbook");
    let (s, b) = api
        .post("/api/generation/story-script", json!({"tone": "warm"}))
        .await;
    assert_eq!((s, code(&b)), (422, "validation_failed"));
}

#[tokio::test]
async fn the_story_route_writes_the_callers_key_as_the_timeline_actor_not_initiated_by() {
    let api = test_api().await;
    let key = api.key("acme", &["jobs:write", "jobs:read"]).await;
    let (s, b) = send(
        api.with_key(&key, Method::POST, "/api/generation/story-script")
            .json(&json!({"theme": "dragons", "initiatedBy": "admin"})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let id = b["jobIds"][0].as_str().expect("id").to_owned();
    let (_, events) = api
        .call_as(&key, Method::GET, &format!("/v1/jobs/{id}/events"))
        .await;
    let created = &events["events"][0];
    assert_eq!(created["event"], "created", "{events}");
    let actor = created["actor"].as_str().expect("actor");
    assert!(
        actor.starts_with("key:"),
        "the caller's key, not the body's initiatedBy: {actor}"
    );
    let (_, job) = api.call_as(&key, Method::GET, &format!("/v1/jobs/{id}")).await;
    assert_eq!(job["initiated_by"], "admin", "initiatedBy stays data");
}

#[tokio::test]
async fn the_story_route_obeys_the_deployments_job_types() {
    let api = test_api_with(&[("JOBLINE_JOB_TYPES", "noop")]).await;
    let (s, b) = api
        .post("/api/generation/story-script", json!({"theme": "dragons"}))
        .await;
    assert_eq!((s, code(&b)), (422, "unknown_job_type"), "{b}");
    assert_eq!(
        api.db.count("SELECT count(*) FROM jobs").await,
        0,
        "nothing written"
    );
}

#[tokio::test]
async fn the_openapi_document_is_served() {
    let api = test_api().await;
    let (s, doc) = send(api.http.get(api.url("/openapi.json"))).await;
    assert_eq!(s, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/v1/jobs/{id}/cancel"]["post"].is_object());
}

#[tokio::test]
async fn workers_are_listed_and_steered_by_admins_only() {
    let api = test_api().await;
    let beat = WorkerBeat {
        in_flight: 1,
        processed: 10,
        failed: 2,
        ..edge_1_beat(&api)
    };
    api.db.store.worker_beat(&beat).await.expect("beat");
    let (s, list) = api.get("/v1/workers").await;
    assert_eq!(s, 200);
    assert_eq!(list["workers"][0]["id"], "edge-1");
    assert_eq!(list["workers"][0]["state"], "running");
    assert_eq!(list["workers"][0]["processed"], 10);
    let (s, b) = api.call(Method::POST, "/v1/workers/edge-1/pause").await;
    assert_eq!((s, b["desired_state"].as_str()), (200, Some("paused")));
    let (_, list) = api.get("/v1/workers").await;
    assert_eq!(list["workers"][0]["state"], "paused");
    let command = api.db.store.worker_beat(&beat).await.expect("beat");
    assert_eq!(
        command,
        WorkerCommand::Paused,
        "the worker learns it on its next beat"
    );
    let (s, _) = api.call(Method::POST, "/v1/workers/edge-1/drain").await;
    assert_eq!(s, 200);
    let (s, _) = api.call(Method::POST, "/v1/workers/edge-1/resume").await;
    assert_eq!(s, 200);
    let (s, b) = api.call(Method::POST, "/v1/workers/nobody/pause").await;
    assert_eq!((s, code(&b)), (404, "not_found"));
    let writer = api.key("acme", &["jobs:write", "jobs:read"]).await;
    let (s, b) = api
        .call_as(&writer, Method::POST, "/v1/workers/edge-1/pause")
        .await;
    assert_eq!((s, code(&b)), (403, "forbidden"));
}

#[tokio::test]
async fn another_tenants_admin_key_can_neither_see_nor_steer_the_workers() {
    let api = test_api().await;
    let beat = edge_1_beat(&api);
    api.db.store.worker_beat(&beat).await.expect("beat");
    let tenant_admin = api.key("acme", &["admin"]).await;
    let (s, b) = api.call_as(&tenant_admin, Method::GET, "/v1/workers").await;
    assert_eq!((s, code(&b)), (403, "forbidden"));
    for action in ["pause", "drain", "resume"] {
        let path = format!("/v1/workers/edge-1/{action}");
        let (s, b) = api.call_as(&tenant_admin, Method::POST, &path).await;
        assert_eq!((s, code(&b)), (403, "forbidden"), "{action}: {b}");
    }
    assert_eq!(
        api.db.store.worker_beat(&beat).await.expect("beat"),
        WorkerCommand::Running,
        "the worker was not steered"
    );
}

/// Tenants never see the deployment's own names: the worker holding a job,
/// the workers in its timeline and the release reason are opaque to them.
#[tokio::test]
async fn a_tenant_sees_an_opaque_worker_id_never_the_host_or_log_stream() {
    let api = test_api().await;
    let key = api.key("acme", &["jobs:read", "jobs:write"]).await;
    let (s, created) = send(
        api.with_key(&key, Method::POST, "/v1/jobs")
            .json(&json!({"type": "noop", "max_attempts": 3})),
    )
    .await;
    assert_eq!(s, 201, "{created}");
    let id: uuid::Uuid = created["id"].as_str().expect("id").parse().expect("uuid");
    let worker = "lambda:jobline-sqs-consumer:2026/12/01/[$LATEST]0123456789abcdef";
    let jobline::store::ClaimByIdOutcome::Claimed(_) =
        api.db.store.claim_by_id(worker, id).await.expect("claim")
    else {
        panic!("claimable");
    };
    let (_, job) = api.call_as(&key, Method::GET, &format!("/v1/jobs/{id}")).await;
    let shown = job["locked_by"].as_str().expect("locked_by");
    assert!(
        shown.starts_with("worker-") && !shown.contains("lambda"),
        "{shown}"
    );
    // The heartbeat times out and the claim is released.
    api.db.advance(3600);
    api.db
        .store
        .release_stale(std::time::Duration::from_secs(60), 100)
        .await
        .expect("release");
    let (_, job) = api.call_as(&key, Method::GET, &format!("/v1/jobs/{id}")).await;
    let (_, events) = api
        .call_as(&key, Method::GET, &format!("/v1/jobs/{id}/events"))
        .await;
    let (_, list) = api.call_as(&key, Method::GET, "/v1/jobs").await;
    for body in [&job, &events, &list] {
        let text = body.to_string();
        assert!(!text.contains("lambda:") && !text.contains("LATEST"), "{text}");
    }
    assert_eq!(job["error_code"], "HEARTBEAT_TIMEOUT");
    let claimed = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["event"] == "claimed")
        .expect("a claimed event");
    assert_eq!(
        claimed["actor"].as_str(),
        Some(shown),
        "the same opaque id in both places"
    );
    // The created event keeps the tenant's own key.
    assert!(
        events["events"][0]["actor"]
            .as_str()
            .unwrap_or_default()
            .starts_with("key:")
    );
}

/// A client that sends `head` and then nothing more, on a raw connection.
async fn stalled(api: &crate::support::TestApi, head: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt as _;
    let addr = api.base.trim_start_matches("http://").to_owned();
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(head.as_bytes()).await.expect("write");
    s
}

/// Everything the server sends until it closes the connection.
async fn until_closed(mut s: tokio::net::TcpStream, within: std::time::Duration) -> String {
    use tokio::io::AsyncReadExt as _;
    let mut out = Vec::new();
    tokio::time::timeout(within, s.read_to_end(&mut out))
        .await
        .expect("the server closed the connection in time")
        .ok();
    String::from_utf8_lossy(&out).into_owned()
}

/// Asks `/health` until the server refuses it for being at its limit; that
/// answer. Within the request timeout (1 s): past it the slow clients are
/// answered and leave their slots.
async fn refused(api: &TestApi) -> Option<reqwest::Response> {
    poll_for(std::time::Duration::from_secs(1), || async {
        let resp = api.http.get(api.url("/health")).send().await.expect("send");
        (resp.status() == 503).then_some(resp)
    })
    .await
}

#[tokio::test]
async fn slow_clients_get_408_and_a_flood_gets_503_while_normal_requests_are_served() {
    let api = test_api_with(&[
        ("JOBLINE_HTTP_REQUEST_TIMEOUT_SECONDS", "1"),
        ("JOBLINE_HTTP_MAX_CONCURRENCY", "3"),
    ])
    .await;
    let slow_body = format!(
        "POST /v1/jobs HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
        crate::support::ADMIN_KEY
    );
    let started = std::time::Instant::now();
    let a = stalled(&api, &slow_body).await;
    let b = stalled(&api, &slow_body).await;
    let headers_only = stalled(&api, "GET /health HTTP/1.1\r\nHost: t\r\n").await;
    // Both bodies are being read, holding their slots: seen when a third
    // slow client fills the limit and /health is refused. That one leaves.
    let probe = stalled(&api, &slow_body).await;
    assert!(
        refused(&api).await.is_some(),
        "three slow clients never filled the limit"
    );
    drop(probe);
    // Two slow clients hold two of three slots: a normal request is served
    // at once (once the server has seen the probe go).
    let served = eventually(std::time::Duration::from_secs(1), || async {
        let quick = std::time::Instant::now();
        let (s, body) = send(api.http.get(api.url("/health"))).await;
        assert!(
            quick.elapsed() < std::time::Duration::from_millis(500),
            "{:?}",
            quick.elapsed()
        );
        assert!(
            s == 200 || (s == 503 && code(&body) == "overloaded"),
            "{s} {body}"
        );
        s == 200
    })
    .await;
    assert!(served, "/health was still refused with one of three slots free");
    // A third takes the last slot: the flood beyond it is refused at once.
    let c = stalled(&api, &slow_body).await;
    let resp = refused(&api)
        .await
        .expect("the third slow client filled the limit");
    assert_eq!(
        resp.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(code(&body), "overloaded");
    // The slow ones are answered 408 and closed within the timeout.
    for slow in [a, b, c] {
        let reply = until_closed(slow, std::time::Duration::from_secs(5)).await;
        assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
        assert!(reply.contains("request_timeout"), "{reply}");
    }
    // Headers that never finish: the connection is closed.
    let reply = until_closed(headers_only, std::time::Duration::from_secs(5)).await;
    assert!(!reply.contains("200 OK"), "{reply}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    // And the server serves as before, nothing written by the slow ones. On
    // a new connection: the client's pooled one has been idle for about the
    // request timeout, after which the server closes idle connections.
    let (s, _) = send(reqwest::Client::new().get(api.url("/health"))).await;
    assert_eq!(s, 200);
    assert_eq!(api.db.count("SELECT count(*) FROM jobs").await, 0);
}
