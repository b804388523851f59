//! LISTEN sessions: one direct connection per channel (a transaction-mode
//! pooler cannot carry LISTEN), kept open and reconnected with backoff, that
//! wake whoever waits on its [`Wake`]. The `postgres` adapter's consumers
//! wait on their queue's channel; the outbox relay (`relay::listen`) on
//! `jobline_outbox`, which the SQL API's `enqueue_job` notifies on commit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use tokio::sync::Notify;
use tokio_postgres::AsyncMessage;

use crate::store::StoreError;
use crate::store::pool::{PoolOptions, connect_params};

/// The `application_name` of jobline's LISTEN sessions.
pub const LISTEN_APPLICATION: &str = "jobline-listen";

/// Wake-ups: a counter (so a consumer can tell whether one came since it
/// looked) and the waiters to wake.
#[derive(Debug, Default)]
pub(crate) struct Wake {
    count: AtomicU64,
    notify: Notify,
}

impl Wake {
    pub(crate) fn seen(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }

    fn wake(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Waits for a wake-up after `since` (a `seen`), or `timeout`: returns
    /// at once when one came in between, so a wake-up between a look and
    /// the wait is never missed.
    pub(crate) async fn wait(&self, since: u64, timeout: Duration) {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        // Registered before the check: a wake-up from here on wakes us.
        notified.as_mut().enable();
        if self.seen() != since {
            return;
        }
        let _ = tokio::time::timeout(timeout, notified).await;
    }
}

/// Keeps a LISTEN session open, reconnecting with backoff, and wakes
/// waiting consumers on every notification (and once a new session
/// listens, in case one was missed meanwhile).
pub(crate) async fn listen_forever(url: String, channel: String, wake: Arc<Wake>) {
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
