//! Handlers for drills, benchmarks and tests: `noop`, `sleep`, `fail`.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;

use crate::worker::{HandlerError, HandlerOutput, JobContext, JobHandler};

/// The timeout of the handlers that finish at once (`noop`, `fail`): short,
/// so a consumer with little time (a Lambda's) can take them.
pub const INSTANT_TIMEOUT: Duration = Duration::from_secs(10);

/// Completes at once with `{}`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Noop;

#[async_trait]
impl JobHandler for Noop {
    async fn run(&self, _ctx: JobContext) -> Result<HandlerOutput, HandlerError> {
        Ok(HandlerOutput::json(json!({})))
    }

    fn timeout(&self) -> Duration {
        INSTANT_TIMEOUT
    }
}

/// Sleeps `payload.ms` milliseconds (stopping early when cancelled).
#[derive(Debug, Clone, Copy, Default)]
pub struct Sleep;

#[async_trait]
impl JobHandler for Sleep {
    async fn run(&self, ctx: JobContext) -> Result<HandlerOutput, HandlerError> {
        let ms = ctx.job.payload["ms"].as_u64().unwrap_or(0).min(3_600_000);
        ctx.report(Some("sleeping"), Some(0.0));
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(ms)) => {}
            () = ctx.cancelled() => return Err(HandlerError::retryable("CANCELLED", "stopped while sleeping")),
        }
        ctx.report(Some("done"), Some(100.0));
        Ok(HandlerOutput::json(json!({ "slept_ms": ms })))
    }
}

/// Fails its first `payload.times` attempts (default: every attempt),
/// permanently when `payload.permanent` is true; `payload.panic` panics.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fail;

#[async_trait]
impl JobHandler for Fail {
    async fn run(&self, ctx: JobContext) -> Result<HandlerOutput, HandlerError> {
        let p = &ctx.job.payload;
        if p["panic"].as_bool() == Some(true) {
            panic!("the fail handler was asked to panic");
        }
        let times = p["times"].as_i64().unwrap_or(i64::MAX);
        if i64::from(ctx.job.attempts) > times {
            return Ok(HandlerOutput::json(json!({ "failed_first": times })));
        }
        let message = format!("failing attempt {} on purpose", ctx.job.attempts);
        if p["permanent"].as_bool() == Some(true) {
            Err(HandlerError::permanent("FAIL_PERMANENT", message))
        } else {
            Err(HandlerError::retryable("FAIL", message))
        }
    }

    fn timeout(&self) -> Duration {
        INSTANT_TIMEOUT
    }
}
