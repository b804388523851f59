//! The `postgres` adapter: no broker. The jobs table is the queue: workers
//! claim straight from `jobs` with `FOR UPDATE SKIP LOCKED`; publishing is
//! one `NOTIFY` after the jobs' transaction committed (a NOTIFY inside every
//! create transaction serializes commits), and a waiting consumer wakes on it
//! (`LISTEN` on a dedicated session) or on its poll interval, whichever comes
//! first. Publishes that arrive while a NOTIFY is being sent share the next
//! one (`Store::notify`, a `store::batcher` kind): under load, one statement
//! wakes the workers for many requests.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::OnceCell;

use super::listen::{Wake, listen_forever};
use super::{Outgoing, PublishError, Queue, QueueError, Wakeups};
use crate::store::Store;

pub use super::listen::LISTEN_APPLICATION;

#[derive(Debug, Clone)]
pub struct PostgresQueue {
    store: Store,
    channel: String,
    /// A direct session for LISTEN (a transaction-mode pooler cannot carry
    /// it). `None`: consumers only poll.
    listen_url: Option<String>,
    wake: Arc<Wake>,
    listener: Arc<OnceCell<()>>,
}

impl PostgresQueue {
    pub fn new(store: Store, listen_url: Option<String>) -> Self {
        let channel = Self::channel_for(&store.settings().queue_name);
        Self {
            store,
            channel,
            listen_url,
            wake: Arc::new(Wake::default()),
            listener: Arc::new(OnceCell::new()),
        }
    }

    /// The LISTEN/NOTIFY channel of a queue.
    pub fn channel_for(queue_name: &str) -> String {
        format!("jobline_{}", queue_name.replace('-', "_"))
    }

    async fn ensure_listener(&self) {
        let Some(url) = self.listen_url.clone() else {
            return;
        };
        let channel = self.channel.clone();
        let wake = self.wake.clone();
        self.listener
            .get_or_init(|| async move {
                tokio::spawn(listen_forever(url, channel, wake));
            })
            .await;
    }
}

#[async_trait]
impl Queue for PostgresQueue {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn max_delay(&self) -> Duration {
        // Workers find due jobs themselves; nothing is held back by a broker.
        Duration::ZERO
    }

    async fn publish(&self, messages: &[Outgoing]) -> Result<(), PublishError> {
        if messages.is_empty() {
            return Ok(());
        }
        self.store
            .notify(&self.channel)
            .await
            .map_err(|e| QueueError::Unavailable(e.to_string()).into())
    }

    async fn check(&self) -> Result<(), QueueError> {
        self.store
            .ping()
            .await
            .map_err(|e| QueueError::Unavailable(e.to_string()))
    }
}

#[async_trait]
impl Wakeups for PostgresQueue {
    fn mark(&self) -> u64 {
        self.wake.seen()
    }

    /// Waits for a NOTIFY on the channel after `since` (a `mark`), or
    /// `timeout`: returns at once when one came in
    /// between, so a wake-up between a consumer's empty claim and its wait
    /// is never missed.
    async fn wait(&self, since: u64, timeout: Duration) {
        self.ensure_listener().await;
        self.wake.wait(since, timeout).await;
    }
}
