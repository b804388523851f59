//! The outbox relay: publishes the outbox rows nobody published (the queue
//! was down at commit, the creator died after commit, a delayed job became
//! due, a job was released or retried). Run by the sweeper and by
//! `jobline outbox relay`; safe to run in several processes at once.

use std::time::Duration;

use serde::Serialize;

use super::{OutboxItem, Publisher};
use crate::store::{Store, StoreError};

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
