//! Completions share statements. A busy worker finishes many jobs at once;
//! completing each with its own statement and commit made the database's
//! CPU the drain's limit. So `Store::complete` hands its completion to one
//! task per store, which gathers whatever is waiting (up to `MAX_BATCH`) and
//! applies it with one `complete_many` statement, every row still fenced by
//! its own claim. Nothing waits on a timer: a lone completion runs at once,
//! and completions arriving while a statement runs ride in the next one
//! (`IN_FLIGHT` statements at most).
//!
//! If a batch's statement fails, each completion is tried alone, so one bad
//! row cannot fail the others.

use std::sync::{Arc, OnceLock};

use serde_json::Value;
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::{ClaimToken, Settled, Store, StoreError};
use crate::domain::Job;

/// Completions per statement at most.
const MAX_BATCH: usize = 128;
/// Statements running at once per store.
const IN_FLIGHT: usize = 2;

/// One job's completion, through its claim.
#[derive(Debug, Clone)]
pub struct Completion {
    pub token: ClaimToken,
    pub result: Option<Value>,
    pub result_uri: Option<String>,
    /// The worker that ran it (the `completed` event's actor).
    pub worker: String,
}

type Answer = Result<Settled<Job>, StoreError>;
type Request = (Completion, oneshot::Sender<Answer>);

/// The store's completion queue; the task behind it starts with the first
/// completion and ends when the last clone of the store is dropped.
#[derive(Debug, Default)]
pub(crate) struct Completer {
    queue: OnceLock<mpsc::UnboundedSender<Request>>,
}

impl Completer {
    pub(crate) async fn complete(&self, store: &Store, completion: Completion) -> Answer {
        let queue = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            // The task holds a store without this completer, so dropping the
            // last user of this one closes the queue and ends the task.
            tokio::spawn(run(store.detached(), rx));
            tx
        });
        let (reply, answer) = oneshot::channel();
        if let Err(mpsc::error::SendError((completion, _))) = queue.send((completion, reply)) {
            // The task is gone (its runtime shut down): complete directly.
            return single(store, completion).await;
        }
        answer.await.unwrap_or_else(|_| {
            Err(StoreError::Unavailable(
                "the completion task stopped before answering".into(),
            ))
        })
    }
}

async fn run(store: Store, mut queue: mpsc::UnboundedReceiver<Request>) {
    let gate = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = queue.recv().await {
        // Wait for a free statement slot first: completions that arrive
        // meanwhile join this batch.
        let Ok(permit) = gate.clone().acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let store = store.clone();
        tokio::spawn(async move {
            apply(&store, batch).await;
            drop(permit);
        });
    }
}

async fn apply(store: &Store, batch: Vec<Request>) {
    let (completions, replies): (Vec<Completion>, Vec<oneshot::Sender<Answer>>) = batch.into_iter().unzip();
    match store.complete_many(&completions).await {
        Ok(answers) => {
            for (reply, answer) in replies.into_iter().zip(answers) {
                let _ = reply.send(Ok(answer));
            }
        }
        Err(e) if completions.len() == 1 => {
            if let Some(reply) = replies.into_iter().next() {
                let _ = reply.send(Err(e));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, count = completions.len(), "a batch of completions failed; completing each alone");
            for (completion, reply) in completions.into_iter().zip(replies) {
                let _ = reply.send(single(store, completion).await);
            }
        }
    }
}

async fn single(store: &Store, completion: Completion) -> Answer {
    let mut answers = store.complete_many(std::slice::from_ref(&completion)).await?;
    Ok(answers.pop().unwrap_or(Settled::Stale))
}
