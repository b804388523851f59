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

/// Of an invocation with a deadline (a Lambda's), how much a job must leave
/// unused: a job starts only when its handler's timeout ends this long
/// before the deadline, time to record the outcome and answer.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(5);

/// How long before the deadline a job still running is released (failed as
/// `DEADLINE`, retryable): the handler outlived its own timeout (blocking
/// code does), and the invocation is about to be frozen. What is left is for
/// recording that failure, returning the record and answering.
pub const RELEASE_BEFORE_DEADLINE: Duration = Duration::from_secs(4);

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
    /// What becomes of a message for a type this processor does not take.
    others: OtherTypes,
}

/// What a consumer does with a message for a job of a type it does not take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OtherTypes {
    /// Back to the broker, soon, for a consumer of that type on the same
    /// queue (edge workers that share a queue).
    #[default]
    GiveBack,
    /// Delete it: its type is served by workers that claim from Postgres
    /// (the SQS Lambda's edge-worker types); handing it back would only
    /// spend the message's receives until it reached the dead-letter queue.
    Drop,
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
            others: OtherTypes::GiveBack,
        }
    }

    /// What to do with a message for a type this processor does not take.
    pub fn with_other_types(mut self, others: OtherTypes) -> Self {
        self.others = others;
        self
    }

    /// The types this processor claims from deliveries: the ones it was
    /// given, else every registered type.
    pub fn served_types(&self) -> Vec<String> {
        match &self.types {
            Some(t) => t.to_vec(),
            None => self.registry.types(),
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
        self.handle_delivery_until(delivery, None).await
    }

    /// [`Self::handle_delivery`] within an invocation that ends at
    /// `deadline` (a Lambda's):
    ///
    /// - a job whose handler's timeout would not end [`DEADLINE_MARGIN`]
    ///   before the deadline is not claimed: its message comes back at once
    ///   (`Retry(0)`) for an invocation with time, and no attempt is spent;
    /// - a job still running [`RELEASE_BEFORE_DEADLINE`] before it is
    ///   stopped and failed as `DEADLINE` (retryable), rather than left to
    ///   the heartbeat timeout when the invocation is frozen.
    pub async fn handle_delivery_until(
        &self,
        delivery: &Delivery,
        deadline: Option<tokio::time::Instant>,
    ) -> (Disposition, Option<Finished>) {
        let Some(message) = delivery.message else {
            tracing::warn!(raw = %truncate(&delivery.raw, 200), "dropping a message that is not a job message");
            return (Disposition::Ack, None);
        };
        let span =
            tracing::info_span!("delivery", job_id = %message.job_id, receive_count = delivery.receive_count);
        // With a deadline, only the types whose handlers can finish in time.
        let fitting: Option<Vec<String>> = deadline.map(|d| {
            let left = d
                .saturating_duration_since(tokio::time::Instant::now())
                .saturating_sub(DEADLINE_MARGIN);
            self.served_types()
                .into_iter()
                .filter(|t| self.registry.get(t).is_some_and(|h| h.timeout() <= left))
                .collect()
        });
        let types = fitting.as_deref().or(self.types.as_deref());
        async {
            match self
                .store
                .claim_by_id_of_types(&self.worker, message.job_id, types)
                .await
            {
                Ok(ClaimByIdOutcome::Claimed(claim)) => {
                    let finished = self.run_claim_until(*claim, deadline).await;
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
                Ok(ClaimByIdOutcome::OtherType(job_type)) if fitting.is_some() && self.serves(&job_type) => {
                    tracing::info!(%job_type, "not enough time left in this invocation: the message comes back");
                    (Disposition::Retry(Duration::ZERO), None)
                }
                Ok(ClaimByIdOutcome::OtherType(job_type)) => match self.others {
                    OtherTypes::GiveBack => {
                        tracing::debug!(%job_type, "not a type of this worker: giving the message back");
                        (Disposition::Retry(OTHER_TYPE_DELAY), None)
                    }
                    OtherTypes::Drop => {
                        tracing::debug!(%job_type, "a type workers claim from Postgres: dropping the message");
                        (Disposition::Ack, None)
                    }
                },
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

    fn serves(&self, job_type: &str) -> bool {
        match &self.types {
            Some(t) => t.iter().any(|s| s == job_type),
            None => self.registry.get(job_type).is_some(),
        }
    }

    /// Runs a claimed job to its end.
    pub async fn run_claim(&self, claim: Claim) -> Finished {
        self.run_claim_until(claim, None).await
    }

    /// Runs a claimed job to its end, or until shortly before `deadline`.
    pub async fn run_claim_until(&self, claim: Claim, deadline: Option<tokio::time::Instant>) -> Finished {
        let span = tracing::info_span!(
            "job",
            job_id = %claim.job.id,
            job_type = %claim.job.job_type,
            attempt = claim.job.attempts
        );
        self.run_claim_inner(claim, deadline).instrument(span).await
    }

    async fn run_claim_inner(&self, claim: Claim, deadline: Option<tokio::time::Instant>) -> Finished {
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
        let release_at = deadline.map(|d| d.checked_sub(RELEASE_BEFORE_DEADLINE).unwrap_or(d));
        let joined = loop {
            tokio::select! {
                // Biased: a handler that finished as the release time came
                // is recorded as finished, not released and run again.
                biased;
                joined = &mut task => break Some(joined),
                () = sleep_until(release_at) => {
                    if task.is_finished() {
                        break Some((&mut task).await);
                    }
                    tracing::warn!("the invocation ends before the handler: releasing the job");
                    let _ = stop_tx.send(true);
                    task.abort();
                    let failure = JobFailure::retryable(
                        "DEADLINE",
                        "the consumer's invocation ended before the job finished",
                    );
                    return self.settle_failure(&claim, failure).await;
                }
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
