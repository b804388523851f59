//! The `sqs` adapter (aws-sdk-sqs). Publish with `SendMessageBatch` in
//! chunks of 10, retrying the entries SQS refused; delays up to SQS's 900 s
//! limit ride as `DelaySeconds` (longer ones wait in the outbox); receive
//! with long polling; ack = `DeleteMessage`; nack =
//! `ChangeMessageVisibility` (the backoff). A consumer that dies leaves its
//! messages invisible until the visibility timeout, then SQS hands them out
//! again (and to the dead-letter queue after the redrive policy's
//! `maxReceiveCount`).

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::{DisplayErrorContext, SdkError};
use aws_sdk_sqs::types::{MessageSystemAttributeName, SendMessageBatchRequestEntry};

use super::{Broker, Delivery, Message, Outgoing, PublishError, Queue, QueueError};

/// SQS holds a message back at most this long.
pub const SQS_MAX_DELAY: Duration = Duration::from_secs(900);
const BATCH: usize = 10;
/// Tries for entries SQS refused inside an accepted batch (the SDK retries
/// failed requests, not refused entries).
const PUBLISH_TRIES: u32 = 4;

#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
}

impl SqsQueue {
    /// A client from the standard AWS configuration chain (region,
    /// credentials; `AWS_ENDPOINT_URL_SQS` points it at a compatible server).
    pub async fn from_env(queue_url: impl Into<String>) -> Self {
        crate::store::pool::install_crypto_provider();
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Self::with_client(Client::new(&config), queue_url)
    }

    pub fn with_client(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// One `SendMessageBatch` of at most 10 entries, re-sending the entries
    /// SQS refused.
    async fn publish_chunk(&self, chunk: &[Outgoing]) -> Result<(), QueueError> {
        // Entries still to send, by their batch-entry id.
        let mut pending: Vec<(String, &Outgoing)> = chunk
            .iter()
            .enumerate()
            .map(|(i, m)| (i.to_string(), m))
            .collect();
        let mut tries = 0;
        while !pending.is_empty() {
            tries += 1;
            let entries = pending
                .iter()
                .map(|(id, m)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(id.clone())
                        .message_body(serde_json::to_string(&m.message).unwrap_or_default())
                        .delay_seconds(m.delay.min(SQS_MAX_DELAY).as_secs() as i32)
                        .build()
                        .map_err(|e| QueueError::Misconfigured(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let sent = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await;
            let failed: Vec<(String, String)> = match sent {
                Ok(out) => out
                    .failed()
                    .iter()
                    .map(|f| (f.id().to_owned(), f.code().to_owned()))
                    .collect(),
                // The SDK's own retry policy (standard mode: 3 attempts,
                // jittered backoff) has already retried the transport; a
                // second loop here would multiply its attempts.
                Err(e) => return Err(classify(e)),
            };
            pending.retain(|(id, _)| failed.iter().any(|(f, _)| f == id));
            if !pending.is_empty() {
                if tries >= PUBLISH_TRIES {
                    let codes: Vec<String> = failed.iter().map(|(id, code)| format!("{id}:{code}")).collect();
                    return Err(QueueError::Unavailable(format!(
                        "SQS refused {} of {} entries after {tries} tries: {}",
                        pending.len(),
                        chunk.len(),
                        codes.join(", ")
                    )));
                }
                tracing::warn!(
                    refused = pending.len(),
                    tries,
                    "SQS refused some entries; retrying them"
                );
                tokio::time::sleep(Duration::from_millis(100 * 2u64.pow(tries))).await;
            }
        }
        Ok(())
    }
}

fn classify<E, R>(err: SdkError<E, R>) -> QueueError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let text = DisplayErrorContext(&err).to_string();
    match &err {
        SdkError::ServiceError(_)
            if text.contains("QueueDoesNotExist")
                || text.contains("NonExistentQueue")
                || text.contains("AccessDenied")
                || text.contains("InvalidClientTokenId") =>
        {
            QueueError::Misconfigured(text)
        }
        _ => QueueError::Unavailable(text),
    }
}

#[async_trait]
impl Queue for SqsQueue {
    fn kind(&self) -> &'static str {
        "sqs"
    }

    fn max_delay(&self) -> Duration {
        SQS_MAX_DELAY
    }

    /// Chunks of 10 in order: when one fails, the chunks before it were
    /// published (the caller marks only the rest failed).
    async fn publish(&self, messages: &[Outgoing]) -> Result<(), PublishError> {
        for (n, chunk) in messages.chunks(BATCH).enumerate() {
            self.publish_chunk(chunk).await.map_err(|error| PublishError {
                error,
                sent: n * BATCH,
            })?;
        }
        Ok(())
    }

    async fn check(&self) -> Result<(), QueueError> {
        self.client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }
}

#[async_trait]
impl Broker for SqsQueue {
    async fn receive(
        &self,
        _consumer: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .wait_time_seconds(wait.as_secs().min(20) as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(classify)?;
        Ok(out
            .messages()
            .iter()
            .map(|m| {
                let raw = m.body().unwrap_or_default().to_owned();
                let receive_count = m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1);
                Delivery {
                    message: Message::parse(&raw),
                    raw,
                    receipt: m.receipt_handle().unwrap_or_default().to_owned(),
                    receive_count,
                }
            })
            .collect())
    }

    async fn ack(&self, _consumer: &str, delivery: &Delivery) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(&delivery.receipt)
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn nack(&self, _consumer: &str, delivery: &Delivery, delay: Duration) -> Result<(), QueueError> {
        // SQS caps a visibility timeout at 12 hours.
        let secs = delay.as_secs().min(12 * 3600) as i32;
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(&delivery.receipt)
            .visibility_timeout(secs)
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    /// SQS recovers by itself: a message not deleted within its visibility
    /// timeout is handed out again. Nothing to put back here.
    async fn recover(&self) -> Result<usize, QueueError> {
        Ok(0)
    }

    /// In-flight SQS messages of a stopped consumer become visible again by
    /// themselves; none is held per consumer.
    async fn orphaned_processing(&self) -> Result<usize, QueueError> {
        Ok(0)
    }

    /// SQS hands a received, undeleted message out again after its
    /// visibility timeout; nothing is held per consumer to give back.
    async fn hand_back(&self, _consumer: &str) -> Result<usize, QueueError> {
        Ok(0)
    }
}
