//! Building blocks of the backend tests: log settings and envelopes, the
//! shape the gateway would append, without a gateway.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::value::RawValue;
use wal_core::backend::{LogSettings, OutgoingMessage, Retention};
use wal_core::envelope::{ResolvedLifecycle, TraceContext, ENVELOPE_VERSION};
use wal_core::request::TargetRef;
use wal_core::routing::ShardStrategy;
use wal_core::{Envelope, MessageId, RetryPolicy};

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Settings of a log `topic` of namespace `namespace` with `partitions`
/// partitions (hash strategy, 100,000 entries kept, no replica wait).
pub fn log_settings(namespace: &str, topic: &str, partitions: u32) -> LogSettings {
    LogSettings {
        namespace: namespace.to_string(),
        topic: topic.to_string(),
        partition_count: partitions,
        shard_strategy: ShardStrategy::Hash,
        retention: Retention::MaxLen(100_000),
        wait_replicas: 0,
        wait_timeout: Duration::from_millis(500),
        dedup_window: Duration::from_secs(60),
    }
}

/// An envelope of `namespace` routed to `partition`, payload `{"n":<n>}`,
/// request id `req-<n>`, one target `sink`, created and due now.
pub fn envelope(namespace: &str, partition: u32, n: u32) -> Envelope {
    let now = now_ms();
    Envelope {
        v: ENVELOPE_VERSION,
        id: MessageId::generate(),
        namespace: namespace.to_string(),
        payload: RawValue::from_string(format!("{{\"n\":{n}}}")).expect("valid JSON"),
        targets: vec![TargetRef::named("sink")],
        lifecycle: ResolvedLifecycle {
            retry_policy: RetryPolicy::default(),
            enable_dlq: true,
            expires_at_ms: None,
        },
        partition_key: None,
        partition,
        request_id: format!("req-{n}"),
        trace: TraceContext::default(),
        created_at_ms: now,
        due_at_ms: now,
        attempt: 0,
        metadata: None,
        priority: None,
        tags: vec![],
        history: Vec::new(),
    }
}

/// `envelope` as a message to publish, without an idempotency key.
pub fn outgoing(envelope: Envelope) -> OutgoingMessage {
    OutgoingMessage {
        envelope,
        idempotency: None,
    }
}
