//! Reads a namespace's topic as a member of a consumer group.
//!
//! * `receive`: messages from the partitions the group assigned to this
//!   member, in offset order per partition.
//! * `ack`: marks offsets handled. Per partition an [`OffsetTracker`] turns
//!   out-of-order acks into a safe position (the lowest offset still being
//!   handled, or the highest handled + 1), which is *stored*
//!   (`enable.auto.offset.store=false`) and committed by librdkafka's
//!   auto-commit (every [`AUTO_COMMIT_INTERVAL_MS`] ms, and when the consumer
//!   closes). Nothing past an unhandled offset is ever committed, so a crash
//!   or a rebalance re-delivers rather than loses (at-least-once).
//! * `extend_visibility`: a no-op. Kafka has no per-message lease: a
//!   partition stays with this member as long as its background heartbeats
//!   reach the group coordinator (within the session timeout) and `receive`
//!   is called at least every `max.poll.interval.ms` (5 min by default).
//! * `release`: a no-op. Kafka cannot hand single messages back; whatever
//!   was not acked is read again by the partition's next owner.
//!
//! ## Rebalance
//!
//! A custom [`ConsumerContext`] sees every rebalance (they run inside
//! `receive`, where librdkafka serves its events). On *revoke* it stores and
//! synchronously commits each revoked partition's safe position, then drops
//! its tracker: an ack arriving later for a revoked partition is ignored
//! (the new owner reads the message again). On *assign* it starts fresh
//! trackers. Dropping the consumer closes it in the background (leaving the
//! group, which runs the revoke path one last time); [`KafkaConsumer::close`]
//! does the same and waits for it.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaErrorCode;
use wal_core::backend::{AckToken, BackendError, LogConsumer, Position, ReceivedEntry};

use super::offsets::OffsetTracker;
use super::{backend_error, log_line, safe_error, KafkaClientConfig, RECONNECT_BACKOFF_MAX_MS};

/// `auto.commit.interval.ms`: how often stored positions are committed.
const AUTO_COMMIT_INTERVAL_MS: u64 = 1000;

/// Group membership of a [`KafkaConsumer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaConsumerSettings {
    /// `group.id`: the workers of one namespace share one group.
    pub group_id: String,
    /// `client.id`: this worker's name, as the broker shows it.
    pub consumer_name: String,
    /// `session.timeout.ms`: how long the group waits for a silent member
    /// before giving its partitions to others.
    pub session_timeout: Duration,
}

/// Per-partition ack trackers of the assigned partitions, shared between the
/// consumer (receive, ack) and its rebalance callbacks.
struct AckContext {
    topic: String,
    consumer_name: String,
    trackers: Mutex<HashMap<i32, OffsetTracker>>,
}

impl AckContext {
    fn trackers(&self) -> MutexGuard<'_, HashMap<i32, OffsetTracker>> {
        // A panic while holding the lock leaves the map consistent (every
        // operation on it is a single call): keep going with it.
        self.trackers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Stores and synchronously commits the safe positions of the revoked
    /// `partitions`, and forgets them.
    fn revoke(&self, base: &BaseConsumer<Self>, partitions: &TopicPartitionList) {
        let revoked: Vec<i32> = partitions
            .elements_for_topic(&self.topic)
            .iter()
            .map(|e| e.partition())
            .collect();
        let positions: Vec<(i32, i64)> = {
            let mut trackers = self.trackers();
            revoked
                .iter()
                .filter_map(|p| {
                    let tracker = trackers.remove(p)?;
                    tracker.committable().map(|c| (*p, c))
                })
                .collect()
        };
        tracing::info!(
            consumer = %self.consumer_name,
            topic = %self.topic,
            partitions = ?revoked,
            "Kafka partitions revoked"
        );
        if positions.is_empty() {
            return;
        }
        if base.assignment_lost() {
            tracing::warn!(
                consumer = %self.consumer_name,
                "assignment lost (session timed out): positions not committed; the new owners re-read"
            );
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for &(p, offset) in &positions {
            if let Err(e) = tpl.add_partition_offset(&self.topic, p, Offset::Offset(offset)) {
                tracing::warn!(partition = p, error = %e, "could not list an offset to commit");
            }
        }
        if let Err(e) = base.store_offsets(&tpl) {
            tracing::debug!(error = %e, "storing offsets on revoke failed");
        }
        match base.commit(&tpl, CommitMode::Sync) {
            Ok(()) => tracing::debug!(
                consumer = %self.consumer_name,
                positions = ?positions,
                "committed positions of revoked partitions"
            ),
            Err(e) => tracing::warn!(
                consumer = %self.consumer_name,
                error = %e,
                positions = ?positions,
                "commit on revoke failed; the stored positions are committed on close, or the new owners re-read"
            ),
        }
    }

    /// Starts fresh trackers for newly assigned `partitions`.
    fn assign(&self, partitions: &TopicPartitionList) {
        let assigned: Vec<i32> = partitions
            .elements_for_topic(&self.topic)
            .iter()
            .map(|e| e.partition())
            .collect();
        {
            let mut trackers = self.trackers();
            for &p in &assigned {
                trackers.insert(p, OffsetTracker::default());
            }
        }
        tracing::info!(
            consumer = %self.consumer_name,
            topic = %self.topic,
            partitions = ?assigned,
            "Kafka partitions assigned"
        );
    }
}

impl ClientContext for AckContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log_line(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(target: "librdkafka", consumer = %self.consumer_name, error = %safe_error(&error), "{reason}");
    }
}

impl ConsumerContext for AckContext {
    fn pre_rebalance(&self, base: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => self.revoke(base, tpl),
            Rebalance::Assign(_) => {}
            Rebalance::Error(e) => {
                tracing::warn!(consumer = %self.consumer_name, error = %e, "Kafka rebalance error")
            }
        }
    }

    fn post_rebalance(&self, _base: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            self.assign(tpl);
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => {
                tracing::trace!(consumer = %self.consumer_name, ?offsets, "offsets committed")
            }
            Err(e) => {
                tracing::warn!(consumer = %self.consumer_name, error = %e, "offset commit failed")
            }
        }
    }
}

/// A member of a namespace's consumer group reading its topic (see the
/// module docs). Counts no deliveries: `delivery_count` is always 1.
pub struct KafkaConsumer {
    /// `None` only while being dropped or closed.
    consumer: Option<StreamConsumer<AckContext>>,
    topic: String,
    name: String,
}

impl KafkaConsumer {
    /// Joins group `settings.group_id` and subscribes to `topic`; reading
    /// starts at the group's committed positions (the beginning of the topic
    /// for a new group). Must be called inside a Tokio runtime.
    pub fn new(
        cfg: &KafkaClientConfig,
        topic: &str,
        settings: &KafkaConsumerSettings,
    ) -> Result<Self, BackendError> {
        let session_ms = settings.session_timeout.as_millis().max(1) as u64;
        let heartbeat_ms = (session_ms / 3).clamp(100, 3000);
        let context = AckContext {
            topic: topic.to_string(),
            consumer_name: settings.consumer_name.clone(),
            trackers: Mutex::new(HashMap::new()),
        };
        let consumer: StreamConsumer<AckContext> = cfg
            .client_config(&[
                ("group.id", settings.group_id.clone()),
                ("client.id", settings.consumer_name.clone()),
                ("enable.auto.commit", "true".into()),
                ("enable.auto.offset.store", "false".into()),
                (
                    "auto.commit.interval.ms",
                    AUTO_COMMIT_INTERVAL_MS.to_string(),
                ),
                ("auto.offset.reset", "earliest".into()),
                ("enable.partition.eof", "false".into()),
                ("allow.auto.create.topics", "false".into()),
                ("session.timeout.ms", session_ms.to_string()),
                ("heartbeat.interval.ms", heartbeat_ms.to_string()),
                ("reconnect.backoff.max.ms", RECONNECT_BACKOFF_MAX_MS.into()),
            ])
            .create_with_context(context)
            .map_err(|e| BackendError::Other(safe_error(&e)))?;
        consumer
            .subscribe(&[topic])
            .map_err(|e| backend_error(&e))?;
        tracing::info!(
            consumer = %settings.consumer_name,
            group = %settings.group_id,
            topic,
            "Kafka consumer subscribed"
        );
        Ok(Self {
            consumer: Some(consumer),
            topic: topic.to_string(),
            name: settings.consumer_name.clone(),
        })
    }

    fn consumer(&self) -> &StreamConsumer<AckContext> {
        self.consumer
            .as_ref()
            .expect("the consumer is present until dropped")
    }

    /// Leaves the group and waits until it is done: the safe positions of
    /// all partitions are committed and the group rebalances at once (rather
    /// than after the session timeout). Unacked messages are read again by
    /// the partitions' next owners.
    pub async fn close(mut self) {
        if let Some(consumer) = self.consumer.take() {
            let name = self.name.clone();
            if tokio::task::spawn_blocking(move || drop(consumer))
                .await
                .is_err()
            {
                tracing::warn!(consumer = %name, "closing the Kafka consumer panicked");
            }
        }
    }

    /// Turns a message into an entry and tracks its offset.
    fn entry(&self, msg: &BorrowedMessage<'_>) -> Option<ReceivedEntry> {
        if msg.topic() != self.topic {
            tracing::warn!(
                topic = msg.topic(),
                "message of an unexpected topic skipped"
            );
            return None;
        }
        let partition = msg.partition();
        let offset = msg.offset();
        let Ok(partition_u32) = u32::try_from(partition) else {
            tracing::warn!(partition, "message with a negative partition skipped");
            return None;
        };
        self.consumer()
            .context()
            .trackers()
            .entry(partition)
            .or_default()
            .received(offset);
        Some(ReceivedEntry {
            token: AckToken {
                partition: partition_u32,
                position: Position::Offset(offset),
            },
            // No payload: an empty body, which the worker dead-letters as
            // malformed (it must not be skipped silently).
            body: msg.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            delivery_count: 1,
        })
    }
}

impl Drop for KafkaConsumer {
    /// Closing waits for the group to answer (up to seconds): done on the
    /// blocking pool when inside a Tokio runtime, so no async worker stalls.
    fn drop(&mut self) {
        if let Some(consumer) = self.consumer.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn_blocking(move || drop(consumer));
                }
                Err(_) => drop(consumer),
            }
        }
    }
}

#[async_trait]
impl LogConsumer for KafkaConsumer {
    #[tracing::instrument(skip_all, fields(consumer = %self.name, topic = %self.topic))]
    async fn receive(
        &self,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<ReceivedEntry>, BackendError> {
        let mut out = Vec::new();
        if max == 0 {
            return Ok(out);
        }
        let consumer = self.consumer();
        let deadline = tokio::time::Instant::now() + wait;
        // Wait for the first message; a message of another topic (never
        // expected) does not end the wait.
        while out.is_empty() {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Err(_) => return Ok(out),
                Ok(Ok(msg)) => out.extend(self.entry(&msg)),
                Ok(Err(e)) => {
                    tracing::warn!(error = %safe_error(&e), "Kafka consumer error");
                    return Err(backend_error(&e));
                }
            }
        }
        // Then take whatever is ready right now (`recv` is polled once).
        while out.len() < max {
            match tokio::time::timeout(Duration::ZERO, consumer.recv()).await {
                Err(_) => break,
                Ok(Ok(msg)) => out.extend(self.entry(&msg)),
                Ok(Err(e)) => {
                    tracing::warn!(error = %safe_error(&e), "Kafka consumer error");
                    break;
                }
            }
        }
        tracing::trace!(received = out.len(), "received");
        Ok(out)
    }

    #[tracing::instrument(skip_all, fields(consumer = %self.name, tokens = tokens.len()))]
    async fn ack(&self, tokens: &[AckToken]) -> Result<(), BackendError> {
        let consumer = self.consumer();
        let mut tpl = TopicPartitionList::new();
        let mut positions: Vec<(i32, i64)> = Vec::new();
        {
            let mut trackers = consumer.context().trackers();
            let mut touched: Vec<i32> = Vec::new();
            for t in tokens {
                let Position::Offset(offset) = t.position else {
                    continue;
                };
                let Ok(p) = i32::try_from(t.partition) else {
                    continue;
                };
                match trackers.get_mut(&p) {
                    Some(tracker) => {
                        if tracker.handled(offset) && !touched.contains(&p) {
                            touched.push(p);
                        }
                    }
                    None => tracing::debug!(
                        partition = p,
                        offset,
                        "ack for a partition no longer assigned ignored (its new owner re-reads it)"
                    ),
                }
            }
            for p in touched {
                if let Some(position) = trackers.get(&p).and_then(OffsetTracker::to_store) {
                    positions.push((p, position));
                }
            }
            if positions.is_empty() {
                return Ok(());
            }
            for &(p, position) in &positions {
                tpl.add_partition_offset(&self.topic, p, Offset::Offset(position))
                    .map_err(|e| backend_error(&e))?;
            }
            // Stored under the lock, so a concurrent revoke either sees the
            // tracker (and commits at least this) or it is gone already.
            match consumer.store_offsets(&tpl) {
                Ok(()) => {
                    for &(p, position) in &positions {
                        if let Some(tracker) = trackers.get_mut(&p) {
                            tracker.mark_stored(position);
                        }
                    }
                }
                Err(KafkaError::StoreOffset(RDKafkaErrorCode::State)) => {
                    tracing::debug!("partitions no longer assigned; offsets not stored");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "storing Kafka offsets failed");
                    return Err(backend_error(&e));
                }
            }
        }
        tracing::trace!(?positions, "stored positions");
        Ok(())
    }

    /// A no-op: the partition stays with this member while it keeps polling
    /// (see the module docs).
    async fn extend_visibility(&self, _tokens: &[AckToken]) -> Result<(), BackendError> {
        Ok(())
    }

    /// A no-op: unacked messages are read again by the next owner of their
    /// partition after a rebalance.
    async fn release(&self, _tokens: &[AckToken]) -> Result<(), BackendError> {
        Ok(())
    }

    fn counts_deliveries(&self) -> bool {
        false
    }
}
