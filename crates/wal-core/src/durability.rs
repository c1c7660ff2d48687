//! The durability answer of a write (SPEC §2).

use serde::{Deserialize, Serialize};

/// Whether a write is known to be recorded by the backend.
///
/// A three-valued ("Trilean") answer: `True` only after the backend
/// acknowledged the append, `False` when it certainly was not recorded (the
/// client must retry), `Unknown` when the request left but no answer came back
/// in time (the client should retry with the same `Idempotency-Key`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Durability {
    /// The backend acknowledged the write.
    True,
    /// The write was not recorded.
    False,
    /// The write may or may not have been recorded.
    Unknown,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_as_upper_case_words() {
        assert_eq!(
            serde_json::to_string(&Durability::True).unwrap(),
            "\"TRUE\""
        );
        assert_eq!(
            serde_json::to_string(&Durability::False).unwrap(),
            "\"FALSE\""
        );
        assert_eq!(
            serde_json::to_string(&Durability::Unknown).unwrap(),
            "\"UNKNOWN\""
        );
    }
}
