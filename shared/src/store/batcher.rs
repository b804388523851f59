//! Hot writes share statements. A busy worker finishes many jobs at once and
//! a busy API marks many outbox rows sent (and, with the `postgres` adapter,
//! sends many NOTIFYs) at once; one statement and one commit each made the
//! database's CPU the limit. So such a write is handed
//! to one task per store and kind, which gathers whatever is waiting (up to
//! `MAX_BATCH`) and applies it with one statement. Nothing waits on a timer:
//! a lone write runs at once, and writes arriving while a statement runs
//! ride in the next one (`IN_FLIGHT` statements at most).
//!
//! Each [`Batched`] kind decides what one statement does with many items and
//! answers for each (a completion is still fenced by its own claim); if the
//! shared statement fails, each item is tried alone, so one bad item cannot
//! fail the others — unless the database is unavailable: then the batch is
//! tried once more as a whole, and if it fails again every item gets that
//! answer at once. At most [`BACKLOG`] items wait per kind.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use serde_json::Value;
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::{ClaimToken, Settled, Store, StoreError};
use crate::domain::Job;

/// Every kind of shared write of one store (see [`Store`]'s clones).
#[derive(Debug, Default)]
pub(crate) struct Batchers {
    pub complete: Batcher<Complete>,
    pub mark_published: Batcher<MarkPublished>,
    pub notify: Batcher<Notify>,
}

/// Items per statement at most.
const MAX_BATCH: usize = 128;
/// Statements running at once per store and kind.
const IN_FLIGHT: usize = 2;
/// Items waiting per store and kind at most; a caller beyond it waits for
/// room (backpressure) instead of growing the queue without bound.
pub(crate) const BACKLOG: usize = 4 * 1024;

/// A write that many callers can share one statement for.
pub(crate) trait Batched: Send + Sync + 'static {
    type Item: Send + 'static;
    type Answer: Send + 'static;
    /// What the statement is called in logs.
    const NAME: &'static str;
    /// One statement for all `items`, answering in input order.
    fn apply(
        store: &Store,
        items: &[Self::Item],
    ) -> impl Future<Output = Result<Vec<Self::Answer>, StoreError>> + Send;
}

type Answer<B> = Result<<B as Batched>::Answer, StoreError>;
type Request<B> = (<B as Batched>::Item, oneshot::Sender<Answer<B>>);

/// One kind's queue; the task behind it starts with the first item and ends
/// when the last clone of the store is dropped.
pub(crate) struct Batcher<B: Batched> {
    queue: OnceLock<mpsc::Sender<Request<B>>>,
}

impl<B: Batched> Default for Batcher<B> {
    fn default() -> Self {
        Self {
            queue: OnceLock::new(),
        }
    }
}

impl<B: Batched> std::fmt::Debug for Batcher<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").field("kind", &B::NAME).finish()
    }
}

impl<B: Batched> Batcher<B> {
    pub(crate) async fn run(&self, store: &Store, item: B::Item) -> Answer<B> {
        let queue = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::channel(BACKLOG);
            // The task holds a store without these batchers, so dropping the
            // last user of this one closes the queue and ends the task.
            tokio::spawn(serve::<B>(store.detached(), rx));
            tx
        });
        let (reply, answer) = oneshot::channel();
        if let Err(mpsc::error::SendError((item, _))) = queue.send((item, reply)).await {
            // The task is gone (its runtime shut down): apply directly.
            return alone::<B>(store, item).await;
        }
        answer.await.unwrap_or_else(|_| {
            Err(StoreError::Unavailable(format!(
                "the {} task stopped before answering",
                B::NAME
            )))
        })
    }
}

async fn serve<B: Batched>(store: Store, mut queue: mpsc::Receiver<Request<B>>) {
    let gate = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = queue.recv().await {
        // Wait for a free statement slot first: items that arrive meanwhile
        // join this batch.
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
            apply::<B>(&store, batch).await;
            drop(permit);
        });
    }
}

async fn apply<B: Batched>(store: &Store, batch: Vec<Request<B>>) {
    let (items, replies): (Vec<B::Item>, Vec<oneshot::Sender<Answer<B>>>) = batch.into_iter().unzip();
    let mut result = B::apply(store, &items).await;
    // Out of reach: one connection may have dropped, so the batch is tried
    // once more as a whole (on another connection); if the database is
    // still unavailable, every item alone would fail the same way, each
    // holding a pool slot for the pool's timeout: all get the answer now.
    if items.len() > 1
        && let Err(StoreError::Unavailable(first)) = &result
    {
        let first = first.clone();
        result = B::apply(store, &items).await;
        if let Err(StoreError::Unavailable(why)) = &result {
            tracing::warn!(error = %why, first = %first, count = items.len(), statement = B::NAME, "a shared statement failed twice: the database is unavailable");
            for reply in replies {
                let _ = reply.send(Err(StoreError::Unavailable(why.clone())));
            }
            return;
        }
    }
    match result {
        Ok(answers) => {
            for (reply, answer) in replies.into_iter().zip(answers) {
                let _ = reply.send(Ok(answer));
            }
        }
        Err(e) if items.len() == 1 => {
            if let Some(reply) = replies.into_iter().next() {
                let _ = reply.send(Err(e));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, count = items.len(), statement = B::NAME, "a shared statement failed; applying each item alone");
            for (item, reply) in items.into_iter().zip(replies) {
                let _ = reply.send(alone::<B>(store, item).await);
            }
        }
    }
}

async fn alone<B: Batched>(store: &Store, item: B::Item) -> Answer<B> {
    let mut answers = B::apply(store, std::slice::from_ref(&item)).await?;
    answers
        .pop()
        .ok_or_else(|| StoreError::Unavailable(format!("{} answered nothing for one item", B::NAME)))
}

/// One job's completion, through its claim.
#[derive(Debug, Clone)]
pub struct Completion {
    pub token: ClaimToken,
    pub result: Option<Value>,
    pub result_uri: Option<String>,
    /// The worker that ran it (the `completed` event's actor).
    pub worker: String,
}

/// Completions: `complete_many`.
pub(crate) struct Complete;

impl Batched for Complete {
    type Item = Completion;
    type Answer = Settled<Job>;
    const NAME: &'static str = "complete_many";
    fn apply(
        store: &Store,
        items: &[Completion],
    ) -> impl Future<Output = Result<Vec<Settled<Job>>, StoreError>> + Send {
        store.complete_many(items)
    }
}

/// Outbox rows published by one caller: `mark_published`.
#[derive(Debug, Clone)]
pub(crate) struct Published {
    pub outbox_ids: Vec<i64>,
    pub actor: String,
}

/// Marking outbox rows sent: `mark_published_many`.
pub(crate) struct MarkPublished;

impl Batched for MarkPublished {
    type Item = Published;
    /// Rows this caller's ids marked.
    type Answer = u64;
    const NAME: &'static str = "mark_published";
    fn apply(
        store: &Store,
        items: &[Published],
    ) -> impl Future<Output = Result<Vec<u64>, StoreError>> + Send {
        store.mark_published_many(items)
    }
}

/// Wake-ups of the `postgres` queue adapter's listeners: `notify`, one
/// `NOTIFY` per channel for everyone waiting.
pub(crate) struct Notify;

impl Batched for Notify {
    /// The channel.
    type Item = String;
    type Answer = ();
    const NAME: &'static str = "notify";
    fn apply(store: &Store, items: &[String]) -> impl Future<Output = Result<Vec<()>, StoreError>> + Send {
        store.notify_many(items)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::store::StoreSettings;
    use crate::store::pool::{self, PoolOptions};

    /// Statements that stall until the test opens the gate: a database
    /// that stopped answering.
    static OPEN: Semaphore = Semaphore::const_new(0);
    static APPLIED: AtomicUsize = AtomicUsize::new(0);

    struct Stalled;

    impl Batched for Stalled {
        type Item = ();
        type Answer = ();
        const NAME: &'static str = "stalled";
        async fn apply(_store: &Store, items: &[()]) -> Result<Vec<()>, StoreError> {
            OPEN.acquire().await.expect("gate").forget();
            APPLIED.fetch_add(items.len(), Ordering::SeqCst);
            Ok(vec![(); items.len()])
        }
    }

    #[tokio::test]
    async fn callers_beyond_the_backlog_wait_for_room_instead_of_queueing_without_bound() {
        // The pool is never used (the kind does not touch the database), and
        // connects lazily.
        let pool = pool::build(&PoolOptions::new("postgres://nobody@127.0.0.1:1/none", 1)).expect("pool");
        let store = Store::new(pool, StoreSettings::default());
        let batcher = Arc::new(Batcher::<Stalled>::default());

        // Two statements take up to MAX_BATCH each and stall; BACKLOG more
        // fill the queue; the callers after that must be waiting to enqueue.
        let taken = IN_FLIGHT * MAX_BATCH;
        let extra = 50;
        let mut calls = Vec::new();
        for _ in 0..taken + BACKLOG + extra {
            let (b, s) = (batcher.clone(), store.clone());
            calls.push(tokio::spawn(async move { b.run(&s, ()).await }));
        }
        let queue = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Some(q) = batcher.queue.get()
                    && q.capacity() == 0
                {
                    break q.clone();
                }
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the queue fills up");
        // Full: nothing more is accepted until a statement finishes.
        assert_eq!(queue.capacity(), 0);
        let (reply, _) = oneshot::channel();
        assert!(
            matches!(
                queue.try_send(((), reply)),
                Err(mpsc::error::TrySendError::Full(_))
            ),
            "the queue is bounded at BACKLOG"
        );
        assert_eq!(APPLIED.load(Ordering::SeqCst), 0);

        // The database answers again: every caller, the waiting ones too, is
        // answered.
        OPEN.add_permits(1_000_000);
        let all = tokio::time::timeout(Duration::from_secs(30), futures::future::join_all(calls))
            .await
            .expect("answered");
        assert!(all.into_iter().all(|r| matches!(r, Ok(Ok(())))));
        assert_eq!(APPLIED.load(Ordering::SeqCst), taken + BACKLOG + extra);
    }
}
