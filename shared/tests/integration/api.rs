//! The whole API over real HTTP against real Postgres.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{ADMIN_KEY, send, test_api, test_api_with};

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("(no code)")
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
    let (status, created) =
        send(api.admin(Method::POST, "/v1/jobs").json(
            &json!({"type": "render", "payload": {"frames": 3}, "priority": 1, "correlation_id": "c1"}),
        ))
        .await;
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

    let (status, got) = send(api.admin(Method::GET, &format!("/v1/jobs/{id}"))).await;
    assert_eq!(status, 200);
    assert_eq!(got["payload"], json!({"frames": 3}));

    let (status, list) = send(api.admin(Method::GET, "/v1/jobs?type=render&status=pending")).await;
    assert_eq!(status, 200);
    assert_eq!(list["jobs"].as_array().expect("jobs").len(), 1);
    assert_eq!(list["next_cursor"], Value::Null);

    // Published right after commit: the outbox row is sent and the timeline says so.
    let (_, events) = send(api.admin(Method::GET, &format!("/v1/jobs/{id}/events"))).await;
    let names: Vec<&str> = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    assert_eq!(names, ["created", "published"]);
    assert_eq!(
        api.db
            .count("SELECT count(*) FROM outbox WHERE status = 'sent'")
            .await,
        1
    );

    let (status, cancelled) = send(api.admin(Method::POST, &format!("/v1/jobs/{id}/cancel"))).await;
    assert_eq!(status, 200);
    assert_eq!(cancelled["status"], "cancelled");
    let (status, again) = send(api.admin(Method::POST, &format!("/v1/jobs/{id}/cancel"))).await;
    assert_eq!((status, code(&again)), (409, "invalid_state"));

    let (status, retried) = send(api.admin(Method::POST, &format!("/v1/jobs/{id}/retry"))).await;
    assert_eq!(status, 200, "{retried}");
    assert_eq!(retried["status"], "pending");
    let (status, again) = send(api.admin(Method::POST, &format!("/v1/jobs/{id}/retry"))).await;
    assert_eq!((status, code(&again)), (409, "invalid_state"));
    assert_eq!(
        api.db
            .count("SELECT count(*) FROM outbox WHERE status = 'sent'")
            .await,
        2,
        "the retry was published"
    );
}

#[tokio::test]
async fn idempotency_keys_work_in_the_body_and_the_header() {
    let api = test_api().await;
    let body = json!({"type": "noop", "payload": {"n": 1}});
    let first = send(
        api.admin(Method::POST, "/v1/jobs")
            .header("Idempotency-Key", "k1")
            .json(&body),
    )
    .await;
    assert_eq!(first.0, 201);
    let again = send(
        api.admin(Method::POST, "/v1/jobs")
            .header("Idempotency-Key", "k1")
            .json(&body),
    )
    .await;
    assert_eq!(again.0, 200);
    assert_eq!(again.1["already_existed"], true);
    assert_eq!(again.1["id"], first.1["id"]);
    let in_body = send(
        api.admin(Method::POST, "/v1/jobs")
            .json(&json!({"type": "noop", "payload": {"n": 1}, "idempotency_key": "k1"})),
    )
    .await;
    assert_eq!(in_body.0, 200, "the body field is the same key as the header");
    let conflict = send(
        api.admin(Method::POST, "/v1/jobs")
            .header("Idempotency-Key", "k1")
            .json(&json!({"type": "noop", "payload": {"n": 2}})),
    )
    .await;
    assert_eq!((conflict.0, code(&conflict.1)), (409, "idempotency_conflict"));
    let mismatch = send(
        api.admin(Method::POST, "/v1/jobs")
            .header("Idempotency-Key", "a")
            .json(&json!({"type": "noop", "idempotency_key": "b"})),
    )
    .await;
    assert_eq!((mismatch.0, code(&mismatch.1)), (422, "validation_failed"));
    assert_eq!(api.db.count("SELECT count(*) FROM jobs").await, 1);
}

#[tokio::test]
async fn keys_scopes_and_tenants_are_enforced() {
    let api = test_api().await;
    let reader = api.key("acme", &["jobs:read"]).await;
    let writer = api.key("acme", &["jobs:write", "jobs:read"]).await;
    let stranger = api.key("globex", &["jobs:read", "jobs:write", "admin"]).await;

    let (s, b) = send(api.http.post(api.url("/v1/jobs")).json(&json!({"type": "noop"}))).await;
    assert_eq!((s, code(&b)), (401, "unauthorized"));
    let (s, b) = send(api.with_key("jl_nope", Method::GET, "/v1/jobs")).await;
    assert_eq!((s, code(&b)), (401, "unauthorized"));
    let (s, b) = send(
        api.with_key(&reader, Method::POST, "/v1/jobs")
            .json(&json!({"type": "noop"})),
    )
    .await;
    assert_eq!((s, code(&b)), (403, "forbidden"));

    let (s, job) = send(
        api.http
            .post(api.url("/v1/jobs"))
            .header("X-Api-Key", &writer)
            .json(&json!({"type": "noop"})),
    )
    .await;
    assert_eq!(s, 201, "X-Api-Key works too");
    let id = job["id"].as_str().expect("id");
    let (s, _) = send(api.with_key(&reader, Method::GET, &format!("/v1/jobs/{id}"))).await;
    assert_eq!(s, 200);
    let (s, b) = send(api.with_key(&stranger, Method::GET, &format!("/v1/jobs/{id}"))).await;
    assert_eq!(
        (s, code(&b)),
        (404, "not_found"),
        "another tenant's job does not exist for them"
    );
    let (s, _) = send(api.with_key(&stranger, Method::POST, &format!("/v1/jobs/{id}/cancel"))).await;
    assert_eq!(s, 404);
    let (s, b) = send(api.with_key(&writer, Method::GET, "/v1/stats")).await;
    assert_eq!((s, code(&b)), (403, "forbidden"), "stats need admin");

    // Revoking takes effect on the next request.
    let key_id = uuid::Uuid::parse_str(&reader[3..35]).expect("key id");
    assert!(api.db.store.revoke_api_key(key_id).await.expect("revoke"));
    let (s, _) = send(api.with_key(&reader, Method::GET, &format!("/v1/jobs/{id}"))).await;
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
    let cases: Vec<(reqwest::RequestBuilder, u16, &str, &str)> = vec![
        (post("{not json"), 400, "invalid_json", ""),
        (post("{}"), 422, "validation_failed", "type"),
        (post(r#"{"type": 7}"#), 422, "validation_failed", "type"),
        (
            post(r#"{"type": "noop", "priority": "high"}"#),
            422,
            "validation_failed",
            "priority",
        ),
        (
            post(r#"{"type": "noop", "priority": 9}"#),
            422,
            "validation_failed",
            "priority",
        ),
        (
            post(r#"{"type": "noop", "max_attempts": 0}"#),
            422,
            "validation_failed",
            "max_attempts",
        ),
        (
            post(r#"{"type": "noop", "run_after": "tomorrow"}"#),
            422,
            "validation_failed",
            "run_after",
        ),
        (
            post(r#"{"type": "noop", "delay_seconds": 5, "run_after": "2030-01-01T00:00:00Z"}"#),
            422,
            "validation_failed",
            "delay_seconds",
        ),
        (
            post(r#"{"type": "noop", "surprise": 1}"#),
            422,
            "validation_failed",
            "surprise",
        ),
        (
            post(r#"{"type": "has spaces"}"#),
            422,
            "validation_failed",
            "type",
        ),
        (post("[1, 2]"), 422, "validation_failed", "body"),
        (api.admin(Method::GET, "/v1/nothing-here"), 404, "not_found", ""),
        (
            api.admin(Method::DELETE, "/v1/jobs"),
            405,
            "method_not_allowed",
            "",
        ),
        (
            api.admin(Method::GET, "/v1/jobs/not-a-uuid"),
            404,
            "not_found",
            "",
        ),
        (
            api.admin(Method::GET, "/v1/jobs?cursor=garbage"),
            400,
            "invalid_cursor",
            "",
        ),
        (
            api.admin(Method::GET, "/v1/jobs?status=done"),
            422,
            "validation_failed",
            "status",
        ),
        (
            api.admin(Method::GET, "/v1/jobs?limit=501"),
            422,
            "validation_failed",
            "limit",
        ),
        (
            api.admin(Method::POST, "/v1/jobs/batch")
                .json(&json!({"jobs": []})),
            422,
            "validation_failed",
            "jobs",
        ),
        // Postgres cannot store NUL in text or jsonb: refused by name,
        // wherever it is (found by the gauntlet's fuzzer as 500s).
        (
            post(r#"{"type": "noop", "payload": {"scenes": [{"title": "a\u0000b"}]}}"#),
            422,
            "validation_failed",
            "payload.scenes[0].title",
        ),
        (
            post(r#"{"type": "noop", "correlation_id": "x\u0000"}"#),
            422,
            "validation_failed",
            "correlation_id",
        ),
        (
            api.admin(Method::POST, "/v1/dead-letter/replay")
                .json(&json!({"token": "t\u{0}"})),
            422,
            "validation_failed",
            "token",
        ),
        (
            api.admin(Method::POST, "/api/generation/story-script")
                .json(&json!({"theme": "\u{0}"})),
            422,
            "validation_failed",
            "theme",
        ),
        (
            api.admin(Method::GET, "/v1/jobs?type=a%00b"),
            422,
            "validation_failed",
            "",
        ),
    ];
    for (request, want_status, want_code, names) in cases {
        let (status, body) = send(request).await;
        assert_eq!((status, code(&body)), (want_status, want_code), "{body}");
        let message = body["error"]["message"].as_str().expect("a message");
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
    let (s, b) = send(
        api.admin(Method::POST, "/v1/jobs")
            .json(&json!({"type": "noop", "priority": "P0"})),
    )
    .await;
    assert_eq!((s, b["priority"].as_i64()), (201, Some(0)), "{b}");
    let (s, b) = send(
        api.admin(Method::POST, "/v1/jobs/batch")
            .json(&json!({"jobs": [{"type": "noop", "priority": "P3"}, {"type": "noop", "priority": 1}]})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(
        (
            b["jobs"][0]["priority"].as_i64(),
            b["jobs"][1]["priority"].as_i64()
        ),
        (Some(3), Some(1))
    );
    // The same request with the label or the number is the same job.
    let (s, first) = send(
        api.admin(Method::POST, "/v1/jobs")
            .json(&json!({"type": "noop", "priority": "P2", "idempotency_key": "k-prio"})),
    )
    .await;
    assert_eq!(s, 201, "{first}");
    let (s, again) = send(
        api.admin(Method::POST, "/v1/jobs")
            .json(&json!({"type": "noop", "priority": 2, "idempotency_key": "k-prio"})),
    )
    .await;
    assert_eq!((s, again["id"].clone()), (200, first["id"].clone()), "{again}");
    for bad in [json!("P4"), json!("high"), json!(4), json!(-1), json!(1.5)] {
        let (s, b) = send(
            api.admin(Method::POST, "/v1/jobs")
                .json(&json!({"type": "noop", "priority": bad})),
        )
        .await;
        assert_eq!((s, code(&b)), (422, "validation_failed"), "{bad}: {b}");
        assert!(
            b["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("priority"),
            "{b}"
        );
    }
}

#[tokio::test]
async fn a_deployment_can_restrict_job_types() {
    let api = test_api_with(&[("JOBLINE_JOB_TYPES", "noop,story_script")]).await;
    let (s, b) = send(
        api.admin(Method::POST, "/v1/jobs")
            .json(&json!({"type": "rm-rf"})),
    )
    .await;
    assert_eq!((s, code(&b)), (422, "unknown_job_type"));
    let (s, _) = send(api.admin(Method::POST, "/v1/jobs").json(&json!({"type": "noop"}))).await;
    assert_eq!(s, 201);
}

#[tokio::test]
async fn a_batch_is_all_or_nothing() {
    let api = test_api().await;
    let (s, b) = send(
        api.admin(Method::POST, "/v1/jobs/batch")
            .json(&json!({"jobs": [{"type": "noop"}, {"type": "bad type"}]})),
    )
    .await;
    assert_eq!((s, code(&b)), (422, "validation_failed"));
    assert!(
        b["error"]["message"]
            .as_str()
            .expect("message")
            .contains("jobs[1].type"),
        "{b}"
    );
    assert_eq!(api.db.count("SELECT count(*) FROM jobs").await, 0);
    let too_many: Vec<Value> = (0..101).map(|_| json!({"type": "noop"})).collect();
    let (s, _) = send(
        api.admin(Method::POST, "/v1/jobs/batch")
            .json(&json!({"jobs": too_many})),
    )
    .await;
    assert_eq!(s, 422);
    let jobs: Vec<Value> = (0..100)
        .map(|i| json!({"type": "noop", "payload": {"i": i}}))
        .collect();
    let (s, b) = send(
        api.admin(Method::POST, "/v1/jobs/batch")
            .json(&json!({"jobs": jobs})),
    )
    .await;
    assert_eq!(s, 201);
    let created = b["jobs"].as_array().expect("jobs");
    assert_eq!(created.len(), 100);
    assert_eq!(created[42]["payload"], json!({"i": 42}), "answers in input order");
    assert_eq!(
        api.db
            .count("SELECT count(*) FROM outbox WHERE status = 'sent'")
            .await,
        100
    );
}

#[tokio::test]
async fn pages_over_http_are_stable_while_jobs_are_added() {
    let api = test_api().await;
    for i in 0..12 {
        api.db.advance(1);
        let (s, _) = send(
            api.admin(Method::POST, "/v1/jobs")
                .json(&json!({"type": "noop", "payload": {"i": i}})),
        )
        .await;
        assert_eq!(s, 201);
    }
    let mut seen = std::collections::HashSet::new();
    let mut path = "/v1/jobs?limit=5".to_owned();
    loop {
        let (s, page) = send(api.admin(Method::GET, &path)).await;
        assert_eq!(s, 200);
        for job in page["jobs"].as_array().expect("jobs") {
            assert!(
                seen.insert(job["id"].as_str().expect("id").to_owned()),
                "a job came twice"
            );
        }
        api.db.advance(1);
        send(api.admin(Method::POST, "/v1/jobs").json(&json!({"type": "late"}))).await;
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
    send(api.admin(Method::POST, "/v1/jobs").json(&json!({"type": "noop"}))).await;
    api.db.advance(120);
    let (s, stats) = send(api.admin(Method::GET, "/v1/stats")).await;
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
    let (_, job) = send(
        api.admin(Method::POST, "/v1/jobs")
            .json(&json!({"type": "noop", "max_attempts": 1})),
    )
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

    let (s, dl) = send(api.admin(Method::GET, "/v1/dead-letter")).await;
    assert_eq!(s, 200);
    assert_eq!(dl["jobs"][0]["id"], job["id"]);
    assert_eq!(dl["jobs"][0]["error_code"], "BAD");

    let (s, first) = send(
        api.admin(Method::POST, "/v1/dead-letter/replay")
            .json(&json!({"token": "t-1"})),
    )
    .await;
    assert_eq!(s, 200, "{first}");
    assert_eq!(first["updated"], 1);
    assert_eq!(first["already_used"], false);
    let (_, second) = send(
        api.admin(Method::POST, "/v1/dead-letter/replay")
            .json(&json!({"token": "t-1"})),
    )
    .await;
    assert_eq!(second["updated"], 0);
    assert_eq!(second["already_used"], true);
    let (_, now) = send(api.admin(Method::GET, &format!("/v1/jobs/{id}"))).await;
    assert_eq!(now["status"], "pending");
    let (s, b) = send(api.admin(Method::POST, "/v1/dead-letter/replay").json(&json!({}))).await;
    assert_eq!((s, code(&b)), (422, "validation_failed"));
}

#[tokio::test]
async fn the_story_script_route_creates_one_job_per_story() {
    let api = test_api().await;
    let (s, b) =
        send(api.admin(Method::POST, "/api/generation/story-script").json(
            &json!({"theme": "dragons", "tone": "warm", "ageRange": "4-6", "initiatedBy": "ops-runbook"}),
        ))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["ok"], true);
    let story = b["storyId"].as_str().expect("storyId");
    let ids = b["jobIds"].as_array().expect("jobIds");
    assert_eq!(ids.len(), 1);
    let (_, job) = send(api.admin(Method::GET, &format!("/v1/jobs/{}", ids[0].as_str().expect("id")))).await;
    assert_eq!(job["type"], "story_script");
    assert_eq!(job["correlation_id"], story);
    assert_eq!(job["payload"]["theme"], "dragons");
    assert_eq!(job["initiated_by"], "ops-runbook");
    let (s, b) = send(
        api.admin(Method::POST, "/api/generation/story-script")
            .json(&json!({"tone": "warm"})),
    )
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
    let (_, events) = send(api.with_key(&key, Method::GET, &format!("/v1/jobs/{id}/events"))).await;
    let created = &events["events"][0];
    assert_eq!(created["event"], "created", "{events}");
    let actor = created["actor"].as_str().expect("actor");
    assert!(
        actor.starts_with("key:"),
        "the caller's key, not the body's initiatedBy: {actor}"
    );
    let (_, job) = send(api.with_key(&key, Method::GET, &format!("/v1/jobs/{id}"))).await;
    assert_eq!(job["initiated_by"], "admin", "initiatedBy stays data");
}

#[tokio::test]
async fn the_story_route_obeys_the_deployments_job_types() {
    let api = test_api_with(&[("JOBLINE_JOB_TYPES", "noop")]).await;
    let (s, b) = send(
        api.admin(Method::POST, "/api/generation/story-script")
            .json(&json!({"theme": "dragons"})),
    )
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
    let beat = jobline::store::workers::WorkerBeat {
        id: "edge-1".into(),
        host: "h".into(),
        version: "0.1.0".into(),
        queue: "postgres".into(),
        concurrency: 4,
        started_at: api.db.now(),
        in_flight: 1,
        processed: 10,
        failed: 2,
        state: "running".into(),
    };
    api.db.store.worker_beat(&beat).await.expect("beat");
    let (s, list) = send(api.admin(Method::GET, "/v1/workers")).await;
    assert_eq!(s, 200);
    assert_eq!(list["workers"][0]["id"], "edge-1");
    assert_eq!(list["workers"][0]["state"], "running");
    assert_eq!(list["workers"][0]["processed"], 10);
    let (s, b) = send(api.admin(Method::POST, "/v1/workers/edge-1/pause")).await;
    assert_eq!((s, b["desired_state"].as_str()), (200, Some("paused")));
    let (_, list) = send(api.admin(Method::GET, "/v1/workers")).await;
    assert_eq!(list["workers"][0]["state"], "paused");
    let command = api.db.store.worker_beat(&beat).await.expect("beat");
    assert_eq!(
        command,
        jobline::store::workers::WorkerCommand::Paused,
        "the worker learns it on its next beat"
    );
    let (s, _) = send(api.admin(Method::POST, "/v1/workers/edge-1/drain")).await;
    assert_eq!(s, 200);
    let (s, _) = send(api.admin(Method::POST, "/v1/workers/edge-1/resume")).await;
    assert_eq!(s, 200);
    let (s, b) = send(api.admin(Method::POST, "/v1/workers/nobody/pause")).await;
    assert_eq!((s, code(&b)), (404, "not_found"));
    let writer = api.key("acme", &["jobs:write", "jobs:read"]).await;
    let (s, b) = send(api.with_key(&writer, Method::POST, "/v1/workers/edge-1/pause")).await;
    assert_eq!((s, code(&b)), (403, "forbidden"));
}

#[tokio::test]
async fn another_tenants_admin_key_can_neither_see_nor_steer_the_workers() {
    let api = test_api().await;
    let beat = jobline::store::workers::WorkerBeat {
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
    };
    api.db.store.worker_beat(&beat).await.expect("beat");
    let tenant_admin = api.key("acme", &["admin"]).await;
    let (s, b) = send(api.with_key(&tenant_admin, Method::GET, "/v1/workers")).await;
    assert_eq!((s, code(&b)), (403, "forbidden"));
    for action in ["pause", "drain", "resume"] {
        let (s, b) = send(api.with_key(
            &tenant_admin,
            Method::POST,
            &format!("/v1/workers/edge-1/{action}"),
        ))
        .await;
        assert_eq!((s, code(&b)), (403, "forbidden"), "{action}: {b}");
    }
    assert_eq!(
        api.db.store.worker_beat(&beat).await.expect("beat"),
        jobline::store::workers::WorkerCommand::Running,
        "the worker was not steered"
    );
}
