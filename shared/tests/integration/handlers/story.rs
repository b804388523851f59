//! `story_script`, against a local stand-in that speaks the
//! chat-completions wire format.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use jobline::handlers::story::{StoryConfig, StoryScriptHandler};
use jobline::testing::run_job;
use jobline::worker::{Finished, Registry};
use jobline::{Job, JobStatus};
use serde_json::{Value, json};

use super::{Received, Server, assert_failed, assert_retrying, reason};
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
        match refusal(&req) {
            Some((status, message)) => api_error(status, "invalid_request_error", message),
            None => reply(mode),
        }
    })
    .await
}

/// The service's error body.
fn api_error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"message": message, "type": kind, "param": null, "code": null}})),
    )
        .into_response()
}

/// Why the real service refuses `req`, if it does: the status and message.
fn refusal(req: &Received) -> Option<(StatusCode, &'static str)> {
    if req.method != "POST" || req.path != "/v1/chat/completions" {
        return Some((StatusCode::NOT_FOUND, "Unknown request URL"));
    }
    if req.header("authorization") != Some(format!("Bearer {API_KEY}").as_str()) {
        return Some((StatusCode::UNAUTHORIZED, "Incorrect API key provided"));
    }
    let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
        return Some((StatusCode::BAD_REQUEST, "We could not parse the JSON body"));
    };
    if body["max_tokens"].as_u64() > Some(4000) {
        return Some((
            StatusCode::BAD_REQUEST,
            "max_tokens is too large: this model supports at most 4000 completion tokens",
        ));
    }
    if !body["model"].is_string() || !body["messages"].is_array() {
        return Some((StatusCode::BAD_REQUEST, "model and messages are required"));
    }
    None
}

/// What the model answers a well-formed request.
fn reply(mode: Model) -> Response {
    match mode {
        Model::RateLimited => {
            let mut r = api_error(
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

/// Runs a `story_script` job for `payload` against `server`, configured
/// with `api_key` and `max_tokens`.
async fn story_job_against(
    server: &Server,
    api_key: Option<&str>,
    max_tokens: u32,
    payload: Value,
) -> (Finished, Job) {
    let db = test_db().await;
    run_job(
        &db,
        story_registry(server, api_key, max_tokens),
        "story_script",
        payload,
    )
    .await
}

/// The usual story job against `server`: the right key, 900 tokens, a good payload.
async fn a_story_job_against(server: &Server) -> (Finished, Job) {
    story_job_against(server, Some(API_KEY), 900, story_payload()).await
}

#[tokio::test]
async fn story_script_writes_the_script_through_a_chat_completions_server() {
    let server = chat_server(Model::Writes).await;
    let (finished, job) = a_story_job_against(&server).await;

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
    let server = chat_server(Model::RateLimited).await;
    let (finished, job) = a_story_job_against(&server).await;
    assert_retrying(finished, &job, "RATE_LIMITED");
    assert!(reason(&job).contains("Rate limit reached"));
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn story_script_bad_request_fails_for_good() {
    let server = chat_server(Model::Writes).await;
    // The stand-in refuses max_tokens above 4000, as the real API does per model.
    let (finished, job) = story_job_against(&server, Some(API_KEY), 100_000, story_payload()).await;
    assert_failed(finished, &job, "HTTP_400");
    assert!(reason(&job).contains("max_tokens is too large"));
}

#[tokio::test]
async fn story_script_wrong_key_fails_for_good() {
    let server = chat_server(Model::Writes).await;
    let (finished, job) = story_job_against(&server, Some("sk-wrong"), 900, story_payload()).await;
    assert_failed(finished, &job, "HTTP_401");
    assert!(
        !reason(&job).contains("sk-wrong"),
        "the key is never written to the job"
    );
}

#[tokio::test]
async fn story_script_without_a_key_is_not_configured() {
    let server = chat_server(Model::Writes).await;
    let (finished, job) = story_job_against(&server, None, 900, story_payload()).await;
    assert_failed(finished, &job, "NOT_CONFIGURED");
    assert_eq!(server.requests().len(), 0);
}

#[tokio::test]
async fn story_script_without_a_theme_is_a_bad_payload() {
    let server = chat_server(Model::Writes).await;
    let no_theme = json!({"tone": "funny", "storyId": "s"});
    let (finished, job) = story_job_against(&server, Some(API_KEY), 900, no_theme).await;
    assert_failed(finished, &job, "BAD_PAYLOAD");
    assert_eq!(server.requests().len(), 0);
}

#[tokio::test]
async fn story_script_reply_without_choices_is_retried() {
    let server = chat_server(Model::NoChoices).await;
    let (finished, job) = a_story_job_against(&server).await;
    assert_retrying(finished, &job, "BAD_REPLY");
}
