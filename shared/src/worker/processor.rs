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

impl Disposition {
    /// What to tell the broker once an attempt ended: a retry brings the
    /// message back after its backoff; anything else deletes it.
    pub fn after(finished: Finished) -> Self {
        match finished {
            Finished::Retrying(delay) => Disposition::Retry(delay),
            _ => Disposition::Ack,
        }
    }
}

/// What taking a delivery came to.
#[derive(Debug)]
pub enum Taken {
    /// Its job is claimed: run it ([`Processor::run_taken`]).
    Run(Box<Claim>),
    /// Nothing to run: tell the broker this now.
    Answer(Disposition),
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

    /// How long a claim may wait unstarted (in a local queue, for a slot):
    /// one heartbeat interval, since nothing renews it meanwhile. Past it,
    /// it is handed back ([`Self::hand_back`]).
    pub fn max_claim_wait(&self) -> Duration {
        self.heartbeat_interval
    }

    /// Gives claims this worker never started back to pending, their
    /// attempt unspent ([`Store::hand_back`]); `republish` when no message
    /// of theirs goes back to a broker (the claim feed). When that fails they
    /// time out as stale, a spent attempt, and run again.
    pub async fn hand_back(&self, claims: &[crate::store::ClaimToken], republish: bool, why: &str) {
        if claims.is_empty() {
            return;
        }
        match self.store.hand_back(&self.worker, claims, republish).await {
            Ok(n) => tracing::info!(handed_back = n, why, "claims never started went back to pending"),
            Err(e) => {
                tracing::warn!(error = %e, claims = claims.len(), why, "could not hand claims back; they will be released as stale")
            }
        }
    }

    /// Handles one queue message from claim to ack; says how the job's
    /// attempt ended when this delivery ran one.
    pub async fn handle_delivery(&self, delivery: &Delivery) -> (Disposition, Option<Finished>) {
        self.handle_delivery_until(delivery, None).await
    }

    /// [`Self::handle_delivery`] within an invocation that ends at
    /// `deadline` (a Lambda's): see [`Self::take_until`] and
    /// [`Self::run_taken`].
    pub async fn handle_delivery_until(
        &self,
        delivery: &Delivery,
        deadline: Option<tokio::time::Instant>,
    ) -> (Disposition, Option<Finished>) {
        let taken = self.take_until(std::slice::from_ref(delivery), deadline).await;
        match taken.into_iter().next() {
            Some(Taken::Run(claim)) => {
                self.run_taken(*claim, tokio::time::Instant::now(), deadline)
                    .await
            }
            Some(Taken::Answer(disposition)) => (disposition, None),
            None => (Disposition::Ack, None),
        }
    }

    /// Claims the jobs of messages received together in one statement
    /// ([`Store::claim_by_ids`]); says for each, in order, whether there is
    /// a job to run or what to tell the broker now. Within an invocation
    /// that ends at `deadline`, a job whose handler's timeout would not end
    /// [`DEADLINE_MARGIN`] before it is not claimed: its message comes back
    /// at once (`Retry(0)`) for an invocation with time, no attempt spent.
    pub async fn take_until(
        &self,
        deliveries: &[Delivery],
        deadline: Option<tokio::time::Instant>,
    ) -> Vec<Taken> {
        // With a deadline, only the types whose handlers can finish in time.
        let fitting: Option<Vec<String>> = deadline.map(|d| self.types_fitting(d));
        let types = fitting.as_deref().or(self.types.as_deref());
        let ids: Vec<uuid::Uuid> = deliveries
            .iter()
            .filter_map(|d| d.message.map(|m| m.job_id))
            .collect();
        let claimed = self.store.claim_by_ids(&self.worker, &ids, types).await;
        let mut outcomes = match claimed {
            Ok(outcomes) => outcomes.into_iter().map(Ok).collect::<Vec<_>>().into_iter(),
            Err(e) => {
                tracing::warn!(error = %e, messages = ids.len(), "could not claim; the messages come back later");
                vec![Err(()); ids.len()].into_iter()
            }
        };
        deliveries
            .iter()
            .map(|delivery| {
                let Some(message) = delivery.message else {
                    tracing::warn!(raw = %truncate(&delivery.raw, 200), "dropping a message that is not a job message");
                    return Taken::Answer(Disposition::Ack);
                };
                let span = tracing::info_span!("delivery", job_id = %message.job_id, receive_count = delivery.receive_count);
                let _entered = span.enter();
                match outcomes.next() {
                    Some(Ok(outcome)) => self.taken(outcome, fitting.is_some()),
                    _ => Taken::Answer(Disposition::Retry(Duration::from_secs(5))),
                }
            })
            .collect()
    }

    /// The served types whose handlers' timeouts end [`DEADLINE_MARGIN`]
    /// before `deadline`.
    fn types_fitting(&self, deadline: tokio::time::Instant) -> Vec<String> {
        let left = deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .saturating_sub(DEADLINE_MARGIN);
        self.served_types()
            .into_iter()
            .filter(|t| self.registry.get(t).is_some_and(|h| h.timeout() <= left))
            .collect()
    }

    /// What one claim-by-id outcome means for its message.
    fn taken(&self, outcome: ClaimByIdOutcome, fitted: bool) -> Taken {
        let answer = match outcome {
            ClaimByIdOutcome::Claimed(claim) => return Taken::Run(claim),
            ClaimByIdOutcome::Unread => Disposition::Retry(Duration::from_secs(5)),
            ClaimByIdOutcome::NotDue(at) => {
                let wait = (at - self.store.now()).to_std().unwrap_or_default();
                tracing::debug!(?wait, "not due yet: delaying the message");
                Disposition::Retry(wait)
            }
            ClaimByIdOutcome::OtherType(job_type) if fitted && self.serves(&job_type) => {
                tracing::info!(%job_type, "not enough time left in this invocation: the message comes back");
                Disposition::Retry(Duration::ZERO)
            }
            ClaimByIdOutcome::OtherType(job_type) => match self.others {
                OtherTypes::GiveBack => {
                    tracing::debug!(%job_type, "not a type of this worker: giving the message back");
                    Disposition::Retry(OTHER_TYPE_DELAY)
                }
                OtherTypes::Drop => {
                    tracing::debug!(%job_type, "a type workers claim from Postgres: dropping the message");
                    Disposition::Ack
                }
            },
            other => {
                tracing::debug!(outcome = ?other, "not claimable: dropping the message");
                Disposition::Ack
            }
        };
        Taken::Answer(answer)
    }

    /// Runs a job [`Self::take_until`] claimed at `claimed_at`, to its end
    /// or until shortly before `deadline` (a job still running
    /// [`RELEASE_BEFORE_DEADLINE`] before it is stopped and failed as
    /// `DEADLINE`, retryable, rather than left to the heartbeat timeout when
    /// the invocation is frozen). A job that waited for a slot so long that
    /// its handler no longer fits before the deadline is handed back
    /// unstarted, its attempt unspent, and its message comes back at once;
    /// so is one that waited a heartbeat interval (its claim is not renewed
    /// while it waits).
    pub async fn run_taken(
        &self,
        claim: Claim,
        claimed_at: tokio::time::Instant,
        deadline: Option<tokio::time::Instant>,
    ) -> (Disposition, Option<Finished>) {
        let no_time = deadline.is_some_and(|d| {
            !self.types_fitting(d).contains(&claim.job.job_type)
                && self.registry.get(&claim.job.job_type).is_some()
        });
        // Unrenewed while it waited: past an interval, the heartbeat
        // timeout comes closer than this job should run to.
        let waited_too_long = claimed_at.elapsed() >= self.max_claim_wait();
        if no_time || waited_too_long {
            let why = if no_time {
                "no time left in the invocation"
            } else {
                "waited for a slot"
            };
            // Its record comes back (Retry): no second wake-up.
            self.hand_back(&[claim.token()], false, why).await;
            return (Disposition::Retry(Duration::ZERO), None);
        }
        let finished = self.run_claim_at(claim, claimed_at, deadline).await;
        (Disposition::after(finished), Some(finished))
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
        self.run_claim_at(claim, tokio::time::Instant::now(), deadline)
            .await
    }

    async fn run_claim_at(
        &self,
        claim: Claim,
        claimed_at: tokio::time::Instant,
        deadline: Option<tokio::time::Instant>,
    ) -> Finished {
        let span = job_span(&claim);
        async {
            let executed = self.execute_inner(claim, claimed_at, deadline).await;
            self.settle_inner(executed).await
        }
        .instrument(span)
        .await
    }

    /// Runs the handler of a job claimed at `claimed_at` (it may have
    /// waited in a local queue since: the first heartbeat is due one
    /// interval after the claim) and says how it ended, without recording
    /// it: [`Self::settle`] does. A worker frees the job's slot between the
    /// two, so completions wait for their shared statement without holding
    /// a slot.
    pub async fn execute(&self, claim: Claim, claimed_at: tokio::time::Instant) -> Executed {
        let span = job_span(&claim);
        self.execute_inner(claim, claimed_at, None).instrument(span).await
    }

    /// Records how an [`Executed`] attempt ended (completed, retrying,
    /// failed; nothing when the claim was abandoned).
    pub async fn settle(&self, executed: Executed) -> Finished {
        let span = job_span(&executed.claim);
        self.settle_inner(executed).instrument(span).await
    }

    async fn execute_inner(
        &self,
        claim: Claim,
        claimed_at: tokio::time::Instant,
        deadline: Option<tokio::time::Instant>,
    ) -> Executed {
        let Some(handler) = self.registry.get(&claim.job.job_type) else {
            let failure = JobFailure::permanent(
                "NO_HANDLER",
                format!("no handler is registered for job type {:?}", claim.job.job_type),
            );
            return Executed::failed(claim, failure);
        };
        let (progress_tx, progress_rx) = watch::channel(Progress::default());
        let (stop_tx, stop_rx) = watch::channel(false);
        let ctx = JobContext::new(claim.job.clone(), progress_tx, stop_rx);
        let timeout = handler.timeout();
        let mut task = tokio::spawn(async move { tokio::time::timeout(timeout, handler.run(ctx)).await });

        let mut beat =
            tokio::time::interval_at(claimed_at + self.heartbeat_interval, self.heartbeat_interval);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
                    return Executed::failed(claim, failure);
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
            None => return Executed { claim, outcome: None },
            Some(Err(join)) if join.is_panic() => Err(JobFailure::retryable("PANIC", panic_message(join))),
            Some(Err(_)) => Err(JobFailure::retryable("ABORTED", "the handler task was aborted")),
            Some(Ok(Err(_elapsed))) => Err(JobFailure::retryable(
                "TIMEOUT",
                format!("the attempt took longer than {timeout:?}"),
            )),
            Some(Ok(Ok(Err(e)))) => Err(HandlerError::into_failure(e)),
            Some(Ok(Ok(Ok(output)))) => Ok(output),
        };
        Executed {
            claim,
            outcome: Some(outcome),
        }
    }

    async fn settle_inner(&self, executed: Executed) -> Finished {
        let Executed { claim, outcome } = executed;
        let Some(outcome) = outcome else {
            return Finished::Stale;
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
        // The log has the handler's message; Sentry (`telemetry::REPORT`) only
        // the code, kind, type and ids: a message may quote what the job was
        // given (a webhook's URL and its token, a response body).
        tracing::info!(code = %failure.code, kind = ?failure.kind, reason = %truncate(&failure.message, 500), "attempt failed");
        tracing::warn!(
            target: crate::telemetry::REPORT,
            code = %failure.code,
            kind = ?failure.kind,
            job_type = %claim.job.job_type,
            job = %claim.job.id,
            attempt = claim.job.attempts,
            "a handler's attempt failed"
        );
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

/// An attempt whose handler ended, not yet recorded ([`Processor::execute`]).
#[derive(Debug)]
pub struct Executed {
    claim: Claim,
    /// `None`: abandoned (the claim ended under a handler that did not
    /// stop); nothing is recorded.
    outcome: Option<Result<super::handler::HandlerOutput, JobFailure>>,
}

impl Executed {
    fn failed(claim: Claim, failure: JobFailure) -> Self {
        Self {
            claim,
            outcome: Some(Err(failure)),
        }
    }
}

fn job_span(claim: &Claim) -> tracing::Span {
    tracing::info_span!(
        "job",
        job_id = %claim.job.id,
        job_type = %claim.job.job_type,
        attempt = claim.job.attempts
    )
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
