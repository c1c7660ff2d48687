//! Kafka backend (rdkafka with its bundled librdkafka).
//!
//! ## Layout
//!
//! A namespace's log is one topic ([`LogSettings::topic`]) with
//! `partitionCount` partitions, created by [`ensure_topic`] (the admin API;
//! an existing topic is never changed). The gateway routes each message
//! itself ([`Envelope::partition`]) and the producer writes it to exactly
//! that partition; the message key is the request's routing key (or the
//! message id), so a compacted or re-keyed copy of the topic keeps the same
//! grouping. The value is the JSON [`Envelope`]; headers repeat its metadata
//! for tools that read the topic without decoding it:
//!
//! | header | value |
//! | --- | --- |
//! | `wal-message-id` | the message id |
//! | `wal-namespace` | the namespace |
//! | `wal-request-id` | `X-Request-ID` of the write |
//! | `traceparent`, `tracestate` | W3C trace context, when present |
//! | `wal-due-at-ms` | earliest delivery time, decimal ms since epoch |
//! | `wal-meta-<key>` | each `metadata` entry as JSON (up to [`META_HEADER_BUDGET`] bytes in all) |
//!
//! ## Durability
//!
//! The producer is idempotent with `acks=all`: `TRUE` means the partition
//! leader answered the produce request after every in-sync replica had the
//! record, as reported by librdkafka's delivery report — never earlier. A
//! message librdkafka refused to queue (queue full, unknown partition, too
//! large) answers `FALSE` at once; one that was queued but whose delivery
//! report is a timeout or a transport failure answers `UNKNOWN` (it may have
//! been written); one the broker refused outright answers `FALSE`. Each
//! publish answers within about [`KafkaClientConfig::message_timeout`]
//! (librdkafka's `message.timeout.ms`, which also bounds its internal
//! retries) plus a second.
//!
//! ## Consumer
//!
//! See [`KafkaConsumer`]: a consumer-group member whose acks may arrive in any
//! order; per partition it commits only up to the lowest offset not yet
//! handled, so an out-of-order ack never skips a message (at-least-once).

mod admin;
mod consumer;
mod offsets;
mod producer;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use wal_core::backend::BackendError;

pub use admin::{ensure_topic, TopicState};
pub use consumer::{KafkaConsumer, KafkaConsumerSettings};
pub use producer::KafkaProducer;

/// The rdkafka crate this backend is built on, for tests and tools that
/// need a raw client (e.g. to read record headers back).
#[doc(hidden)]
pub use rdkafka;

#[cfg(doc)]
use wal_core::{backend::LogSettings, Envelope};

/// Largest encoded entry (envelope bytes) the Kafka backend takes.
///
/// librdkafka refuses a record larger than its `message.max.bytes`
/// (1 000 000 by default, just under the broker's default 1 048 588), counting
/// the value, the key and the headers. The key is at most 256 bytes (the
/// longest routing key), the fixed headers a few hundred bytes and the
/// metadata headers at most [`META_HEADER_BUDGET`]; 960 000 leaves room for
/// all of them and the record framing, so an entry within this limit is never
/// refused for its size by a broker with default settings.
pub const KAFKA_MAX_ENTRY_BYTES: usize = 960_000;

/// Most bytes (keys and values) the `wal-meta-*` headers of one message may
/// take; further metadata entries are left out of the headers (they stay in
/// the envelope, which is the record of truth).
pub const META_HEADER_BUDGET: usize = 16 * 1024;

/// `reconnect.backoff.max.ms`. librdkafka only checks a partition's queued
/// messages for `message.timeout.ms` when the leader's broker thread wakes
/// up, which while the broker is down is at its next reconnect attempt; with
/// the default 10 s backoff a publish during an outage answered up to 10 s
/// late. 1 s keeps answers within about `message_timeout` + 1 s (and
/// reconnects quickly when the broker is back).
const RECONNECT_BACKOFF_MAX_MS: &str = "1000";

/// Connection settings of one Kafka cluster; equal settings share one client.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KafkaClientConfig {
    /// `bootstrap.servers`: `host:port` pairs, comma separated.
    pub brokers: String,
    /// Extra librdkafka properties (`security.protocol`, `sasl.*`, …), with
    /// secrets already resolved by the caller. Applied after the backend's
    /// own settings, so they may override them. Never logged: `Debug` shows
    /// the values of keys containing `password` or `secret` as `<redacted>`.
    pub properties: BTreeMap<String, String>,
    /// Producer `message.timeout.ms`: how long a publish may take (including
    /// librdkafka's retries) before it answers.
    pub message_timeout: Duration,
}

impl KafkaClientConfig {
    /// Settings for `brokers` with no extra properties and a 10 s message timeout.
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            properties: BTreeMap::new(),
            message_timeout: Duration::from_secs(10),
        }
    }

    /// A librdkafka configuration with the bootstrap servers, `ours`, then
    /// the caller's properties (which win).
    fn client_config(&self, ours: &[(&str, String)]) -> ClientConfig {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &self.brokers);
        for (k, v) in ours {
            cfg.set(*k, v);
        }
        for (k, v) in &self.properties {
            cfg.set(k, v);
        }
        cfg.set_log_level(RDKafkaLogLevel::Warning);
        cfg
    }
}

/// Whether a property's value must never be shown.
fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.contains("password") || key.contains("secret")
}

impl fmt::Debug for KafkaClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Redacted<'a>(&'a BTreeMap<String, String>);
        impl fmt::Debug for Redacted<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_map()
                    .entries(self.0.iter().map(|(k, v)| {
                        let shown = if is_secret_key(k) { "<redacted>" } else { v };
                        (k, shown)
                    }))
                    .finish()
            }
        }
        f.debug_struct("KafkaClientConfig")
            .field("brokers", &self.brokers)
            .field("properties", &Redacted(&self.properties))
            .field("message_timeout", &self.message_timeout)
            .finish()
    }
}

/// Routes librdkafka's log lines and error events to `tracing`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TracingContext;

impl ClientContext for TracingContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log_line(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(target: "librdkafka", error = %safe_error(&error), "{reason}");
    }
}

fn log_line(level: RDKafkaLogLevel, fac: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", fac, "{message}"),
        RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", fac, "{message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", fac, "{message}")
        }
        RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", fac, "{message}"),
    }
}

/// The error as text, without the offending value of a configuration error
/// (it may be a password).
fn safe_error(e: &KafkaError) -> String {
    match e {
        KafkaError::ClientConfig(_, desc, key, _) if is_secret_key(key) => {
            format!(
                "invalid client configuration for {key}: {}",
                redact_desc(desc)
            )
        }
        KafkaError::ClientConfig(_, desc, key, value) => {
            format!("invalid client configuration {key}={value}: {desc}")
        }
        other => other.to_string(),
    }
}

/// librdkafka's description of a bad setting quotes the value; drop the quote.
fn redact_desc(desc: &str) -> &str {
    desc.split('"').next().unwrap_or("").trim_end()
}

/// Codes meaning the cluster could not be reached (rather than that it
/// answered with an error).
fn is_transport(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::Resolve
            | RDKafkaErrorCode::OperationTimedOut
            | RDKafkaErrorCode::MessageTimedOut
            | RDKafkaErrorCode::TimedOutQueue
            | RDKafkaErrorCode::RequestTimedOut
            | RDKafkaErrorCode::NetworkException
            | RDKafkaErrorCode::BrokerNotAvailable
            | RDKafkaErrorCode::LeaderNotAvailable
            | RDKafkaErrorCode::NotLeaderForPartition
            | RDKafkaErrorCode::CoordinatorNotAvailable
            | RDKafkaErrorCode::NotCoordinator
            | RDKafkaErrorCode::CoordinatorLoadInProgress
            | RDKafkaErrorCode::QueueFull
            | RDKafkaErrorCode::SSL
            | RDKafkaErrorCode::Authentication
    )
}

/// Maps an rdkafka error to the backend-neutral error type.
fn backend_error(e: &KafkaError) -> BackendError {
    let unavailable =
        e.rdkafka_error_code().is_some_and(is_transport) || matches!(e, KafkaError::Canceled);
    if unavailable {
        BackendError::Unavailable(safe_error(e))
    } else {
        BackendError::Other(safe_error(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_secrets() {
        let mut cfg = KafkaClientConfig::new("127.0.0.1:9092");
        cfg.properties
            .insert("sasl.password".into(), "hunter2".into());
        cfg.properties
            .insert("ssl.key.SECRET".into(), "s3cr3t".into());
        cfg.properties
            .insert("security.protocol".into(), "SASL_SSL".into());
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("SASL_SSL"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn config_errors_never_show_secret_values() {
        let mut cfg = KafkaClientConfig::new("127.0.0.1:9092");
        cfg.properties
            .insert("sasl.password.nonsense".into(), "hunter2".into());
        let err = cfg
            .client_config(&[])
            .create::<rdkafka::producer::BaseProducer>()
            .err()
            .expect("an unknown property is refused");
        let shown = backend_error(&err).to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("sasl.password.nonsense"), "{shown}");
    }
}
