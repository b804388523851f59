//! Handler output Postgres cannot store (a NUL character) settles the job in
//! the same attempt: no heartbeat timeout, no second run.

use jobline::JobStatus;
use jobline::testing::run_job;
use jobline::worker::{Finished, HandlerError, HandlerOutput, JobContext, JobHandler, Registry};
use serde_json::json;

use crate::support::test_db;

/// Answers whatever its payload's `answer` says.
struct Echo;

#[jobline::async_trait]
impl JobHandler for Echo {
    async fn run(&self, ctx: JobContext) -> Result<HandlerOutput, HandlerError> {
        let p = &ctx.job.payload;
        match p["answer"].as_str() {
            Some("result") => Ok(HandlerOutput::json(json!({ "text": "a\u{0}b" }))),
            Some("uri") => Ok(HandlerOutput::json(json!({})).with_uri("s3://bucket/a\u{0}b")),
            Some("error") => Err(HandlerError::retryable("UPSTREAM", "bad\u{0}thing")),
            Some("stage") => {
                ctx.report(Some("half\u{0}way"), Some(50.0));
                Ok(HandlerOutput::json(json!({ "ok": true })))
            }
            _ => Ok(HandlerOutput::json(json!({}))),
        }
    }
}

fn echo() -> Registry {
    let mut r = Registry::new();
    r.register("echo", Echo);
    r
}

#[tokio::test]
async fn a_result_with_a_nul_character_fails_the_job_for_good_in_the_same_attempt() {
    let db = test_db().await;
    for answer in ["result", "uri"] {
        let (finished, job) = run_job(&db, echo(), "echo", json!({ "answer": answer })).await;
        assert_eq!(finished, Finished::Failed, "{answer}: {job:?}");
        assert_eq!(job.status, JobStatus::Failed);
        assert_eq!(job.error_code.as_deref(), Some("UNSTORABLE_RESULT"), "{answer}");
        assert_eq!(job.attempts, 1, "not run again");
        assert_eq!(db.events(job.id).await, ["created", "claimed", "failed"]);
    }
}

#[tokio::test]
async fn an_error_message_or_a_stage_with_a_nul_character_is_stored_without_it() {
    let db = test_db().await;
    let (finished, job) = run_job(&db, echo(), "echo", json!({ "answer": "error" })).await;
    assert!(matches!(finished, Finished::Retrying(_)), "{finished:?}");
    assert_eq!(job.status, JobStatus::Pending);
    assert_eq!(job.failure_reason.as_deref(), Some("bad\u{fffd}thing"));
    let (finished, job) = run_job(&db, echo(), "echo", json!({ "answer": "stage" })).await;
    assert_eq!(finished, Finished::Completed, "{job:?}");
    assert_eq!(job.stage.as_deref(), Some("half\u{fffd}way"));
}
