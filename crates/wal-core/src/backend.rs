//! The log backend traits: what the gateway needs to append, and what the
//! worker needs to consume, from Redis Streams, Kafka or SQS alike.
//!
//! ## Producer
//!
//! [`LogProducer::publish`] appends a batch and answers one [`PublishOutcome`]
//! per message, in order, so one slow or failing message never hides the fate
//! of the others. The outcome carries the [`Durability`] the client is told:
//! `TRUE` only on the backend's acknowledgement.
//!
//! ## Consumer
//!
//! The consumer side is a *queue* view of every backend (the shape of
//! Quickwit's queue sources): [`LogConsumer::receive`] a batch of
//! [`ReceivedEntry`]s, then [`LogConsumer::ack`] each one once it is handled
//! (delivered, scheduled for retry, or dead-lettered), and
//! [`LogConsumer::extend_visibility`] while a slow delivery runs. How each
//! backend maps this:
//!
//! | | ack | extend visibility | abandoned entries |
//! | --- | --- | --- | --- |
//! | Redis Streams | `XACK` of the entry id | `XCLAIM … JUSTID` resets the idle time | [`ReclaimAbandoned`]: `XAUTOCLAIM` after the visibility timeout |
//! | Kafka | marks the offset handled; the consumer commits, per partition, the highest offset below which *all* are handled | no-op (the group keeps the partition while the consumer polls) | the group rebalances; uncommitted offsets are read again |
//! | SQS | `DeleteMessage` with the receipt handle | `ChangeMessageVisibility` | the queue redelivers when visibility expires |
//!
//! The [`AckToken`] is opaque to the worker: a position the backend gave out.

use std::time::Duration;

use async_trait::async_trait;

use crate::durability::Durability;
use crate::envelope::{DecodeError, Envelope};
use crate::id::MessageId;
use crate::routing::ShardStrategy;

/// How a namespace's log is laid out and kept, as a backend needs to know it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogSettings {
    /// Namespace name (also the hash tag of its Redis keys).
    pub namespace: String,
    /// Stream / topic / queue name.
    pub topic: String,
    /// Number of partitions.
    pub partition_count: u32,
    /// How messages without a partition key are spread.
    pub shard_strategy: ShardStrategy,
    /// How much of the log the backend keeps.
    pub retention: Retention,
    /// Replicas that must confirm a write before it is `TRUE` (Redis `WAIT`); 0 = none.
    pub wait_replicas: u32,
    /// How long to wait for those replicas before answering `UNKNOWN`.
    pub wait_timeout: Duration,
    /// How long an `Idempotency-Key` is remembered.
    pub dedup_window: Duration,
}

/// Retention of a log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retention {
    /// Keep about this many entries per partition (Redis `MAXLEN ~`).
    MaxLen(u64),
    /// Keep entries younger than this (Redis `MINID ~` on the entry-id time).
    MaxAge(Duration),
}

/// One message to append.
#[derive(Clone, Debug)]
pub struct OutgoingMessage {
    /// The message.
    pub envelope: Envelope,
    /// The client's `Idempotency-Key`, if any: a second append with the same
    /// key inside the dedup window appends nothing and answers `Duplicate`
    /// (or `KeyReused` when its request differs).
    pub idempotency: Option<IdempotencyClaim>,
}

/// A client's `Idempotency-Key` and what identifies its request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyClaim {
    /// The key (for a batch item, `<key>:<index>`).
    pub key: String,
    /// Fingerprint of the request the key came with: the same key with
    /// another fingerprint is refused.
    pub fingerprint: String,
}

/// The fate of one appended message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublishOutcome {
    /// Appended at `position` (stream entry id, offset, SQS message id).
    Appended {
        /// Where the backend put it.
        position: String,
        /// `True`, or `Unknown` when a replication wait timed out.
        durability: Durability,
    },
    /// The idempotency key was seen before with this request: nothing
    /// appended.
    Duplicate {
        /// The id of the first write with this key.
        original: MessageId,
        /// What is known of the first write: `True` once the backend (and
        /// the replicas asked for) confirmed it, `Unknown` while it is in
        /// flight or unconfirmed.
        durability: Durability,
    },
    /// The idempotency key was seen before with another request: nothing
    /// appended, the client reused a key.
    KeyReused {
        /// The id of the first write with this key.
        original: MessageId,
    },
    /// Not appended, or not known to be.
    Failed(PublishError),
}

impl PublishOutcome {
    /// The durability a client is told for this outcome.
    pub fn durability(&self) -> Durability {
        match self {
            PublishOutcome::Appended { durability, .. } => *durability,
            PublishOutcome::Duplicate { durability, .. } => *durability,
            PublishOutcome::KeyReused { .. } => Durability::False,
            PublishOutcome::Failed(e) => e.durability(),
        }
    }
}

/// Why an append failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The backend could not be reached: certainly not recorded.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// The request left but no answer came in time: maybe recorded.
    #[error("backend did not answer in time: {0}")]
    Timeout(String),
    /// The backend refused the message: not recorded.
    #[error("backend rejected the message: {0}")]
    Rejected(String),
}

impl PublishError {
    /// `FALSE` unless the outcome is unknown.
    pub fn durability(&self) -> Durability {
        match self {
            PublishError::Timeout(_) => Durability::Unknown,
            PublishError::Unavailable(_) | PublishError::Rejected(_) => Durability::False,
        }
    }
}

/// A failure of a backend operation other than a publish.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Could not reach the backend.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// The backend answered with an error.
    #[error("backend error: {0}")]
    Other(String),
}

/// Appends messages to a namespace's log.
#[async_trait]
pub trait LogProducer: Send + Sync {
    /// Appends `batch` to the log described by `settings`; one outcome per
    /// message, in order. Never answers `Appended` before the backend did.
    async fn publish(
        &self,
        settings: &LogSettings,
        batch: Vec<OutgoingMessage>,
    ) -> Vec<PublishOutcome>;

    /// Whether the backend answers right now.
    async fn ping(&self) -> Result<(), BackendError>;

    /// Largest encoded entry (envelope bytes) the backend takes, if it has a
    /// limit below what the gateway allows; a larger entry is answered
    /// `Failed(Rejected)` without being sent.
    fn max_entry_bytes(&self) -> Option<usize> {
        None
    }
}

/// Where an entry sits in its backend; handed back on ack.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AckToken {
    /// Partition (stream index, Kafka partition; 0 for SQS).
    pub partition: u32,
    /// Backend position.
    pub position: Position,
}

/// Backend-specific position of an entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Position {
    /// Redis stream entry id.
    StreamEntry(String),
    /// Kafka offset.
    Offset(i64),
    /// SQS receipt handle.
    Receipt(String),
}

/// One entry handed to the worker.
#[derive(Clone, Debug)]
pub struct ReceivedEntry {
    /// What to ack.
    pub token: AckToken,
    /// The raw entry (may be undecodable: the worker dead-letters it as `malformed`).
    pub body: Vec<u8>,
    /// How many times the backend has handed this entry out (1 on first delivery).
    pub delivery_count: u32,
}

impl ReceivedEntry {
    /// Decodes the body.
    pub fn decode(&self) -> Result<Envelope, DecodeError> {
        Envelope::decode(&self.body)
    }
}

/// Reads a namespace's log as a queue (see the module docs).
#[async_trait]
pub trait LogConsumer: Send + Sync {
    /// Up to `max` new entries, waiting at most `wait` when none are ready.
    async fn receive(&self, max: usize, wait: Duration)
        -> Result<Vec<ReceivedEntry>, BackendError>;

    /// The entries are handled (delivered, scheduled for retry, or
    /// dead-lettered) and must never be handed out again.
    async fn ack(&self, tokens: &[AckToken]) -> Result<(), BackendError>;

    /// Still working on these: do not hand them to another consumer yet.
    async fn extend_visibility(&self, tokens: &[AckToken]) -> Result<(), BackendError>;

    /// Gives entries back unhandled (at shutdown): another consumer may take
    /// them at once instead of waiting for the visibility timeout. The
    /// default does nothing, which is correct where the broker redelivers by
    /// itself.
    async fn release(&self, tokens: &[AckToken]) -> Result<(), BackendError> {
        let _ = tokens;
        Ok(())
    }

    /// The reclaim capability, for backends where abandoned entries must be
    /// taken back explicitly (Redis Streams); `None` where the broker
    /// redelivers by itself (Kafka rebalance, SQS visibility timeout).
    fn reclaimer(&self) -> Option<&dyn ReclaimAbandoned> {
        None
    }

    /// Whether [`ReceivedEntry::delivery_count`] is counted by the backend
    /// (Redis Streams' delivery counter, SQS's `ApproximateReceiveCount`).
    /// Kafka has no such counter: its consumer answers `false`, always
    /// reports 1, and the worker counts deliveries itself.
    fn counts_deliveries(&self) -> bool {
        true
    }
}

/// Takes over entries another consumer received but never acked.
#[async_trait]
pub trait ReclaimAbandoned: Send + Sync {
    /// Up to `max` entries idle for longer than `min_idle`, now owned by this consumer.
    async fn reclaim(
        &self,
        min_idle: Duration,
        max: usize,
    ) -> Result<Vec<ReceivedEntry>, BackendError>;

    /// Forgets the other consumers of the group that have been idle for
    /// longer than `min_idle` and own no entry (workers gone for good: every
    /// rollout leaves one per group). Answers the names removed.
    async fn forget_idle_consumers(&self, min_idle: Duration) -> Result<Vec<String>, BackendError> {
        let _ = min_idle;
        Ok(Vec::new())
    }
}
