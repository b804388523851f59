//! Publishing after commit: the creator publishes at once and marks the
//! outbox rows sent; if the queue fails, the rows stay for the relay (with
//! backoff, then the dead letter). The request that created the jobs succeeds
//! either way: the jobs are durable.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Message, Outgoing, Queue};
use crate::store::{Created, Requeued, Store};

/// An outbox row to publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxItem {
    pub outbox_id: i64,
    pub job_id: Uuid,
    pub run_after: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishOutcome {
    pub published: usize,
    /// Delayed past what the broker can hold: the relay publishes them when due.
    pub deferred: usize,
    pub failed: usize,
}

#[derive(Debug, Clone)]
pub struct Publisher {
    store: Store,
    queue: Arc<dyn Queue>,
    actor: String,
}

impl Publisher {
    pub fn new(store: Store, queue: Arc<dyn Queue>, actor: impl Into<String>) -> Self {
        Self {
            store,
            queue,
            actor: actor.into(),
        }
    }

    pub fn queue(&self) -> &Arc<dyn Queue> {
        &self.queue
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Publishes what a create wrote, after its commit (a job that already
    /// existed for its idempotency key has no new outbox row).
    pub async fn publish_created(&self, created: &[Created]) -> PublishOutcome {
        let items: Vec<OutboxItem> = created
            .iter()
            .filter_map(|c| {
                c.outbox_id.map(|outbox_id| OutboxItem {
                    outbox_id,
                    job_id: c.job.id,
                    run_after: c.job.run_after,
                })
            })
            .collect();
        self.publish(&items).await
    }

    /// Publishes a job an operator retry put back to pending.
    pub async fn publish_requeued(&self, requeued: &Requeued) -> PublishOutcome {
        self.publish(&[OutboxItem {
            outbox_id: requeued.outbox_id,
            job_id: requeued.job.id,
            run_after: requeued.job.run_after,
        }])
        .await
    }

    /// Publishes the items the broker can take now; never fails the caller.
    pub async fn publish(&self, items: &[OutboxItem]) -> PublishOutcome {
        let now = self.store.now();
        let max_delay = chrono::Duration::from_std(self.queue.max_delay()).unwrap_or_default();
        let (now_items, later): (Vec<&OutboxItem>, Vec<&OutboxItem>) =
            items.iter().partition(|i| i.run_after <= now + max_delay);
        let mut outcome = PublishOutcome {
            deferred: later.len(),
            ..PublishOutcome::default()
        };
        if now_items.is_empty() {
            return outcome;
        }
        let outgoing: Vec<Outgoing> = now_items
            .iter()
            .map(|i| Outgoing {
                message: Message::new(i.job_id, now),
                delay: (i.run_after - now).to_std().unwrap_or_default(),
            })
            .collect();
        let ids: Vec<i64> = now_items.iter().map(|i| i.outbox_id).collect();
        let (sent, failure) = match self.queue.publish(&outgoing).await {
            Ok(()) => (ids.len(), None),
            Err(e) => (e.sent.min(ids.len()), Some(e.error)),
        };
        let (published, unsent) = ids.split_at(sent);
        outcome.published = published.len();
        if !published.is_empty()
            && let Err(e) = self.store.mark_published(published, &self.actor).await
        {
            // The messages are out; the relay may publish them once
            // more, which consumers tolerate.
            tracing::warn!(error = %e, "published but could not mark the outbox rows sent");
        }
        if let Some(e) = failure {
            outcome.failed = unsent.len();
            tracing::warn!(error = %e, queue = self.queue.kind(), sent, failed = unsent.len(), "publish failed; the outbox relay will retry");
            if let Err(e2) = self.store.mark_publish_failed(unsent, &e.to_string()).await {
                tracing::warn!(error = %e2, "could not record the failed publish");
            }
        }
        outcome
    }
}
