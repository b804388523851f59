//! Re-waking due jobs whose message may have been lost (the sweeper's third
//! step): a fresh outbox row for the relay to publish.

use tracing::instrument;
use uuid::Uuid;

use super::{Store, StoreError, sql};

/// A job the sweeper woke again, with the outbox row that will wake a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewoken {
    pub job_id: Uuid,
    pub outbox_id: i64,
}

impl Store {
    /// Gives up to `limit` pending jobs that have been due for longer than
    /// `stale_after`, untouched since, with no outbox row still to publish nor
    /// one written or published within `stale_after`, a fresh outbox row due
    /// now. A duplicate wake-up is harmless (the claim decides); a lost one
    /// would leave the job stuck. Safe to run in several processes at once:
    /// each job is woken by one of them.
    #[instrument(skip(self))]
    pub async fn rewake_due(
        &self,
        stale_after: std::time::Duration,
        limit: u32,
    ) -> Result<Vec<Rewoken>, StoreError> {
        let now = self.now();
        let threshold = now - chrono::Duration::from_std(stale_after).unwrap_or_default();
        let client = self.client().await?;
        let rows = sql::REWAKE_DUE
            .query(
                client.on(),
                &[&now, &threshold, &i64::from(limit), &self.settings.queue_name],
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
