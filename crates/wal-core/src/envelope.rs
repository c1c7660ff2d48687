//! The enriched message appended to the log: the request after validation,
//! plus everything the worker needs to deliver it without asking the gateway.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::delivery::AttemptRecord;
use crate::id::MessageId;
use crate::request::TargetRef;
use crate::retry::RetryPolicy;

/// Version of the envelope encoding; a worker refuses (dead-letters as
/// `malformed`) a version it does not know.
pub const ENVELOPE_VERSION: u8 = 1;

/// W3C trace context carried inside the message, so the worker's delivery
/// span continues the gateway's request trace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceContext {
    /// The `traceparent` header of the write request, if valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The `tracestate` header of the write request, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
}

/// Delivery rules resolved at write time from the request and the namespace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedLifecycle {
    /// The effective retry policy.
    pub retry_policy: RetryPolicy,
    /// Whether failed deliveries are dead-lettered (otherwise dropped with a log line).
    pub enable_dlq: bool,
    /// When the message expires undelivered (ms since epoch), if it has a TTL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
}

/// One message as recorded in the log.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// Encoding version, [`ENVELOPE_VERSION`].
    pub v: u8,
    /// Unique, time-sortable id.
    pub id: MessageId,
    /// Namespace (normalized).
    pub namespace: String,
    /// The client's payload, byte for byte.
    pub payload: Box<RawValue>,
    /// Targets to deliver to, resolved at write time (never empty).
    pub targets: Vec<TargetRef>,
    /// Retry, DLQ and expiry rules.
    pub lifecycle: ResolvedLifecycle,
    /// The request's routing key, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_key: Option<String>,
    /// Partition the message was routed to.
    pub partition: u32,
    /// `X-Request-ID` of the write.
    pub request_id: String,
    /// Trace context of the write.
    #[serde(default)]
    pub trace: TraceContext,
    /// When the gateway accepted the write (ms since epoch).
    pub created_at_ms: u64,
    /// Earliest delivery time (ms since epoch): creation + delay + jitter.
    pub due_at_ms: u64,
    /// Delivery attempts made so far (0 when written).
    pub attempt: u32,
    /// The request's metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, serde_json::Value>>,
    /// The request's priority hint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    /// The request's tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Failed attempts so far (most recent last, at most
    /// [`MAX_HISTORY`](crate::delivery::MAX_HISTORY)), carried through
    /// retries so the DLQ shows the whole story.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<AttemptRecord>,
}

/// Why bytes read from the log are not a usable envelope.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON of the envelope's shape.
    #[error("undecodable envelope: {0}")]
    Json(#[from] serde_json::Error),
    /// An encoding version this build does not know.
    #[error("unsupported envelope version {0}")]
    Version(u8),
}

impl Envelope {
    /// The envelope as JSON bytes, as appended to the log.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an envelope always serializes")
    }

    /// Parses bytes read from the log.
    pub fn decode(bytes: &[u8]) -> Result<Envelope, DecodeError> {
        let env: Envelope = serde_json::from_slice(bytes)?;
        if env.v != ENVELOPE_VERSION {
            return Err(DecodeError::Version(env.v));
        }
        Ok(env)
    }

    /// Records a failed attempt, keeping at most the last
    /// [`MAX_HISTORY`](crate::delivery::MAX_HISTORY).
    pub fn record_attempt(&mut self, record: AttemptRecord) {
        self.history.push(record);
        let excess = self
            .history
            .len()
            .saturating_sub(crate::delivery::MAX_HISTORY);
        self.history.drain(..excess);
    }

    /// Whether the message is due at `now_ms`.
    pub fn is_due(&self, now_ms: u64) -> bool {
        self.due_at_ms <= now_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Envelope {
        Envelope {
            v: ENVELOPE_VERSION,
            id: MessageId::generate(),
            namespace: "orders".into(),
            payload: RawValue::from_string(r#"{"a": 1.000000000000000001}"#.into()).unwrap(),
            targets: vec![TargetRef::named("orders-api")],
            lifecycle: ResolvedLifecycle {
                retry_policy: RetryPolicy::default(),
                enable_dlq: true,
                expires_at_ms: Some(10),
            },
            partition_key: Some("k".into()),
            partition: 2,
            request_id: "req-1".into(),
            trace: TraceContext {
                traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
                tracestate: None,
            },
            created_at_ms: 1,
            due_at_ms: 2,
            attempt: 0,
            metadata: None,
            priority: Some(5),
            tags: vec!["t".into()],
            history: Vec::new(),
        }
    }

    #[test]
    fn round_trips_and_keeps_payload_bytes() {
        let env = sample();
        let back = Envelope::decode(&env.encode()).unwrap();
        assert_eq!(back.id, env.id);
        assert_eq!(back.payload.get(), r#"{"a": 1.000000000000000001}"#);
        assert_eq!(back.targets, env.targets);
        assert_eq!(back.trace, env.trace);
        assert_eq!(back.lifecycle, env.lifecycle);
    }

    #[test]
    fn rejects_garbage_and_unknown_versions() {
        assert!(matches!(
            Envelope::decode(b"not json"),
            Err(DecodeError::Json(_))
        ));
        let mut env = sample();
        env.v = 99;
        assert!(matches!(
            Envelope::decode(&env.encode()),
            Err(DecodeError::Version(99))
        ));
    }
}
