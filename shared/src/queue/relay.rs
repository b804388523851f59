//! The outbox relay: publishes the outbox rows nobody published (the queue
//! was down at commit, the creator died after commit, a delayed job became
//! due, a job was released or retried, a job was enqueued by SQL). Run by
//! the sweeper and by `jobline outbox relay`, and on every notification of
//! [`OUTBOX_CHANNEL`] by [`listen`] (in `jobline worker`, `serve` and
//! `dev`); safe to run in several processes at once.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

use super::listen::{Wake, listen_forever};
use super::{OutboxItem, Publisher};
use crate::store::{Store, StoreError};

/// The channel notified on commit by a transaction that wrote outbox rows
/// nobody will publish after it: the SQL API's `enqueue_job` (and
/// `release_stale_jobs`), migration 0010.
pub const OUTBOX_CHANNEL: &str = "jobline_outbox";

/// Rows per pass of the listening relay, and passes per notification.
const LISTEN_BATCH: u32 = 500;
const LISTEN_PASSES: u32 = 20;
/// The most one notification's relaying may take before the next look.
const LISTEN_BUDGET: Duration = Duration::from_secs(5);
/// One more pass this long after a notified one (and the first wait after
/// a failed one, doubling to 30 s).
const LISTEN_RECHECK: Duration = Duration::from_secs(1);
/// The longest the listener waits without a look at the outbox.
const LISTEN_IDLE: Duration = Duration::from_secs(60);

/// How long a relay holds the rows it took before another may retry them.
pub const RELAY_LEASE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RelayReport {
    pub leased: usize,
    pub published: usize,
    /// Still in the future for this broker: left for a later pass.
    pub deferred: usize,
    pub failed: usize,
}

/// One pass over at most `limit` due rows.
pub async fn relay_once(store: &Store, publisher: &Publisher, limit: u32) -> Result<RelayReport, StoreError> {
    let rows = store.relay_claim(limit, RELAY_LEASE).await?;
    let items: Vec<OutboxItem> = rows
        .iter()
        .map(|r| OutboxItem {
            outbox_id: r.outbox_id,
            job_id: r.job_id,
            run_after: r.run_after,
        })
        .collect();
    let outcome = publisher.publish(&items).await;
    Ok(RelayReport {
        leased: rows.len(),
        published: outcome.published,
        deferred: outcome.deferred,
        failed: outcome.failed,
    })
}

/// Passes until nothing due is left, a pass publishes nothing, `max_passes`
/// passes ran or `deadline` passed (`capped` then says more may be left).
pub async fn relay_bounded(
    store: &Store,
    publisher: &Publisher,
    batch: u32,
    max_passes: u32,
    deadline: Option<std::time::Instant>,
) -> Result<(RelayReport, bool), StoreError> {
    let mut total = RelayReport::default();
    for _ in 0..max_passes.max(1) {
        if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            return Ok((total, true));
        }
        let pass = relay_once(store, publisher, batch).await?;
        total.leased += pass.leased;
        total.published += pass.published;
        total.deferred += pass.deferred;
        total.failed += pass.failed;
        if pass.leased < batch as usize || pass.published == 0 {
            return Ok((total, false));
        }
    }
    Ok((total, true))
}

/// Passes until nothing due is left (or a pass publishes nothing): the
/// operator's `jobline outbox relay` and the drill, not the sweeper (which
/// is bounded).
pub async fn relay_all(store: &Store, publisher: &Publisher, batch: u32) -> Result<RelayReport, StoreError> {
    Ok(relay_bounded(store, publisher, batch, u32::MAX, None).await?.0)
}

/// Publishes due outbox rows as soon as a transaction that wrote some
/// commits: LISTEN on [`OUTBOX_CHANNEL`] over `listen_url` (a direct
/// session, not a pooler), a bounded relay pass on each notification (and
/// once when the session starts listening, for what came while it was
/// away), until `stop` turns true. Notifications that arrive during a pass
/// are served by one more pass, not one each. A failed pass is logged and
/// left to the next notification or the sweeper's relay, the safety net.
pub async fn listen(publisher: Publisher, listen_url: String, mut stop: watch::Receiver<bool>) {
    let store = publisher.store().clone();
    let wake = Arc::new(Wake::default());
    let session = tokio::spawn(listen_forever(
        listen_url,
        OUTBOX_CHANNEL.to_owned(),
        wake.clone(),
    ));
    let mut seen = wake.seen();
    // Another pass is due without a notification: the last was capped; it
    // followed a notification (`LISTEN_RECHECK` later: the row's time came
    // from the database's clock, and this host's may be behind it); a row
    // becomes due (a delayed job enqueued by SQL); or the last one failed
    // (backing off).
    let mut next_pass: Option<tokio::time::Instant> = None;
    let mut failures: u32 = 0;
    loop {
        let idle = next_pass.unwrap_or_else(|| tokio::time::Instant::now() + LISTEN_IDLE);
        tokio::select! {
            () = wake.wait(seen, idle.saturating_duration_since(tokio::time::Instant::now())) => {}
            _ = stop.wait_for(|stopped| *stopped) => break,
        }
        let notified = wake.seen() != seen;
        if !notified && tokio::time::Instant::now() < idle {
            continue;
        }
        seen = wake.seen();
        let deadline = std::time::Instant::now() + LISTEN_BUDGET;
        // Stopping mid-pass is safe: the rows it leased go to the next relay
        // when their lease ends (RELAY_LEASE).
        let pass = tokio::select! {
            pass = async {
                let pass = relay_bounded(&store, &publisher, LISTEN_BATCH, LISTEN_PASSES, Some(deadline)).await?;
                Ok::<_, StoreError>((pass, store.next_outbox_due().await?))
            } => pass,
            _ = stop.wait_for(|stopped| *stopped) => break,
        };
        let now = tokio::time::Instant::now();
        next_pass = match pass {
            Ok(((report, capped), next_due)) => {
                failures = 0;
                if report.leased > 0 {
                    tracing::debug!(?report, capped, "outbox relayed on notification");
                }
                let due = next_due.map(|d| now + d.max(Duration::from_millis(10)));
                let recheck = notified.then_some(now + LISTEN_RECHECK);
                [capped.then_some(now), recheck, due]
                    .into_iter()
                    .flatten()
                    .min()
                    .map(|at| at.min(now + LISTEN_IDLE))
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let backoff = LISTEN_RECHECK
                    .saturating_mul(1 << failures.min(5))
                    .min(Duration::from_secs(30));
                tracing::warn!(error = %e, retry_in = ?backoff, "relaying on notification failed; the sweeper's relay is the safety net");
                Some(now + backoff)
            }
        };
    }
    session.abort();
}
