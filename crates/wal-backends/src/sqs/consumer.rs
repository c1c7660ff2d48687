//! Reads a namespace's queue.
//!
//! * `receive`: `ReceiveMessage` with long polling (`WaitTimeSeconds` 1–20),
//!   the consumer's visibility timeout, `ApproximateReceiveCount` and every
//!   message attribute. A body that is not an envelope is handed out anyway:
//!   the worker dead-letters it as `malformed` and acks it, so the queue does
//!   not redeliver it forever.
//! * `ack`: `DeleteMessageBatch`, 10 receipt handles per call.
//! * `extend_visibility`: `ChangeMessageVisibilityBatch` to the visibility
//!   timeout, counted from now.
//! * `release`: `ChangeMessageVisibilityBatch` to 0: receivable at once.
//!
//! Abandoned messages need no reclaim: SQS hands them out again when their
//! visibility timeout expires.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::config::timeout::TimeoutConfig;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    MessageSystemAttributeName, QueueAttributeName,
};
use aws_sdk_sqs::Client;
use wal_core::backend::{AckToken, BackendError, LogConsumer, Position, ReceivedEntry};

use super::{
    backend_error, build_client, queue_url, QueueLookupError, SqsClientConfig, CONNECT_TIMEOUT,
    MAX_BATCH_ENTRIES, MAX_WAIT_SECONDS,
};

/// Largest visibility timeout SQS accepts (12 hours).
const MAX_VISIBILITY_SECONDS: u64 = 12 * 60 * 60;

/// How the consumer reads its queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqsConsumerSettings {
    /// How long a received message stays invisible to other consumers
    /// before SQS hands it out again (whole seconds, at least 1, at most 12
    /// hours); also the new timeout set by
    /// [`extend_visibility`](LogConsumer::extend_visibility).
    pub visibility_timeout: Duration,
}

impl Default for SqsConsumerSettings {
    /// A visibility timeout of 30 seconds (the SQS default).
    fn default() -> Self {
        Self {
            visibility_timeout: Duration::from_secs(30),
        }
    }
}

/// A consumer of one SQS queue.
pub struct SqsConsumer {
    client: Client,
    url: String,
    visibility_seconds: i32,
    redrive_max_receive_count: Option<u32>,
}

impl SqsConsumer {
    /// Resolves `queue` (a name or a URL; the queue must exist) and reads its
    /// `RedrivePolicy`.
    pub async fn new(
        cfg: &SqsClientConfig,
        queue: &str,
        settings: &SqsConsumerSettings,
    ) -> Result<Self, BackendError> {
        let client = build_client(cfg, 3).await;
        let url = match queue_url(&client, queue).await {
            Ok(url) => url,
            Err(QueueLookupError::Missing) => {
                return Err(BackendError::Other(format!(
                    "SQS queue {queue} does not exist"
                )))
            }
            Err(QueueLookupError::Failed(e)) => return Err(e),
        };
        let attrs = client
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::RedrivePolicy)
            .send()
            .await
            .map_err(|e| backend_error(&e))?;
        let policy = attrs
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::RedrivePolicy));
        let redrive_max_receive_count = policy.and_then(|p| max_receive_count(p));
        match (policy, redrive_max_receive_count) {
            (Some(p), Some(n)) => tracing::info!(
                queue = %url,
                max_receive_count = n,
                policy = %p,
                "SQS queue has a redrive policy: a message received {n} times without ack moves to its dead-letter queue"
            ),
            (Some(p), None) => {
                tracing::warn!(queue = %url, policy = %p, "unreadable SQS redrive policy")
            }
            (None, _) => tracing::info!(queue = %url, "SQS queue has no redrive policy"),
        }
        let visibility_seconds = settings
            .visibility_timeout
            .as_secs()
            .clamp(1, MAX_VISIBILITY_SECONDS) as i32;
        Ok(Self {
            client,
            url,
            visibility_seconds,
            redrive_max_receive_count,
        })
    }

    /// The `maxReceiveCount` of the queue's `RedrivePolicy`, if it has one:
    /// SQS moves a message to the dead-letter queue after that many receives,
    /// so the worker must park poison messages itself before that.
    pub fn redrive_max_receive_count(&self) -> Option<u32> {
        self.redrive_max_receive_count
    }

    /// The queue's URL.
    pub fn queue_url(&self) -> &str {
        &self.url
    }

    /// `ChangeMessageVisibilityBatch` of `tokens` to `seconds`, 10 per call.
    async fn change_visibility(
        &self,
        tokens: &[AckToken],
        seconds: i32,
    ) -> Result<(), BackendError> {
        let handles = receipts(tokens);
        let mut failures: Vec<String> = Vec::new();
        for chunk in handles.chunks(MAX_BATCH_ENTRIES) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(n, h)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(n.to_string())
                        .receipt_handle(*h)
                        .visibility_timeout(seconds)
                        .build()
                        .map_err(|e| BackendError::Other(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .change_message_visibility_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| backend_error(&e))?;
            failures.extend(
                out.failed()
                    .iter()
                    .map(|f| format!("{}: {}", f.code(), f.message().unwrap_or("no message"))),
            );
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(BackendError::Other(format!(
                "{} of {} visibility changes failed: {}",
                failures.len(),
                handles.len(),
                failures.join("; ")
            )))
        }
    }
}

/// The `maxReceiveCount` of a `RedrivePolicy` JSON (a number or a string).
fn max_receive_count(policy: &str) -> Option<u32> {
    let v: serde_json::Value = serde_json::from_str(policy).ok()?;
    match v.get("maxReceiveCount")? {
        serde_json::Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// The receipt handles of `tokens` (other positions are not this backend's).
fn receipts(tokens: &[AckToken]) -> Vec<&str> {
    tokens
        .iter()
        .filter_map(|t| match &t.position {
            Position::Receipt(h) => Some(h.as_str()),
            _ => None,
        })
        .collect()
}

/// `WaitTimeSeconds` for a wait: whole seconds rounded up, 1 to 20.
fn wait_seconds(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.clamp(1, MAX_WAIT_SECONDS)
}

/// A received message as the worker sees it; `None` without a receipt handle.
fn entry(m: &Message) -> Option<ReceivedEntry> {
    let receipt = m.receipt_handle()?;
    let partition = m
        .message_attributes()
        .and_then(|a| a.get("wal-partition"))
        .and_then(|v| v.string_value())
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(0);
    let delivery_count = m
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    Some(ReceivedEntry {
        token: AckToken {
            partition,
            position: Position::Receipt(receipt.to_string()),
        },
        body: m.body().unwrap_or_default().as_bytes().to_vec(),
        delivery_count,
    })
}

#[async_trait]
impl LogConsumer for SqsConsumer {
    #[tracing::instrument(skip_all, fields(queue = %self.url))]
    async fn receive(
        &self,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<ReceivedEntry>, BackendError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let wait_secs = wait_seconds(wait);
        // The client's 5 s deadline would cut a long poll short.
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .operation_attempt_timeout(Duration::from_secs(wait_secs + 5))
            .operation_timeout(Duration::from_secs(wait_secs + 10))
            .build();
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.min(MAX_BATCH_ENTRIES) as i32)
            .wait_time_seconds(wait_secs as i32)
            .visibility_timeout(self.visibility_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_attribute_names("All")
            .customize()
            .config_override(aws_sdk_sqs::config::Builder::new().timeout_config(timeouts))
            .send()
            .await
            .map_err(|e| backend_error(&e))?;
        let entries: Vec<ReceivedEntry> = out.messages().iter().filter_map(entry).collect();
        if entries.len() < out.messages().len() {
            tracing::warn!(
                skipped = out.messages().len() - entries.len(),
                "SQS messages without a receipt handle"
            );
        }
        Ok(entries)
    }

    async fn ack(&self, tokens: &[AckToken]) -> Result<(), BackendError> {
        let handles = receipts(tokens);
        let mut failures: Vec<String> = Vec::new();
        for chunk in handles.chunks(MAX_BATCH_ENTRIES) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(n, h)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(n.to_string())
                        .receipt_handle(*h)
                        .build()
                        .map_err(|e| BackendError::Other(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .delete_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| backend_error(&e))?;
            failures.extend(
                out.failed()
                    .iter()
                    .map(|f| format!("{}: {}", f.code(), f.message().unwrap_or("no message"))),
            );
        }
        if failures.is_empty() {
            Ok(())
        } else {
            tracing::warn!(failed = failures.len(), "SQS deletes failed");
            Err(BackendError::Other(format!(
                "{} of {} deletes failed: {}",
                failures.len(),
                handles.len(),
                failures.join("; ")
            )))
        }
    }

    async fn extend_visibility(&self, tokens: &[AckToken]) -> Result<(), BackendError> {
        self.change_visibility(tokens, self.visibility_seconds)
            .await
    }

    async fn release(&self, tokens: &[AckToken]) -> Result<(), BackendError> {
        self.change_visibility(tokens, 0).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redrive_policies() {
        assert_eq!(
            max_receive_count(r#"{"deadLetterTargetArn":"arn:x","maxReceiveCount":2}"#),
            Some(2)
        );
        assert_eq!(
            max_receive_count(r#"{"deadLetterTargetArn":"arn:x","maxReceiveCount":"5"}"#),
            Some(5)
        );
        assert_eq!(max_receive_count("{}"), None);
        assert_eq!(max_receive_count("garbage"), None);
    }

    #[test]
    fn waits() {
        assert_eq!(wait_seconds(Duration::ZERO), 1);
        assert_eq!(wait_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(wait_seconds(Duration::from_secs(3)), 3);
        assert_eq!(wait_seconds(Duration::from_secs(60)), 20);
    }
}
