//! The Redis key layout, shared by gateway and worker (SPEC §5).
//!
//! Every key of a namespace contains the hash tag `{<namespace>}` so that all
//! of them land in one Redis Cluster slot: the Lua scripts that move an entry
//! between structures (stream → delayed set, retry set → stream, … → DLQ) then
//! run atomically on one node. Namespace names cannot contain braces.
//!
//! | key | type | what |
//! | --- | --- | --- |
//! | `wal:{ns}:p:<n>` | stream | partition `n` of the log |
//! | `wal:{ns}:delayed` | sorted set | messages parked until their due time (score = due ms) |
//! | `wal:{ns}:retry` | sorted set | scheduled retries (score = next attempt ms) |
//! | `wal:{ns}:parked` | sorted set (all scores 0, ordered by member) | messages of targets whose circuit breaker is open, `<target>\n<retry member>`, until the breaker lets them through |
//! | `wal:{ns}:workers` | hash, TTL | worker name → its report on the namespace (state, breakers), refreshed every few seconds |
//! | `wal:{ns}:dlq` | stream | dead-lettered messages with reason and history |
//! | `wal:{ns}:dlq:idx` | hash | message id → its DLQ entry ids (space-separated) |
//! | `wal:{ns}:idem:<key>` | string, TTL = dedup window | `Idempotency-Key` → the first write's message id, state (pending / confirmed), request fingerprint (see [`crate::idempotency`]) |
//! | `wal:{ns}:status:<id>` | hash, TTL | per-message delivery status |
//! | `wal:{ns}:rl` | hash | rate-limit state shared by all gateways |
//! | `wal:{ns}:settled:<digest>` | string, TTL 1 h | a Kafka/SQS settlement that wrote dead letters was applied (so sending it again writes nothing) |
//!
//! Consumer group on each partition stream: [`CONSUMER_GROUP`].

/// Name of the worker consumer group on every partition stream.
pub const CONSUMER_GROUP: &str = "wal-workers";

/// Builds the Redis keys of one namespace.
#[derive(Clone, Debug)]
pub struct NamespaceKeys {
    prefix: String,
}

impl NamespaceKeys {
    /// Keys of namespace `ns` (a validated namespace name).
    pub fn new(ns: &str) -> Self {
        Self {
            prefix: format!("wal:{{{ns}}}"),
        }
    }

    /// Partition stream `n`.
    pub fn stream(&self, partition: u32) -> String {
        format!("{}:p:{partition}", self.prefix)
    }

    /// Sorted set of delayed messages.
    pub fn delayed(&self) -> String {
        format!("{}:delayed", self.prefix)
    }

    /// Sorted set of scheduled retries.
    pub fn retry(&self) -> String {
        format!("{}:retry", self.prefix)
    }

    /// Sorted set of messages parked while their target's breaker is open.
    pub fn parked(&self) -> String {
        format!("{}:parked", self.prefix)
    }

    /// Reports of the workers consuming the namespace.
    pub fn workers(&self) -> String {
        format!("{}:workers", self.prefix)
    }

    /// The dead-letter stream.
    pub fn dlq(&self) -> String {
        format!("{}:dlq", self.prefix)
    }

    /// Index of the dead-letter stream: message id → entry ids.
    pub fn dlq_index(&self) -> String {
        format!("{}:dlq:idx", self.prefix)
    }

    /// Idempotency record of a client `Idempotency-Key`.
    pub fn idempotency(&self, key: &str) -> String {
        format!("{}:idem:{key}", self.prefix)
    }

    /// Status hash of one message.
    pub fn status(&self, message_id: &str) -> String {
        format!("{}:status:{message_id}", self.prefix)
    }

    /// Rate-limit state of the namespace.
    pub fn rate_limit(&self) -> String {
        format!("{}:rl", self.prefix)
    }

    /// Marker of an applied settlement (by the digest of its content).
    pub fn settled(&self, digest: &str) -> String {
        format!("{}:settled:{digest}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_keys_share_the_hash_tag() {
        let k = NamespaceKeys::new("orders");
        for key in [
            k.stream(3),
            k.delayed(),
            k.retry(),
            k.dlq(),
            k.dlq_index(),
            k.idempotency("x"),
            k.status("y"),
            k.rate_limit(),
            k.settled("d"),
        ] {
            assert!(key.starts_with("wal:{orders}:"), "{key}");
        }
        assert_eq!(k.stream(3), "wal:{orders}:p:3");
    }
}
