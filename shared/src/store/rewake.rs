//! Re-waking due jobs whose message may have been lost (the sweeper's third
//! step): a fresh outbox row for the relay to publish.

use tracing::instrument;
use uuid::Uuid;

use super::{Store, StoreError, sql};

/// A job waiting behind busy consumers of its type is re-woken only after
/// this many stale-pending ages (an hour with the default 5 minutes): its
/// message is most likely in the queue, and republishing a backlog every
/// sweep would flood the queue, `outbox` and `job_events`.
pub const LONG_HORIZON: u32 = 12;

/// A job the sweeper woke again, with the outbox row that will wake a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewoken {
    pub job_id: Uuid,
    pub outbox_id: i64,
}

impl Store {
    /// Gives up to `limit` pending jobs that have been due for longer than
    /// `stale_after`, untouched since, with no outbox row still to publish nor
    /// one written or published within `stale_after`, of a type some
    /// consumer serves, and either no job of that type processing (its
    /// consumers idle: the message is plausibly lost) or waiting for
    /// [`LONG_HORIZON`] times `stale_after`, a fresh outbox row due now. A duplicate wake-up is harmless (the claim decides); a lost one
    /// would leave the job stuck. Safe to run in several processes at once:
    /// each job is woken by one of them.
    #[instrument(skip(self))]
    pub async fn rewake_due(
        &self,
        stale_after: std::time::Duration,
        limit: u32,
    ) -> Result<Vec<Rewoken>, StoreError> {
        let now = self.now();
        let ago = |d: std::time::Duration| now - chrono::Duration::from_std(d).unwrap_or_default();
        let threshold = ago(stale_after);
        let live = ago(super::WORKER_GONE_AFTER);
        let horizon = ago(stale_after.saturating_mul(LONG_HORIZON));
        let client = self.client().await?;
        let rows = sql::REWAKE_DUE
            .query(
                client.on(),
                &[
                    &now,
                    &threshold,
                    &i64::from(limit),
                    &self.settings.queue_name,
                    &live,
                    &self.settings.consumer_job_types,
                    &horizon,
                ],
            )
            .await?;
        let woken = rows
            .iter()
            .map(|r| {
                Ok(Rewoken {
                    job_id: r.try_get("job_id")?,
                    outbox_id: r.try_get("id")?,
                })
            })
            .collect::<Result<Vec<_>, tokio_postgres::Error>>()
            .map_err(|e| StoreError::from_db("rewake_due", e))?;
        if !woken.is_empty() {
            tracing::warn!(
                count = woken.len(),
                "re-woke due jobs whose message may have been lost"
            );
        }
        Ok(woken)
    }
}
