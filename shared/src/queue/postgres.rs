//! The `postgres` adapter: no broker. The jobs table is the queue: workers
//! claim straight from `jobs` with `FOR UPDATE SKIP LOCKED`; publishing is
//! one `NOTIFY` after the jobs' transaction committed (a NOTIFY inside every
//! create transaction serializes commits), and a waiting consumer wakes on it
//! (`LISTEN` on a dedicated session) or on its poll interval, whichever comes
//! first. Publishes that arrive while a NOTIFY is being sent share the next
//! one (`Store::notify`, a `store::batcher` kind): under load, one statement
//! wakes the workers for many requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt as _;
use tokio::sync::{Notify, OnceCell};
use tokio_postgres::AsyncMessage;

use super::{Outgoing, PublishError, Queue, QueueError, Wakeups};
use crate::store::Store;
use crate::store::StoreError;
use crate::store::pool::{PoolOptions, connect_params};

/// The `application_name` of the adapter's LISTEN sessions.
pub const LISTEN_APPLICATION: &str = "jobline-listen";

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

/// Wake-ups: a counter (so a consumer can tell whether one came since it
/// looked) and the waiters to wake.
#[derive(Debug, Default)]
struct Wake {
    count: AtomicU64,
    notify: Notify,
}

impl Wake {
    fn seen(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }

    fn wake(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
        self.notify.notify_waiters();
    }
}

/// Keeps a LISTEN session open, reconnecting with backoff, and wakes
/// waiting consumers on every notification (and once a new session
/// listens, in case one was missed meanwhile).
async fn listen_forever(url: String, channel: String, wake: Arc<Wake>) {
    let mut backoff = Duration::from_millis(200);
    loop {
        match listen_once(&url, &channel, &wake).await {
            Ok(()) => backoff = Duration::from_millis(200),
            Err(e) => tracing::warn!(error = %e, "LISTEN session lost; reconnecting"),
        }
        // No wake-up here: a new session wakes consumers once it listens
        // (`listen_once`), so a database that is down does not wake them on
        // every failed reconnect.
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// Why a LISTEN session ended.
#[derive(Debug, thiserror::Error)]
enum ListenError {
    #[error(transparent)]
    Setup(StoreError),
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
}

async fn listen_once(url: &str, channel: &str, wake: &Wake) -> Result<(), ListenError> {
    let (mut config, tls) = connect_params(&PoolOptions::new(url, 1)).map_err(ListenError::Setup)?;
    // Named, so operators (and the drill) can tell jobline's listeners apart.
    config.application_name(LISTEN_APPLICATION);
    let (client, mut connection) = config.connect(tls).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut stream = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = stream.next().await {
            match message {
                Ok(AsyncMessage::Notification(_)) => {
                    if tx.send(()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    });
    client.batch_execute(&format!("LISTEN \"{channel}\"")).await?;
    wake.wake();
    while rx.recv().await.is_some() {
        wake.wake();
    }
    match driver.await {
        Ok(result) => Ok(result?),
        Err(_) => Ok(()),
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
        let notified = self.wake.notify.notified();
        tokio::pin!(notified);
        // Registered before the check: a wake-up from here on wakes us.
        notified.as_mut().enable();
        if self.wake.seen() != since {
            return;
        }
        let _ = tokio::time::timeout(timeout, notified).await;
    }
}
