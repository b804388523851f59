//! The `postgres` adapter: no broker. Workers claim from `jobs` with
//! `FOR UPDATE SKIP LOCKED`; publishing is one `NOTIFY` per batch, after the
//! jobs' transaction committed (a NOTIFY inside every create transaction
//! serializes commits).

use std::time::Duration;

use async_trait::async_trait;
use tokio_postgres::types::Type;

use super::{Outgoing, Queue, QueueError};
use crate::store::Store;

#[derive(Debug, Clone)]
pub struct PostgresQueue {
    store: Store,
    channel: String,
}

impl PostgresQueue {
    pub fn new(store: Store) -> Self {
        let channel = Self::channel_for(&store.settings().queue_name);
        Self { store, channel }
    }

    /// The LISTEN/NOTIFY channel of a queue.
    pub fn channel_for(queue_name: &str) -> String {
        format!("jobline_{}", queue_name.replace('-', "_"))
    }

    pub fn channel(&self) -> &str {
        &self.channel
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

    async fn publish(&self, messages: &[Outgoing]) -> Result<(), QueueError> {
        if messages.is_empty() {
            return Ok(());
        }
        let client = self
            .store
            .pool()
            .get()
            .await
            .map_err(|e| QueueError::Unavailable(e.to_string()))?;
        let count = messages.len().to_string();
        client
            .query_typed(
                "SELECT pg_notify($1, $2)",
                &[(&self.channel, Type::TEXT), (&count, Type::TEXT)],
            )
            .await
            .map_err(|e| QueueError::Unavailable(e.to_string()))?;
        Ok(())
    }

    async fn check(&self) -> Result<(), QueueError> {
        self.store
            .ping()
            .await
            .map_err(|e| QueueError::Unavailable(e.to_string()))
    }
}
