//! The processing core every consumer shares (the SQS Lambda, the edge
//! worker): take a delivery, claim the job by id, run its handler while a
//! heartbeat renews the claim, then complete or fail with the claim's
//! fencing token.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::Instrument as _;

use super::handler::{HandlerError, JobContext, Progress};
use super::registry::Registry;
use crate::queue::Delivery;
use crate::store::{
    Claim, ClaimByIdOutcome, FailOutcome, HeartbeatOutcome, JobFailure, Settled, Store, StoreError,
};

/// How soon a message for a job of another worker's type is handed out again.
const OTHER_TYPE_DELAY: Duration = Duration::from_secs(1);

/// How long a handler that was told to stop may take to do so.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    Completed,
    /// Back to pending; due again after this long.
    Retrying(Duration),
    Failed,
    /// The claim was no longer ours (cancelled, released): nothing recorded.
    Stale,
}

/// What to tell the broker about a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Processed, dropped (done, cancelled, claimed elsewhere, unknown,
    /// unparseable) or failed for good: delete it.
    Ack,
    /// Bring it back after this long (a retry's backoff, a job not yet due,
    /// the database unreachable).
    Retry(Duration),
}

#[derive(Debug, Clone)]
pub struct Processor {
    store: Store,
    registry: Arc<Registry>,
    heartbeat_interval: Duration,
    worker: String,
    /// Only jobs of these types are claimed from deliveries (`None`: all).
    types: Option<Arc<[String]>>,
}

impl Processor {
    pub fn new(
        store: Store,
        registry: Arc<Registry>,
        heartbeat_interval: Duration,
        worker: impl Into<String>,
    ) -> Self {
        Self {
            store,
            registry,
            heartbeat_interval,
            worker: worker.into(),
            types: None,
        }
    }

    /// Claims from deliveries only jobs of `types`; a message for another
    /// type goes back to the broker for a worker that takes it.
    pub fn with_types(mut self, types: Option<Vec<String>>) -> Self {
        self.types = types.map(Arc::from);
        self
    }

    pub fn worker(&self) -> &str {
        &self.worker
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Handles one queue message from claim to ack; says how the job's
    /// attempt ended when this delivery ran one.
    pub async fn handle_delivery(&self, delivery: &Delivery) -> (Disposition, Option<Finished>) {
        let Some(message) = delivery.message else {
            tracing::warn!(raw = %truncate(&delivery.raw, 200), "dropping a message that is not a job message");
            return (Disposition::Ack, None);
        };
        let span =
            tracing::info_span!("delivery", job_id = %message.job_id, receive_count = delivery.receive_count);
        async {
            match self
                .store
                .claim_by_id_of_types(&self.worker, message.job_id, self.types.as_deref())
                .await
            {
                Ok(ClaimByIdOutcome::Claimed(claim)) => {
                    let finished = self.run_claim(*claim).await;
                    match finished {
                        Finished::Retrying(delay) => (Disposition::Retry(delay), Some(finished)),
                        _ => (Disposition::Ack, Some(finished)),
                    }
                }
                Ok(ClaimByIdOutcome::NotDue(at)) => {
                    let wait = (at - self.store.now()).to_std().unwrap_or_default();
                    tracing::debug!(?wait, "not due yet: delaying the message");
                    (Disposition::Retry(wait), None)
                }
                Ok(ClaimByIdOutcome::OtherType(job_type)) => {
                    tracing::debug!(%job_type, "not a type of this worker: giving the message back");
                    (Disposition::Retry(OTHER_TYPE_DELAY), None)
                }
                Ok(other) => {
                    tracing::debug!(outcome = ?other, "not claimable: dropping the message");
                    (Disposition::Ack, None)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not claim; the message comes back later");
                    (Disposition::Retry(Duration::from_secs(5)), None)
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Runs a claimed job to its end.
    pub async fn run_claim(&self, claim: Claim) -> Finished {
        let span = tracing::info_span!(
            "job",
            job_id = %claim.job.id,
            job_type = %claim.job.job_type,
            attempt = claim.job.attempts
        );
        self.run_claim_inner(claim).instrument(span).await
    }

    async fn run_claim_inner(&self, claim: Claim) -> Finished {
        let Some(handler) = self.registry.get(&claim.job.job_type) else {
            let failure = JobFailure::permanent(
                "NO_HANDLER",
                format!("no handler is registered for job type {:?}", claim.job.job_type),
            );
            return self.settle_failure(&claim, failure).await;
        };
        let (progress_tx, progress_rx) = watch::channel(Progress::default());
        let (stop_tx, stop_rx) = watch::channel(false);
        let ctx = JobContext::new(claim.job.clone(), progress_tx, stop_rx);
        let timeout = handler.timeout();
        let mut task = tokio::spawn(async move { tokio::time::timeout(timeout, handler.run(ctx)).await });

        let mut beat = tokio::time::interval(self.heartbeat_interval);
        beat.tick().await;
        let mut stop_deadline: Option<tokio::time::Instant> = None;
        let joined = loop {
            tokio::select! {
                joined = &mut task => break Some(joined),
                _ = beat.tick(), if stop_deadline.is_none() => {
                    let p = progress_rx.borrow().clone();
                    match self.store.heartbeat(claim.token(), p.stage.as_deref(), p.progress).await {
                        Ok(HeartbeatOutcome::Alive) => {}
                        Ok(gone) => {
                            tracing::info!(outcome = ?gone, "claim ended under the handler: telling it to stop");
                            let _ = stop_tx.send(true);
                            stop_deadline = Some(tokio::time::Instant::now() + STOP_GRACE);
                        }
                        Err(e) => tracing::warn!(error = %e, "heartbeat failed; will try again"),
                    }
                }
                () = sleep_until(stop_deadline) => {
                    tracing::warn!("handler did not stop within its grace; abandoning it");
                    task.abort();
                    break None;
                }
            }
        };
        // A final heartbeat carries the last stage and progress.
        let last = progress_rx.borrow().clone();
        if last != Progress::default() && stop_deadline.is_none() {
            let _ = self
                .store
                .heartbeat(claim.token(), last.stage.as_deref(), last.progress)
                .await;
        }
        let outcome = match joined {
            None => return Finished::Stale,
            Some(Err(join)) if join.is_panic() => Err(JobFailure::retryable("PANIC", panic_message(join))),
            Some(Err(_)) => Err(JobFailure::retryable("ABORTED", "the handler task was aborted")),
            Some(Ok(Err(_elapsed))) => Err(JobFailure::retryable(
                "TIMEOUT",
                format!("the attempt took longer than {timeout:?}"),
            )),
            Some(Ok(Ok(Err(e)))) => Err(HandlerError::into_failure(e)),
            Some(Ok(Ok(Ok(output)))) => Ok(output),
        };
        match outcome {
            Ok(output) => match self
                .store
                .complete(&claim, output.result, output.result_uri.as_deref())
                .await
            {
                Ok(Settled::Applied(_)) => Finished::Completed,
                Ok(Settled::Stale) => {
                    tracing::info!("finished, but the claim was no longer ours: result dropped");
                    Finished::Stale
                }
                Err(StoreError::Rejected(why)) => {
                    // Output Postgres cannot store (a NUL character in the
                    // result or its URI): settle the job now, in this
                    // attempt, rather than leave it to the heartbeat timeout
                    // and run the handler again.
                    let failure = JobFailure::permanent(
                        "UNSTORABLE_RESULT",
                        format!("the handler's result cannot be stored: {why}"),
                    );
                    self.settle_failure(&claim, failure).await
                }
                Err(e) => {
                    // The claim will time out and the job run again: at
                    // least once, never completed twice.
                    tracing::error!(error = %e, "could not record the completion");
                    Finished::Stale
                }
            },
            Err(failure) => self.settle_failure(&claim, failure).await,
        }
    }

    async fn settle_failure(&self, claim: &Claim, failure: JobFailure) -> Finished {
        tracing::info!(code = %failure.code, kind = ?failure.kind, message = %truncate(&failure.message, 500), "attempt failed");
        match self.store.fail(claim, &failure).await {
            Ok(Settled::Applied(FailOutcome::Retrying(job))) => {
                Finished::Retrying((job.run_after - self.store.now()).to_std().unwrap_or_default())
            }
            Ok(Settled::Applied(FailOutcome::Failed(_))) => Finished::Failed,
            Ok(Settled::Stale) => Finished::Stale,
            Err(e) => {
                tracing::error!(error = %e, "could not record the failure");
                Finished::Stale
            }
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn panic_message(join: tokio::task::JoinError) -> String {
    let payload = join.into_panic();
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("handler panicked: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("handler panicked: {s}")
    } else {
        "handler panicked".to_owned()
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
