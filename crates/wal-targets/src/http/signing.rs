//! Standard Webhooks signatures: `v1,<base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))>`.
//!
//! The key is the base64-decoded part after `whsec_` when the secret has that
//! prefix (the Standard Webhooks secret format), otherwise the secret's bytes.

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Prefix of a Standard Webhooks secret whose rest is the base64 key.
const WHSEC_PREFIX: &str = "whsec_";

/// A signing secret that is not usable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidSigningSecret {
    /// It starts with `whsec_` but the rest is not standard base64.
    #[error("starts with `whsec_` but the rest is not valid base64")]
    NotBase64,
    /// The key is empty.
    #[error("the key is empty")]
    Empty,
}

/// The HMAC key of a webhook target. Its `Debug` output never shows the key.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

impl SigningKey {
    /// The key of `secret`: base64-decoded after `whsec_`, or the raw bytes.
    pub fn from_secret(secret: &str) -> Result<Self, InvalidSigningSecret> {
        let key = match secret.strip_prefix(WHSEC_PREFIX) {
            Some(b64) => BASE64
                .decode(b64)
                .map_err(|_| InvalidSigningSecret::NotBase64)?,
            None => secret.as_bytes().to_vec(),
        };
        if key.is_empty() {
            return Err(InvalidSigningSecret::Empty);
        }
        Ok(Self(key))
    }

    fn mac(&self, id: &str, timestamp: u64, body: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC accepts any key length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// The `webhook-signature` header value: `v1,<base64 signature>`.
    pub fn sign(&self, id: &str, timestamp: u64, body: &[u8]) -> String {
        let tag = self.mac(id, timestamp, body).finalize().into_bytes();
        format!("v1,{}", BASE64.encode(tag))
    }

    /// Whether `header` (space-separated `v1,<base64>` entries) holds a valid
    /// signature of this message. Compares in constant time.
    pub fn verify(&self, id: &str, timestamp: u64, body: &[u8], header: &str) -> bool {
        header.split_ascii_whitespace().any(|entry| {
            let Some(b64) = entry.strip_prefix("v1,") else {
                return false;
            };
            let Ok(sig) = BASE64.decode(b64) else {
                return false;
            };
            self.mac(id, timestamp, body).verify_slice(&sig).is_ok()
        })
    }
}

/// Whether `header` (a `webhook-signature` value) is a valid Standard
/// Webhooks signature of (`id`, `timestamp`, `body`) under `secret`
/// (`whsec_<base64>` or raw). Does not check that `timestamp` is recent: a
/// receiver should also refuse old timestamps.
pub fn verify_signature(secret: &str, id: &str, timestamp: u64, body: &[u8], header: &str) -> bool {
    SigningKey::from_secret(secret).is_ok_and(|key| key.verify(id, timestamp, body, header))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The test vector of the Standard Webhooks specification.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: u64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn matches_the_standard_webhooks_test_vector() {
        let key = SigningKey::from_secret(SECRET).unwrap();
        assert_eq!(key.sign(ID, TS, BODY), SIG);
        assert!(verify_signature(SECRET, ID, TS, BODY, SIG));
        assert!(verify_signature(
            SECRET,
            ID,
            TS,
            BODY,
            &format!("v1,bm9wZQ== {SIG}")
        ));
    }

    #[test]
    fn rejects_tampering() {
        assert!(!verify_signature(SECRET, ID, TS + 1, BODY, SIG));
        assert!(!verify_signature(SECRET, "msg_other", TS, BODY, SIG));
        assert!(!verify_signature(SECRET, ID, TS, br#"{"test": 1}"#, SIG));
        assert!(!verify_signature("whsec_c2VjcmV0", ID, TS, BODY, SIG));
        assert!(!verify_signature(SECRET, ID, TS, BODY, "v2,g0hM9SsE"));
        assert!(!verify_signature(SECRET, ID, TS, BODY, ""));
    }

    #[test]
    fn raw_secrets_and_bad_secrets() {
        let key = SigningKey::from_secret("plain-secret").unwrap();
        let sig = key.sign(ID, TS, BODY);
        assert!(verify_signature("plain-secret", ID, TS, BODY, &sig));
        assert_eq!(
            SigningKey::from_secret("whsec_***").unwrap_err(),
            InvalidSigningSecret::NotBase64
        );
        assert_eq!(
            SigningKey::from_secret("whsec_").unwrap_err(),
            InvalidSigningSecret::Empty
        );
        assert_eq!(format!("{key:?}"), "SigningKey(<redacted>)");
    }
}
