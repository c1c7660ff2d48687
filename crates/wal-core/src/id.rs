//! Message ids: ULIDs, so that ids sort by creation time (useful in logs, in the
//! DLQ listing and when comparing with stream entry ids) and are unique across
//! gateway instances without coordination.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A time-sortable, globally unique message id (a ULID, 26 Crockford base32 chars).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(ulid::Ulid);

impl MessageId {
    /// A new id for the current time.
    pub fn generate() -> Self {
        Self(ulid::Ulid::new())
    }

    /// Milliseconds since the Unix epoch encoded in the id.
    pub fn timestamp_ms(&self) -> u64 {
        self.0.timestamp_ms()
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Error returned when a string is not a valid message id.
#[derive(Debug, thiserror::Error)]
#[error("not a valid message id (expected a 26-character ULID)")]
pub struct InvalidMessageId;

impl FromStr for MessageId {
    type Err = InvalidMessageId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ulid::Ulid::from_string(s)
            .map(Self)
            .map_err(|_| InvalidMessageId)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_sortable_by_time() {
        let a = MessageId::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = MessageId::generate();
        assert!(a < b);
        assert!(a.to_string() < b.to_string());
        assert_eq!(a.to_string().parse::<MessageId>().unwrap(), a);
        assert!("nope".parse::<MessageId>().is_err());
    }
}
