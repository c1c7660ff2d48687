//! Appends envelopes to a topic: every message of a batch is queued in
//! librdkafka at once (a few ms of `linger.ms` lets concurrent publishes
//! share produce requests), then the delivery reports are awaited in order.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use wal_core::backend::{
    BackendError, LogProducer, LogSettings, OutgoingMessage, PublishError, PublishOutcome,
};
use wal_core::{Durability, Envelope};

use super::{
    backend_error, safe_error, KafkaClientConfig, TracingContext, KAFKA_MAX_ENTRY_BYTES,
    META_HEADER_BUDGET, RECONNECT_BACKOFF_MAX_MS,
};

/// How long a publish retries while librdkafka's local queue is full
/// before answering `Unavailable`.
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(500);

/// How long `ping` waits for a metadata answer.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// `linger.ms`: how long librdkafka waits to fill a produce request.
const LINGER_MS: &str = "5";

/// The Kafka [`LogProducer`]: an idempotent producer with `acks=all`.
///
/// Cheap to clone: clones share one librdkafka client (its own threads and
/// connections), which is meant to be shared by every namespace of a cluster.
#[derive(Clone)]
pub struct KafkaProducer {
    producer: FutureProducer<TracingContext>,
    message_timeout: Duration,
}

impl KafkaProducer {
    /// A producer for the cluster of `cfg` (connections open lazily: this
    /// fails only on invalid settings).
    pub fn new(cfg: &KafkaClientConfig) -> Result<Self, BackendError> {
        let timeout_ms = cfg.message_timeout.as_millis().max(1).to_string();
        let config = cfg.client_config(&[
            ("acks", "all".into()),
            ("enable.idempotence", "true".into()),
            ("message.timeout.ms", timeout_ms),
            ("linger.ms", LINGER_MS.into()),
            ("message.max.bytes", "1000000".into()),
            ("allow.auto.create.topics", "false".into()),
            ("reconnect.backoff.max.ms", RECONNECT_BACKOFF_MAX_MS.into()),
        ]);
        // The caller's properties may have changed the timeout.
        let message_timeout = config
            .get("message.timeout.ms")
            .and_then(|ms| ms.parse().ok())
            .map_or(cfg.message_timeout, Duration::from_millis);
        let producer = config
            .create_with_context(TracingContext)
            .map_err(|e| BackendError::Other(safe_error(&e)))?;
        tracing::debug!(brokers = %cfg.brokers, "Kafka producer created");
        Ok(Self {
            producer,
            message_timeout,
        })
    }

    /// Queues one message; `Err` is its final outcome (nothing was sent).
    async fn enqueue(
        &self,
        topic: &str,
        envelope: &Envelope,
    ) -> Result<DeliveryFuture, PublishOutcome> {
        let payload = envelope.encode();
        if payload.len() > KAFKA_MAX_ENTRY_BYTES {
            return Err(PublishOutcome::Failed(PublishError::Rejected(format!(
                "entry of {} bytes exceeds the Kafka limit of {KAFKA_MAX_ENTRY_BYTES} bytes",
                payload.len()
            ))));
        }
        let Ok(partition) = i32::try_from(envelope.partition) else {
            return Err(PublishOutcome::Failed(PublishError::Rejected(format!(
                "partition {} out of range",
                envelope.partition
            ))));
        };
        let id = envelope.id.to_string();
        let key = envelope.partition_key.as_deref().unwrap_or(&id);
        let started = Instant::now();
        loop {
            let record = FutureRecord::to(topic)
                .partition(partition)
                .key(key)
                .payload(&payload)
                .headers(headers(envelope, &id));
            match self.producer.send_result(record) {
                Ok(delivery) => return Ok(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _))
                    if started.elapsed() < QUEUE_FULL_WAIT =>
                {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err((e, _)) => return Err(PublishOutcome::Failed(enqueue_error(&e))),
            }
        }
    }

    /// Waits for the delivery report of a queued message.
    async fn delivered(&self, delivery: DeliveryFuture) -> PublishOutcome {
        // librdkafka reports every message within message.timeout.ms (plus
        // up to a second, see RECONNECT_BACKOFF_MAX_MS); the guard only
        // protects against a client that stopped answering. The message may
        // still be sent later, so this answers UNKNOWN.
        let guard = self.message_timeout + Duration::from_secs(2);
        match tokio::time::timeout(guard, delivery).await {
            Ok(Ok(Ok(d))) => PublishOutcome::Appended {
                position: format!("{}:{}", d.partition, d.offset),
                durability: Durability::True,
            },
            Ok(Ok(Err((e, _)))) => PublishOutcome::Failed(delivery_error(&e)),
            Ok(Err(_canceled)) => PublishOutcome::Failed(PublishError::Timeout(
                "the Kafka producer was shut down before the delivery report".into(),
            )),
            Err(_) => PublishOutcome::Failed(PublishError::Timeout(
                "no delivery report from the Kafka client in time".into(),
            )),
        }
    }
}

/// The metadata headers of a message (see the module docs of `kafka`).
fn headers(envelope: &Envelope, id: &str) -> OwnedHeaders {
    let mut h = OwnedHeaders::new_with_capacity(6)
        .insert(Header {
            key: "wal-message-id",
            value: Some(id),
        })
        .insert(Header {
            key: "wal-namespace",
            value: Some(envelope.namespace.as_str()),
        })
        .insert(Header {
            key: "wal-request-id",
            value: Some(envelope.request_id.as_str()),
        });
    if let Some(tp) = &envelope.trace.traceparent {
        h = h.insert(Header {
            key: "traceparent",
            value: Some(tp.as_str()),
        });
    }
    if let Some(ts) = &envelope.trace.tracestate {
        h = h.insert(Header {
            key: "tracestate",
            value: Some(ts.as_str()),
        });
    }
    h = h.insert(Header {
        key: "wal-due-at-ms",
        value: Some(envelope.due_at_ms.to_string().as_str()),
    });
    if let Some(meta) = &envelope.metadata {
        let mut budget = META_HEADER_BUDGET;
        for (k, v) in meta {
            let key = format!("wal-meta-{k}");
            let value = v.to_string();
            let size = key.len() + value.len();
            if size > budget {
                tracing::debug!(
                    message_id = id,
                    "metadata headers over budget; the rest stays in the envelope only"
                );
                break;
            }
            budget -= size;
            h = h.insert(Header {
                key: &key,
                value: Some(value.as_str()),
            });
        }
    }
    h
}

/// Outcome of a message librdkafka refused to queue: it was never sent.
fn enqueue_error(e: &KafkaError) -> PublishError {
    match e.rdkafka_error_code() {
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::UnknownPartition
            | RDKafkaErrorCode::UnknownTopic
            | RDKafkaErrorCode::UnknownTopicOrPartition
            | RDKafkaErrorCode::InvalidArgument,
        ) => PublishError::Rejected(safe_error(e)),
        _ => PublishError::Unavailable(safe_error(e)),
    }
}

/// Outcome of a failed delivery report: `FALSE` only where the broker (or
/// librdkafka before sending) certainly did not write the record, `UNKNOWN`
/// otherwise — a timed-out or cut-off request may have been written.
fn delivery_error(e: &KafkaError) -> PublishError {
    match e.rdkafka_error_code() {
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::MessageBatchTooLarge
            | RDKafkaErrorCode::InvalidMessage
            | RDKafkaErrorCode::InvalidRecord
            | RDKafkaErrorCode::UnknownTopicOrPartition
            | RDKafkaErrorCode::UnknownTopic
            | RDKafkaErrorCode::UnknownPartition
            | RDKafkaErrorCode::InvalidTopic
            | RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed
            | RDKafkaErrorCode::InvalidRequiredAcks
            | RDKafkaErrorCode::InvalidTimestamp
            | RDKafkaErrorCode::PolicyViolation
            | RDKafkaErrorCode::UnsupportedForMessageFormat,
        ) => PublishError::Rejected(safe_error(e)),
        // Purged from the local queue: never sent.
        Some(RDKafkaErrorCode::PurgeQueue) => PublishError::Unavailable(safe_error(e)),
        _ => PublishError::Timeout(safe_error(e)),
    }
}

#[async_trait]
impl LogProducer for KafkaProducer {
    #[tracing::instrument(skip_all, fields(namespace = %settings.namespace, topic = %settings.topic, batch = batch.len()))]
    async fn publish(
        &self,
        settings: &LogSettings,
        batch: Vec<OutgoingMessage>,
    ) -> Vec<PublishOutcome> {
        // Queue everything first (never blocks on the network), so the whole
        // batch is in flight together; then collect the reports in order.
        let mut queued = Vec::with_capacity(batch.len());
        for msg in &batch {
            queued.push(self.enqueue(&settings.topic, &msg.envelope).await);
        }
        let mut outcomes = Vec::with_capacity(batch.len());
        for q in queued {
            let outcome = match q {
                Ok(delivery) => self.delivered(delivery).await,
                Err(outcome) => outcome,
            };
            if let PublishOutcome::Failed(e) = &outcome {
                tracing::warn!(error = %e, "Kafka publish failed");
            }
            outcomes.push(outcome);
        }
        outcomes
    }

    /// Fetches cluster metadata (brokers and topics) within 2 s.
    async fn ping(&self) -> Result<(), BackendError> {
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(None, PING_TIMEOUT)
                .map(|_| ())
                .map_err(|e| backend_error(&e))
        })
        .await
        .map_err(|e| BackendError::Other(format!("metadata task failed: {e}")))?
    }

    fn max_entry_bytes(&self) -> Option<usize> {
        Some(KAFKA_MAX_ENTRY_BYTES)
    }
}

/// Whether a delivery error left the message's fate unknown (for tests of
/// the mapping).
#[cfg(test)]
fn is_unknown(e: &KafkaError) -> bool {
    matches!(delivery_error(e), PublishError::Timeout(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_timeouts_are_unknown_and_refusals_false() {
        let timed_out = KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut);
        assert!(is_unknown(&timed_out));
        let transport = KafkaError::MessageProduction(RDKafkaErrorCode::BrokerTransportFailure);
        assert!(is_unknown(&transport));
        assert!(super::super::is_transport(
            RDKafkaErrorCode::BrokerTransportFailure
        ));
        let too_big = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        assert_eq!(delivery_error(&too_big).durability(), Durability::False);
        let purged = KafkaError::MessageProduction(RDKafkaErrorCode::PurgeQueue);
        assert_eq!(delivery_error(&purged).durability(), Durability::False);
    }

    #[test]
    fn enqueue_failures_are_false() {
        for code in [
            RDKafkaErrorCode::QueueFull,
            RDKafkaErrorCode::UnknownPartition,
            RDKafkaErrorCode::MessageSizeTooLarge,
            RDKafkaErrorCode::Fatal,
        ] {
            let e = KafkaError::MessageProduction(code);
            assert_eq!(
                enqueue_error(&e).durability(),
                Durability::False,
                "{code:?}"
            );
        }
    }
}
