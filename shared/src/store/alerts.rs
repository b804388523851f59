//! What the sweeper last told the operators (`alert_state`, migration 0009),
//! moved in the transaction that tells them: the change commits only when
//! the post went out, so overlapping sweepers post once and a failed post is
//! tried again by the next sweep.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Store, StoreError, sql};

/// Jobs finished in a window ([`Store::finished_since`]); not the worker's
/// [`crate::worker::Finished`], how one attempt ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FinishedJobs {
    pub completed: i64,
    /// Failed for good (into the dead letter).
    pub failed: i64,
}

impl FinishedJobs {
    /// Failed over finished, `None` when nothing finished.
    pub fn failure_rate(&self) -> Option<f64> {
        let total = self.completed + self.failed;
        (total > 0).then(|| self.failed as f64 / total as f64)
    }
}

impl Store {
    /// Moves alert `key` to `state` when it is elsewhere and, inside that
    /// transaction, calls `tell(previous)` (`None`: the first state seen).
    /// The move commits only when `tell` answers `true`. Answers whether it
    /// moved and was told.
    pub async fn move_alert<F>(&self, key: &str, state: &str, tell: F) -> Result<bool, StoreError>
    where
        F: AsyncFnOnce(Option<String>) -> bool,
    {
        let now = self.now();
        let mut client = self.client().await?;
        let prepared = client.prepared;
        let tx = client
            .transaction()
            .await
            .map_err(|e| StoreError::from_db("alert_move", e))?;
        let rows = sql::ALERT_MOVE
            .query(
                sql::On::Tx(&tx, prepared),
                &[&key.to_owned(), &state.to_owned(), &now],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(false);
        };
        let previous: Option<String> = row
            .try_get("previous")
            .map_err(|e| StoreError::from_db("alert_move", e))?;
        if !tell(previous).await {
            return Ok(false); // dropped: rolled back, tried again next sweep
        }
        tx.commit()
            .await
            .map_err(|e| StoreError::from_db("alert_move", e))?;
        Ok(true)
    }

    /// Registered workers silent for `gone_after` not reported yet: marked
    /// and handed to `tell` inside the transaction that marks them, which
    /// commits only when `tell` answers `true`. Workers seen again lose
    /// their mark. Answers the workers told of.
    pub async fn mark_silent_workers<F>(
        &self,
        gone_after: Duration,
        tell: F,
    ) -> Result<Vec<String>, StoreError>
    where
        F: AsyncFnOnce(&[String]) -> bool,
    {
        let now = self.now();
        let cutoff = now - chrono::Duration::from_std(gone_after).unwrap_or_default();
        let mut client = self.client().await?;
        let prepared = client.prepared;
        let tx = client
            .transaction()
            .await
            .map_err(|e| StoreError::from_db("alert_workers", e))?;
        let rows = sql::ALERT_WORKERS
            .query(sql::On::Tx(&tx, prepared), &[&cutoff, &now])
            .await?;
        let silent = rows
            .iter()
            .map(|r| r.try_get::<_, String>("id"))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::from_db("alert_workers", e))?;
        if !silent.is_empty() && !tell(&silent).await {
            return Ok(Vec::new());
        }
        tx.commit()
            .await
            .map_err(|e| StoreError::from_db("alert_workers", e))?;
        Ok(silent)
    }

    /// Jobs completed and failed for good since `since` (from `job_counts`).
    pub async fn finished_since(
        &self,
        tenant: Option<&str>,
        since: DateTime<Utc>,
    ) -> Result<FinishedJobs, StoreError> {
        let client = self.client().await?;
        let rows = sql::FAILURE_RATE
            .query(client.on(), &[&tenant.map(str::to_owned), &since])
            .await?;
        let err = |e| StoreError::from_db("failure_rate", e);
        let row = rows
            .first()
            .ok_or_else(|| StoreError::Unavailable("failure_rate returned no row".into()))?;
        Ok(FinishedJobs {
            completed: row.try_get("completed").map_err(err)?,
            failed: row.try_get("failed").map_err(err)?,
        })
    }
}
