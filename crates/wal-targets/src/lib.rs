//! # wal-targets
//!
//! Delivery targets: where the worker sends a message. Each target only
//! *classifies* the outcome of one attempt — [`DeliveryOutcome::Delivered`],
//! [`DeliveryOutcome::Retry`] (with an optional earliest time, e.g. from
//! `Retry-After`) or [`DeliveryOutcome::Permanent`]; *when* to try again is
//! decided once, for every target, by the message's
//! [`RetryPolicy`](wal_core::RetryPolicy).
//!
//! Only the trait exists so far. The HTTP/webhook, PostgreSQL and Redis
//! implementations come with the delivery worker, each in its own folder of
//! the same shape (`http/`, `postgres/`, `redis/`).

use std::time::Duration;

use async_trait::async_trait;
use wal_core::request::TargetRef;
use wal_core::Envelope;

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

/// A delivery target.
#[async_trait]
pub trait Target: Send + Sync {
    /// Makes one attempt and classifies its outcome. Never panics on bad input.
    async fn deliver(&self, delivery: Delivery<'_>) -> DeliveryOutcome;

    /// The longest one attempt may take; the worker's visibility timeout must exceed it.
    fn timeout(&self) -> Duration;
}
