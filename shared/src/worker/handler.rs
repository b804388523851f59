//! What users implement: a [`JobHandler`] per job type.
//!
//! ```no_run
//! use jobline::worker::{HandlerError, HandlerOutput, JobContext, JobHandler};
//! use serde_json::json;
//!
//! struct Thumbnail;
//!
//! #[jobline::async_trait]
//! impl JobHandler for Thumbnail {
//!     async fn run(&self, ctx: JobContext) -> Result<HandlerOutput, HandlerError> {
//!         let url = ctx.job.payload["url"]
//!             .as_str()
//!             .ok_or_else(|| HandlerError::permanent("BAD_PAYLOAD", "payload.url is required"))?;
//!         ctx.report(Some("downloading"), Some(10.0));
//!         if ctx.is_cancelled() {
//!             return Err(HandlerError::retryable("CANCELLED", "stopped"));
//!         }
//!         // ... fetch `url`, resize, upload ...
//!         ctx.report(Some("uploaded"), Some(100.0));
//!         Ok(HandlerOutput::json(json!({ "source": url })).with_uri("s3://thumbs/1.png"))
//!     }
//! }
//!
//! let mut registry = jobline::handlers::builtins();
//! registry.register("thumbnail", Thumbnail);
//! ```

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::watch;

use crate::domain::Job;
use crate::store::JobFailure;

/// A job's result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HandlerOutput {
    pub result: Option<Value>,
    pub result_uri: Option<String>,
}

impl HandlerOutput {
    pub fn json(result: Value) -> Self {
        Self {
            result: Some(result),
            result_uri: None,
        }
    }

    pub fn with_uri(mut self, uri: impl Into<String>) -> Self {
        self.result_uri = Some(uri.into());
        self
    }
}

/// Why an attempt failed, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// Timeouts, rate limits, 5xx: the job goes back to pending with backoff.
    #[error("{code}: {message}")]
    Retryable { code: String, message: String },
    /// Bad input, 4xx: the job fails for good.
    #[error("{code}: {message}")]
    Permanent { code: String, message: String },
}

impl HandlerError {
    pub fn retryable(code: impl Into<String>, message: impl Into<String>) -> Self {
        HandlerError::Retryable {
            code: code.into(),
            message: message.into(),
        }
    }

    pub fn permanent(code: impl Into<String>, message: impl Into<String>) -> Self {
        HandlerError::Permanent {
            code: code.into(),
            message: message.into(),
        }
    }

    pub fn into_failure(self) -> JobFailure {
        match self {
            HandlerError::Retryable { code, message } => JobFailure::retryable(code, message),
            HandlerError::Permanent { code, message } => JobFailure::permanent(code, message),
        }
    }
}

/// Stage and progress a handler reports; the heartbeat carries them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    pub stage: Option<String>,
    pub progress: Option<f32>,
}

/// What a handler gets: its job, a way to report progress, and a signal
/// that it should stop (the job was cancelled or the claim was lost).
#[derive(Debug, Clone)]
pub struct JobContext {
    pub job: Job,
    progress: watch::Sender<Progress>,
    stop: watch::Receiver<bool>,
}

impl JobContext {
    pub(crate) fn new(job: Job, progress: watch::Sender<Progress>, stop: watch::Receiver<bool>) -> Self {
        Self { job, progress, stop }
    }

    /// Records the stage and/or progress (0-100); sent with the next heartbeat.
    pub fn report(&self, stage: Option<&str>, progress: Option<f32>) {
        self.progress.send_modify(|p| {
            if let Some(s) = stage {
                p.stage = Some(s.to_owned());
            }
            if let Some(v) = progress {
                p.progress = Some(v);
            }
        });
    }

    /// True once the job was cancelled or the claim lost: stop soon.
    pub fn is_cancelled(&self) -> bool {
        *self.stop.borrow()
    }

    /// Resolves when the handler should stop.
    pub async fn cancelled(&self) {
        let mut stop = self.stop.clone();
        let _ = stop.wait_for(|s| *s).await;
    }
}

#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    /// Runs one attempt. Return an error that says retryable or permanent; a
    /// panic counts as a retryable failure.
    async fn run(&self, ctx: JobContext) -> Result<HandlerOutput, HandlerError>;

    /// Longest an attempt may take before it fails as `TIMEOUT` (retryable).
    fn timeout(&self) -> Duration {
        Duration::from_secs(15 * 60)
    }
}
