//! API keys as the service keeps them: SHA-256 hashes, never the clear key.
//!
//! A namespace's `accessControl.allowedApiKeys` is stored as hashes; a
//! request's `X-API-Key` is hashed once ([`ApiKeyHash::of`]) and compared
//! against the stored hashes in constant time, against *all* of them
//! ([`any_matches`]) so that the time taken does not tell which one matched.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

/// Prefix of a hashed key in the wire and stored form: `sha256:<64 lowercase hex>`.
pub const HASH_PREFIX: &str = "sha256:";

/// The SHA-256 hash of an API key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ApiKeyHash(pub [u8; 32]);

impl ApiKeyHash {
    /// The hash of a clear key.
    pub fn of(key: &str) -> Self {
        Self(Sha256::digest(key.as_bytes()).into())
    }

    /// 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits (lowercase only, so that one hash has exactly one
    /// spelling); `None` for anything else.
    pub fn from_hex(hex_digits: &str) -> Option<Self> {
        if hex_digits.len() != 64
            || !hex_digits
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return None;
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_digits, &mut out).ok()?;
        Some(Self(out))
    }

    /// The stored spelling: `sha256:<hex>`.
    pub fn to_prefixed(&self) -> String {
        format!("{HASH_PREFIX}{}", self.to_hex())
    }

    /// Parses the stored spelling `sha256:<hex>`.
    pub fn from_prefixed(s: &str) -> Option<Self> {
        s.strip_prefix(HASH_PREFIX).and_then(Self::from_hex)
    }

    /// A short, non-secret fingerprint: the first 8 hex digits of the hash.
    /// Used as the `actor` of audit records.
    pub fn fingerprint(&self) -> String {
        hex::encode(&self.0[..4])
    }

    /// Constant-time equality.
    pub fn ct_eq(&self, other: &ApiKeyHash) -> bool {
        bool::from(self.0.ct_eq(&other.0))
    }
}

impl fmt::Debug for ApiKeyHash {
    /// Only the fingerprint: enough to tell keys apart in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeyHash({}…)", self.fingerprint())
    }
}

/// Whether `presented` equals any of `hashes`, comparing against every one of
/// them in constant time (no early exit).
pub fn any_matches(hashes: &[ApiKeyHash], presented: &ApiKeyHash) -> bool {
    let mut found = Choice::from(0u8);
    for h in hashes {
        found |= h.0.ct_eq(&presented.0);
    }
    bool::from(found)
}

/// The audit `actor` for an admin key: the first 8 hex digits of its SHA-256.
pub fn actor_for_admin_key(key: &str) -> String {
    ApiKeyHash::of(key).fingerprint()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector_and_round_trip() {
        let h = ApiKeyHash::of("abc");
        assert_eq!(
            h.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(ApiKeyHash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(ApiKeyHash::from_prefixed(&h.to_prefixed()), Some(h));
        assert_eq!(h.fingerprint(), "ba7816bf");
        assert_eq!(actor_for_admin_key("abc"), "ba7816bf");
        assert!(ApiKeyHash::from_hex(&h.to_hex().to_uppercase()).is_none());
        assert!(ApiKeyHash::from_hex("abcd").is_none());
        assert!(!format!("{h:?}").contains(&h.to_hex()));
    }

    #[test]
    fn matching() {
        let a = ApiKeyHash::of("a-key-of-sixteen-chars");
        let b = ApiKeyHash::of("another-key-of-16-chars");
        assert!(a.ct_eq(&a));
        assert!(!a.ct_eq(&b));
        assert!(any_matches(&[b, a], &a));
        assert!(!any_matches(&[b], &a));
        assert!(!any_matches(&[], &a));
    }
}
