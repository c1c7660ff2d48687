//! # wal-targets
//!
//! Delivery targets: where the worker sends a message. Each target only
//! *classifies* the outcome of one attempt — [`DeliveryOutcome::Delivered`],
//! [`DeliveryOutcome::Retry`] (with an optional earliest time, e.g. from
//! `Retry-After`) or [`DeliveryOutcome::Permanent`]; *when* to try again is
//! decided once, for every target, by the message's
//! [`RetryPolicy`](wal_core::RetryPolicy).
//!
//! Targets are built from a namespace's validated
//! [`TargetConfig`](wal_namespace::targets::TargetConfig) by one
//! [`TargetFactory::build`], which shares one HTTP client (no redirects),
//! one PostgreSQL pool per DSN and one Redis client per URL between all
//! targets; nothing connects before the first delivery, and
//! [`TargetFactory::shutdown`] closes them. Secrets (DSN, cache URL, signing
//! secret) are read from the referenced environment variable or file
//! (trimmed) when the target is built; a missing or unusable one is a
//! [`TargetBuildError`] naming the variable or file, never the value.
//! Every attempt runs inside a `deliver` span (namespace, target, message id,
//! attempt), is bounded by [`Target::timeout`] (the target's `timeoutMs`),
//! and never panics on bad input: an unusable payload is `Permanent`.
//!
//! ## Layout
//!
//! * [`http`] — `http` and `webhook` targets. The body is the payload bytes
//!   (or the envelope, `body: envelope`); every request carries
//!   `Idempotency-Key` and `X-WAL-Message-Id` (the message id),
//!   `X-WAL-Attempt`, `X-WAL-Namespace` and the write's `traceparent` /
//!   `tracestate`. Webhooks (and HTTP targets with a signing secret) are
//!   signed the Standard Webhooks way (`webhook-id`, `webhook-timestamp`,
//!   `webhook-signature: v1,<base64 HMAC-SHA256>`); [`verify_signature`]
//!   checks one. 2xx delivered; 408, 429, 5xx, timeouts and connection errors
//!   retry (`Retry-After` honoured on 429 and 503); other statuses,
//!   redirects included, are permanent.
//! * [`postgres`] — `database` targets: insert / upsert / delete of the
//!   payload's fields through `jsonb_populate_record` (PostgreSQL converts
//!   the types), or a statement with `:name` parameters. Each message is
//!   applied **exactly once**: the row `(message id, target)` goes into
//!   `wal_delivery_ledger` in the same transaction as the mutation, and a
//!   message already in the ledger is answered `Delivered` without applying
//!   it again. SQLSTATE classes 08, 40, 53, 57, 58 (and connection errors,
//!   timeouts) retry; other SQL errors are permanent.
//! * [`redis`] — `cache` targets: `SET` (with `EX`), `DEL` or `HSET`
//!   (+ `EXPIRE`) of `prefix + payload[keyField]`. Connection errors and
//!   timeouts retry; a wrong type or an unusable payload is permanent.

use std::time::Duration;

use async_trait::async_trait;
use wal_core::request::TargetRef;
use wal_core::Envelope;

mod error;
mod factory;
pub mod http;
mod payload;
pub mod postgres;
pub mod redis;
mod secret;
mod traced;

pub use error::TargetBuildError;
pub use factory::TargetFactory;
pub use http::{verify_signature, SigningKey};
pub use postgres::LEDGER_TABLE;

/// Longest `reason` kept in a [`DeliveryOutcome`], in bytes.
pub const MAX_REASON_LEN: usize = 1024;

/// One delivery attempt of one message to one target.
#[derive(Clone, Debug)]
pub struct Delivery<'a> {
    /// The message.
    pub envelope: &'a Envelope,
    /// The request's reference to this target, with its overrides.
    pub target: &'a TargetRef,
    /// Attempt number, 1 for the first.
    pub attempt: u32,
}

/// What one attempt came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The target accepted the message.
    Delivered,
    /// A transient failure (timeout, connection error, 5xx, 408, 429): try again.
    Retry {
        /// Earliest time to try again, when the target said (`Retry-After`).
        after: Option<Duration>,
        /// What went wrong, for the status record and the DLQ.
        reason: String,
    },
    /// A failure that retrying cannot fix (other 4xx, bad config): dead-letter now.
    Permanent {
        /// What went wrong.
        reason: String,
    },
}

impl DeliveryOutcome {
    /// A [`Retry`](Self::Retry) with no earliest time; `reason` is cut to
    /// [`MAX_REASON_LEN`].
    pub fn retry(reason: impl Into<String>) -> Self {
        Self::Retry {
            after: None,
            reason: truncate_reason(reason.into()),
        }
    }

    /// A [`Permanent`](Self::Permanent) failure; `reason` is cut to [`MAX_REASON_LEN`].
    pub fn permanent(reason: impl Into<String>) -> Self {
        Self::Permanent {
            reason: truncate_reason(reason.into()),
        }
    }

    /// `delivered`, `retry` or `permanent` (a bounded label for logs and metrics).
    pub fn label(&self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Retry { .. } => "retry",
            Self::Permanent { .. } => "permanent",
        }
    }
}

/// Cuts `reason` to at most [`MAX_REASON_LEN`] bytes, on a character boundary.
pub(crate) fn truncate_reason(mut reason: String) -> String {
    if reason.len() > MAX_REASON_LEN {
        let mut end = MAX_REASON_LEN;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
    reason
}

/// A delivery target.
#[async_trait]
pub trait Target: Send + Sync {
    /// Makes one attempt and classifies its outcome. Never panics on bad input.
    async fn deliver(&self, delivery: Delivery<'_>) -> DeliveryOutcome;

    /// The longest one attempt may take; the worker's visibility timeout must exceed it.
    fn timeout(&self) -> Duration;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_cut_on_a_char_boundary() {
        let long = "é".repeat(MAX_REASON_LEN);
        let DeliveryOutcome::Permanent { reason } = DeliveryOutcome::permanent(long) else {
            unreachable!()
        };
        assert!(reason.len() <= MAX_REASON_LEN);
        assert!(reason.chars().all(|c| c == 'é'));
        assert_eq!(DeliveryOutcome::retry("x").label(), "retry");
    }
}
