//! `story_script`, against a local stand-in that speaks the
//! chat-completions wire format.

use axum::response::IntoResponse;
use http::StatusCode;
use jobline::JobStatus;
use jobline::handlers::story::{StoryConfig, StoryScriptHandler};
use jobline::testing::run_job;
use jobline::worker::{Finished, Registry};
use serde_json::{Value, json};

use super::{Received, Server, assert_failed, assert_retrying};
use crate::support::test_db;

const API_KEY: &str = "sk-test-0123456789";

#[derive(Clone, Copy)]
enum Model {
    Writes,
    RateLimited,
    NoChoices,
}

/// `POST /v1/chat/completions`, checking the key and the request shape the
/// way the real service does.
async fn chat_server(mode: Model) -> Server {
    Server::start(move |req: Received| async move {
        let error = |status: StatusCode, kind: &str, message: &str| {
            (
                status,
                axum::Json(json!({"error": {"message": message, "type": kind, "param": null, "code": null}})),
            )
                .into_response()
        };
        if req.method != "POST" || req.path != "/v1/chat/completions" {
            return error(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "Unknown request URL",
            );
        }
        if req.header("authorization") != Some(format!("Bearer {API_KEY}").as_str()) {
            return error(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                "Incorrect API key provided",
            );
        }
        let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "We could not parse the JSON body",
            );
        };
        if body["max_tokens"].as_u64() > Some(4000) {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "max_tokens is too large: this model supports at most 4000 completion tokens",
            );
        }
        if !body["model"].is_string() || !body["messages"].is_array() {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "model and messages are required",
            );
        }
        match mode {
            Model::RateLimited => {
                let mut r = error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "requests",
                    "Rate limit reached for gpt-4o-mini on requests per min (RPM)",
                );
                r.headers_mut()
                    .insert("retry-after", http::HeaderValue::from_static("20"));
                r
            }
            Model::NoChoices => axum::Json(json!({
                "id": "chatcmpl-empty", "object": "chat.completion", "created": 1_700_000_000,
                "model": "gpt-4o-mini-2024-07-18", "choices": [],
            }))
            .into_response(),
            Model::Writes => axum::Json(json!({
                "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
                "object": "chat.completion",
                "created": 1_727_000_000,
                "model": "gpt-4o-mini-2024-07-18",
                "choices": [{
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": "The Dragon Who Was Afraid of the Dark\n\nOnce upon a time...",
                        "refusal": null
                    },
                    "logprobs": null,
                    "finish_reason": "stop"
                }],
                "usage": {"prompt_tokens": 91, "completion_tokens": 412, "total_tokens": 503},
                "system_fingerprint": "fp_f85bea6784"
            }))
            .into_response(),
        }
    })
    .await
}

fn story_registry(server: &Server, api_key: Option<&str>, max_tokens: u32) -> Registry {
    let config = StoryConfig::new(server.url("/v1"), api_key.map(str::to_owned)).with_max_tokens(max_tokens);
    let mut r = Registry::new();
    r.register("story_script", StoryScriptHandler::new(config));
    r
}

fn story_payload() -> Value {
    json!({"theme": "a dragon afraid of the dark", "tone": "funny", "ageRange": "4-6", "storyId": "story-123"})
}

#[tokio::test]
async fn story_script_writes_the_script_through_a_chat_completions_server() {
    let db = test_db().await;
    let server = chat_server(Model::Writes).await;
    let registry = story_registry(&server, Some(API_KEY), 900);
    let (finished, job) = run_job(&db, registry, "story_script", story_payload()).await;

    assert_eq!(finished, Finished::Completed, "{job:?}");
    assert_eq!(job.status, JobStatus::Completed);
    assert_eq!(job.stage.as_deref(), Some("done"));
    assert_eq!(job.progress, Some(100.0));
    let result = job.result.expect("result");
    assert_eq!(result["storyId"], "story-123");
    assert_eq!(
        result["script"],
        "The Dragon Who Was Afraid of the Dark\n\nOnce upon a time..."
    );
    assert_eq!(result["model"], "gpt-4o-mini-2024-07-18");
    assert_eq!(
        result["usage"],
        json!({"prompt_tokens": 91, "completion_tokens": 412, "total_tokens": 503})
    );

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let req = &requests[0];
    assert_eq!(
        req.header("authorization"),
        Some(format!("Bearer {API_KEY}").as_str())
    );
    assert_eq!(req.header("content-type"), Some("application/json"));
    let body = req.json();
    assert_eq!(body["model"], "gpt-4o-mini");
    assert_eq!(body["max_tokens"], 900);
    let messages = body["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["role"], "system");
    assert!(!messages[0]["content"].as_str().unwrap_or_default().is_empty());
    assert_eq!(messages[1]["role"], "user");
    let user = messages[1]["content"].as_str().expect("user content");
    for part in ["a dragon afraid of the dark", "funny", "4-6"] {
        assert!(user.contains(part), "{part:?} missing from {user:?}");
    }
}

#[tokio::test]
async fn story_script_rate_limit_is_retried() {
    let db = test_db().await;
    let server = chat_server(Model::RateLimited).await;
    let (finished, job) = run_job(
        &db,
        story_registry(&server, Some(API_KEY), 900),
        "story_script",
        story_payload(),
    )
    .await;
    assert_retrying(finished, &job, "RATE_LIMITED");
    assert!(
        job.failure_reason
            .as_deref()
            .unwrap_or_default()
            .contains("Rate limit reached")
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn story_script_bad_request_fails_for_good() {
    let db = test_db().await;
    let server = chat_server(Model::Writes).await;
    // The stand-in refuses max_tokens above 4000, as the real API does per model.
    let (finished, job) = run_job(
        &db,
        story_registry(&server, Some(API_KEY), 100_000),
        "story_script",
        story_payload(),
    )
    .await;
    assert_eq!(finished, Finished::Failed);
    assert_failed(&job, "HTTP_400");
    assert!(
        job.failure_reason
            .as_deref()
            .unwrap_or_default()
            .contains("max_tokens is too large")
    );
}

#[tokio::test]
async fn story_script_wrong_key_fails_for_good() {
    let db = test_db().await;
    let server = chat_server(Model::Writes).await;
    let (finished, job) = run_job(
        &db,
        story_registry(&server, Some("sk-wrong"), 900),
        "story_script",
        story_payload(),
    )
    .await;
    assert_eq!(finished, Finished::Failed);
    assert_failed(&job, "HTTP_401");
    assert!(
        !job.failure_reason
            .as_deref()
            .unwrap_or_default()
            .contains("sk-wrong"),
        "the key is never written to the job"
    );
}

#[tokio::test]
async fn story_script_without_a_key_is_not_configured() {
    let db = test_db().await;
    let server = chat_server(Model::Writes).await;
    let (finished, job) = run_job(
        &db,
        story_registry(&server, None, 900),
        "story_script",
        story_payload(),
    )
    .await;
    assert_eq!(finished, Finished::Failed);
    assert_failed(&job, "NOT_CONFIGURED");
    assert_eq!(server.requests().len(), 0);
}

#[tokio::test]
async fn story_script_without_a_theme_is_a_bad_payload() {
    let db = test_db().await;
    let server = chat_server(Model::Writes).await;
    let (finished, job) = run_job(
        &db,
        story_registry(&server, Some(API_KEY), 900),
        "story_script",
        json!({"tone": "funny", "storyId": "s"}),
    )
    .await;
    assert_eq!(finished, Finished::Failed);
    assert_failed(&job, "BAD_PAYLOAD");
    assert_eq!(server.requests().len(), 0);
}

#[tokio::test]
async fn story_script_reply_without_choices_is_retried() {
    let db = test_db().await;
    let server = chat_server(Model::NoChoices).await;
    let (finished, job) = run_job(
        &db,
        story_registry(&server, Some(API_KEY), 900),
        "story_script",
        story_payload(),
    )
    .await;
    assert_retrying(finished, &job, "BAD_REPLY");
}
