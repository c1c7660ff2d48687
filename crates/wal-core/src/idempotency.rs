//! What is remembered of a client's `Idempotency-Key`: the first write's
//! message id, whether that write is known to be recorded (`Confirmed`) or
//! not yet (`Pending`), and a fingerprint of the request, so that the same
//! key sent with another request is refused rather than answered as a
//! duplicate (IETF `Idempotency-Key` draft).
//!
//! Stored as one Redis string `<message id>|<p|c>|<fingerprint>|<since ms>`,
//! read and written by the producers' Lua scripts as well as here; a record
//! written before states existed (just the message id) reads as confirmed
//! with no fingerprint.

use crate::backend::PublishOutcome;
use crate::{Durability, MessageId};

/// Whether the first write with a key is known to be recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordState {
    /// Claimed, and the publish is in flight, failed unknowingly, or waits
    /// for replicas that have not confirmed it: a duplicate is `UNKNOWN`.
    Pending,
    /// The backend confirmed the write: a duplicate is `TRUE`.
    Confirmed,
}

impl RecordState {
    /// The one-letter code in the stored record.
    pub fn code(self) -> &'static str {
        match self {
            RecordState::Pending => "p",
            RecordState::Confirmed => "c",
        }
    }
}

/// A decoded idempotency record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// The first write's message id.
    pub message_id: MessageId,
    /// Whether that write is known to be recorded.
    pub state: RecordState,
    /// Fingerprint of the first write's request; empty when unknown.
    pub fingerprint: String,
    /// When the record was claimed (Redis clock, ms), 0 when not kept.
    pub since_ms: u64,
}

impl IdempotencyRecord {
    /// The stored form.
    pub fn encode(&self) -> String {
        format!(
            "{}|{}|{}|{}",
            self.message_id,
            self.state.code(),
            self.fingerprint,
            self.since_ms
        )
    }

    /// Reads a stored record; `None` when it is not one.
    pub fn decode(raw: &str) -> Option<Self> {
        let mut parts = raw.splitn(4, '|');
        let message_id = parts.next()?.parse().ok()?;
        let Some(state) = parts.next() else {
            // A bare message id: a record from before states were kept.
            return Some(Self {
                message_id,
                state: RecordState::Confirmed,
                fingerprint: String::new(),
                since_ms: 0,
            });
        };
        let state = match state {
            "p" => RecordState::Pending,
            "c" => RecordState::Confirmed,
            _ => return None,
        };
        let fingerprint = parts.next()?.to_string();
        let since_ms = parts.next()?.parse().ok()?;
        Some(Self {
            message_id,
            state,
            fingerprint,
            since_ms,
        })
    }

    /// Whether a request with `fingerprint` is the one this record was made
    /// for (an unknown fingerprint matches any).
    pub fn matches(&self, fingerprint: &str) -> bool {
        self.fingerprint.is_empty() || self.fingerprint == fingerprint
    }

    /// The answer to a write with `fingerprint` that found this record: a
    /// duplicate no more durable than what is known of the first write, or
    /// a reused key.
    pub fn outcome_for(&self, fingerprint: &str) -> PublishOutcome {
        if !self.matches(fingerprint) {
            return PublishOutcome::KeyReused {
                original: self.message_id,
            };
        }
        PublishOutcome::Duplicate {
            original: self.message_id,
            durability: match self.state {
                RecordState::Confirmed => Durability::True,
                RecordState::Pending => Durability::Unknown,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_bare_ids_read_as_confirmed() {
        let record = IdempotencyRecord {
            message_id: MessageId::generate(),
            state: RecordState::Pending,
            fingerprint: "ab12".into(),
            since_ms: 42,
        };
        assert_eq!(
            IdempotencyRecord::decode(&record.encode()),
            Some(record.clone())
        );
        let bare = IdempotencyRecord::decode(&record.message_id.to_string()).unwrap();
        assert_eq!(bare.state, RecordState::Confirmed);
        assert!(bare.matches("anything"));
        assert!(record.matches("ab12"));
        assert!(!record.matches("cd34"));
        assert_eq!(IdempotencyRecord::decode("not an id|p|x|1"), None);
        assert_eq!(
            IdempotencyRecord::decode(&format!("{}|z|x|1", record.message_id)),
            None
        );
    }
}
