//! # wal-core
//!
//! The vocabulary of the WAL service, with no I/O: everything here is plain
//! data and pure functions, so it can be unit- and property-tested without a
//! runtime, and shared by the gateway, the worker and every backend.
//!
//! ## Layout
//!
//! * [`request`] — the write API's request model (SPEC §2), camelCase on the wire,
//!   unknown fields rejected, and its field-level validation ([`validate`]).
//! * [`envelope`] — the enriched message that is appended to the log: id,
//!   namespace, payload, targets, lifecycle, routing, trace context, times.
//! * [`id`] — time-sortable message ids (ULID).
//! * [`retry`] — the retry policy and its pure `next_delay(attempt)`.
//! * [`routing`] — which partition a message goes to (`shardConfig`).
//! * [`keys`] — the Redis key layout shared by gateway and worker.
//! * [`durability`] — the TRUE / FALSE / UNKNOWN answer of a write.
//! * [`error`] — the stable error codes of the API and their HTTP statuses.
//! * [`delivery`] — attempt history, dead-letter records and per-message status.
//! * [`backend`] — the producer and consumer traits every log backend implements.

pub mod backend;
pub mod delivery;
pub mod durability;
pub mod envelope;
pub mod error;
pub mod id;
pub mod idempotency;
pub mod keys;
pub mod request;
pub mod retry;
pub mod routing;
pub mod validate;

pub use durability::Durability;
pub use envelope::Envelope;
pub use error::ErrorCode;
pub use id::MessageId;
pub use retry::{BackoffStrategy, RetryPolicy};
