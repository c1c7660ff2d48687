//! What happened to a message on its way out: the attempt history carried in
//! the envelope, the dead-letter record, and the per-message status record.
//!
//! These are shared by the worker (which writes them) and the gateway (which
//! reads them for the message-status and DLQ endpoints), so their encoding
//! lives here, next to the key layout in [`crate::keys`].
//!
//! ## Status record
//!
//! `wal:{ns}:status:<id>` is a hash with one field per target, `t:<target>`,
//! whose value is a JSON [`TargetStatus`], plus `createdAtMs`. Its TTL is the
//! worker's status retention, renewed on every write. The message's overall
//! state is derived from its targets' states by [`MessageState::combine`].
//!
//! ## Dead-letter record
//!
//! One entry of the DLQ stream `wal:{ns}:dlq` per *(message, target)* that
//! failed, with the fields of [`DlqRecord`] (see [`DlqRecord::fields`]). The
//! envelope stored with it is narrowed to that one target, so a requeue
//! re-delivers only what failed. The hash `wal:{ns}:dlq:idx` maps a message
//! id to the space-separated DLQ entry ids of that message.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One delivery attempt of one target, as kept in the envelope's history and
/// shown in the DLQ.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptRecord {
    /// Target identifier.
    pub target: String,
    /// Attempt number (1 for the first).
    pub attempt: u32,
    /// When the attempt ended (ms since epoch).
    pub at_ms: u64,
    /// `retryable` or `permanent`.
    pub outcome: String,
    /// What went wrong.
    pub error: String,
}

/// Most attempt records kept in an envelope (the oldest are dropped).
pub const MAX_HISTORY: usize = 25;

/// Why a message was dead-lettered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DlqReason {
    /// The target kept failing until the retry policy's `maxAttempts`.
    MaxAttempts,
    /// The target refused the message in a way retrying cannot fix.
    Permanent,
    /// The message's TTL passed before it was delivered.
    Expired,
    /// The entry was handed out too many times without an ack (it keeps
    /// crashing or stalling workers).
    Poison,
    /// The entry could not be decoded.
    Malformed,
    /// The message names a target the namespace does not (or no longer) define.
    UnknownTarget,
    /// The entry's envelope belongs to another namespace than the log it
    /// was read from: never delivered to this namespace's targets.
    Foreign,
}

impl DlqReason {
    /// Every reason, for validation of filters.
    pub const ALL: [DlqReason; 7] = [
        DlqReason::MaxAttempts,
        DlqReason::Permanent,
        DlqReason::Expired,
        DlqReason::Poison,
        DlqReason::Malformed,
        DlqReason::UnknownTarget,
        DlqReason::Foreign,
    ];

    /// The wire name (`max_attempts`, …).
    pub fn as_str(&self) -> &'static str {
        match self {
            DlqReason::MaxAttempts => "max_attempts",
            DlqReason::Permanent => "permanent",
            DlqReason::Expired => "expired",
            DlqReason::Poison => "poison",
            DlqReason::Malformed => "malformed",
            DlqReason::UnknownTarget => "unknown_target",
            DlqReason::Foreign => "foreign",
        }
    }
}

impl fmt::Display for DlqReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an unknown DLQ reason name.
#[derive(Debug, thiserror::Error)]
#[error("unknown dead-letter reason (expected one of max_attempts, permanent, expired, poison, malformed, unknown_target, foreign)")]
pub struct UnknownDlqReason;

impl FromStr for DlqReason {
    type Err = UnknownDlqReason;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DlqReason::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or(UnknownDlqReason)
    }
}

/// One dead-lettered *(message, target)*.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DlqRecord {
    /// Message id, or `malformed-<partition>-<entry id>` for an undecodable entry.
    pub message_id: String,
    /// Why it was dead-lettered.
    pub reason: DlqReason,
    /// The target that failed (empty when the whole entry failed: malformed, poison).
    pub target: String,
    /// The last error.
    pub error: String,
    /// Attempts made on that target.
    pub attempts: u32,
    /// Partition the entry came from.
    pub partition: u32,
    /// When it was dead-lettered (ms since epoch).
    pub at_ms: u64,
    /// The envelope (narrowed to `target`), or the raw entry when malformed.
    pub body: Vec<u8>,
}

/// Field names of a DLQ stream entry.
pub mod dlq_fields {
    /// Message id.
    pub const ID: &str = "id";
    /// [`super::DlqReason`] wire name.
    pub const REASON: &str = "reason";
    /// Target identifier.
    pub const TARGET: &str = "target";
    /// Last error.
    pub const ERROR: &str = "error";
    /// Attempts made.
    pub const ATTEMPTS: &str = "attempts";
    /// Source partition.
    pub const PARTITION: &str = "partition";
    /// Dead-lettered at (ms).
    pub const AT: &str = "at";
    /// Envelope or raw bytes.
    pub const ENV: &str = "env";
}

/// Why stream-entry fields are not a DLQ record.
#[derive(Debug, thiserror::Error)]
#[error("not a dead-letter record: {0}")]
pub struct InvalidDlqRecord(pub String);

impl DlqRecord {
    /// The record as stream-entry fields (name, value), in a fixed order.
    pub fn fields(&self) -> Vec<(&'static str, Vec<u8>)> {
        use dlq_fields::*;
        vec![
            (ID, self.message_id.clone().into_bytes()),
            (REASON, self.reason.as_str().as_bytes().to_vec()),
            (TARGET, self.target.clone().into_bytes()),
            (ERROR, self.error.clone().into_bytes()),
            (ATTEMPTS, self.attempts.to_string().into_bytes()),
            (PARTITION, self.partition.to_string().into_bytes()),
            (AT, self.at_ms.to_string().into_bytes()),
            (ENV, self.body.clone()),
        ]
    }

    /// Parses stream-entry fields back into a record.
    pub fn from_fields(fields: &BTreeMap<String, Vec<u8>>) -> Result<DlqRecord, InvalidDlqRecord> {
        use dlq_fields::*;
        let text = |name: &str| -> Result<String, InvalidDlqRecord> {
            let bytes = fields
                .get(name)
                .ok_or_else(|| InvalidDlqRecord(format!("missing field `{name}`")))?;
            String::from_utf8(bytes.clone())
                .map_err(|_| InvalidDlqRecord(format!("field `{name}` is not UTF-8")))
        };
        let number = |name: &str| -> Result<u64, InvalidDlqRecord> {
            text(name)?
                .parse()
                .map_err(|_| InvalidDlqRecord(format!("field `{name}` is not a number")))
        };
        Ok(DlqRecord {
            message_id: text(ID)?,
            reason: text(REASON)?
                .parse()
                .map_err(|e: UnknownDlqReason| InvalidDlqRecord(e.to_string()))?,
            target: text(TARGET)?,
            error: text(ERROR)?,
            attempts: number(ATTEMPTS)? as u32,
            partition: number(PARTITION)? as u32,
            at_ms: number(AT)?,
            body: fields.get(ENV).cloned().unwrap_or_default(),
        })
    }
}

/// Where one target of a message stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TargetState {
    /// Read by a worker, delivery under way.
    Pending,
    /// Parked until its due time.
    Delayed,
    /// A failed attempt; the next one is scheduled.
    Retrying,
    /// Not attempted: its target's circuit breaker is open; parked until
    /// the breaker lets it through (attempts unchanged).
    Paused,
    /// The target accepted it.
    Delivered,
    /// Given up: in the DLQ (or dropped when the DLQ is disabled).
    DeadLettered,
}

/// Status of one target of a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetStatus {
    /// The state.
    pub state: TargetState,
    /// Attempts made so far.
    pub attempt: u32,
    /// When this state was recorded (ms since epoch).
    pub updated_at_ms: u64,
    /// Delayed / retrying: when the next attempt is due (ms since epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_at_ms: Option<u64>,
    /// The last error, if an attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Dead-lettered: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<DlqReason>,
}

/// Prefix of a target's field in the status hash.
pub const STATUS_TARGET_FIELD_PREFIX: &str = "t:";

/// Status-hash field counting how many times a worker took the message
/// from a backend that does not count deliveries itself (Kafka).
pub const DELIVERY_COUNT_FIELD: &str = "deliveries";

/// The status-hash field of `target`.
pub fn status_field(target: &str) -> String {
    format!("{STATUS_TARGET_FIELD_PREFIX}{target}")
}

/// A message's overall state, derived from its targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageState {
    /// Some target is still being delivered for the first time.
    Pending,
    /// Waiting for its due time.
    Delayed,
    /// Some target failed and waits for its next attempt.
    Retrying,
    /// Every target accepted it.
    Delivered,
    /// Some target gave up (the others may have been delivered).
    DeadLettered,
}

impl MessageState {
    /// The overall state: dead-lettered if any target is, else retrying,
    /// delayed, pending, and delivered only when every target is.
    pub fn combine<'a>(states: impl IntoIterator<Item = &'a TargetState>) -> MessageState {
        let mut overall = MessageState::Delivered;
        let rank = |s: MessageState| match s {
            MessageState::Delivered => 0,
            MessageState::Pending => 1,
            MessageState::Delayed => 2,
            MessageState::Retrying => 3,
            MessageState::DeadLettered => 4,
        };
        for s in states {
            let m = match s {
                TargetState::Pending => MessageState::Pending,
                TargetState::Delayed => MessageState::Delayed,
                // Paused: waiting for a later attempt, like a retry.
                TargetState::Retrying | TargetState::Paused => MessageState::Retrying,
                TargetState::Delivered => MessageState::Delivered,
                TargetState::DeadLettered => MessageState::DeadLettered,
            };
            if rank(m) > rank(overall) {
                overall = m;
            }
        }
        overall
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dlq_record_round_trips_through_fields() {
        let rec = DlqRecord {
            message_id: "01J00000000000000000000000".into(),
            reason: DlqReason::MaxAttempts,
            target: "sink".into(),
            error: "HTTP 500".into(),
            attempts: 3,
            partition: 2,
            at_ms: 42,
            body: b"{\"v\":1}".to_vec(),
        };
        let fields: BTreeMap<String, Vec<u8>> = rec
            .fields()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(DlqRecord::from_fields(&fields).unwrap(), rec);
    }

    #[test]
    fn dlq_record_with_a_missing_field_is_refused() {
        let fields = BTreeMap::from([("id".to_string(), b"x".to_vec())]);
        let err = DlqRecord::from_fields(&fields).unwrap_err();
        assert!(err.to_string().contains("reason"), "{err}");
    }

    #[test]
    fn reasons_parse_from_their_wire_names() {
        for r in DlqReason::ALL {
            assert_eq!(r.as_str().parse::<DlqReason>().unwrap(), r);
            assert_eq!(
                serde_json::to_string(&r).unwrap(),
                format!("\"{}\"", r.as_str())
            );
        }
        assert!("nope".parse::<DlqReason>().is_err());
    }

    #[test]
    fn overall_state_is_the_worst_target_state() {
        use TargetState::*;
        assert_eq!(
            MessageState::combine(&[Delivered, Delivered]),
            MessageState::Delivered
        );
        assert_eq!(
            MessageState::combine(&[Delivered, Retrying]),
            MessageState::Retrying
        );
        assert_eq!(
            MessageState::combine(&[DeadLettered, Retrying]),
            MessageState::DeadLettered
        );
        assert_eq!(MessageState::combine(&[Delayed]), MessageState::Delayed);
        assert_eq!(MessageState::combine(&[]), MessageState::Delivered);
    }
}
