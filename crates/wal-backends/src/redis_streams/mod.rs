//! Redis Streams backend (fred): the log itself — appending to and reading
//! from a namespace's partition streams. The connection pool and the Lua
//! helper are `wal-redis`'s; the service's own records (schedule, DLQ,
//! status, idempotency for other backends) are `wal-state`'s.
//!
//! ## Layout
//!
//! A namespace's log is `partitionCount` streams `wal:{ns}:p:<n>` (see
//! [`wal_core::keys`]); the worker reads them through the consumer group
//! [`wal_core::keys::CONSUMER_GROUP`]. Each entry has two fields: `id` (the
//! message id, for humans and `XRANGE` inspection) and `env` (the JSON
//! [`Envelope`](wal_core::Envelope)).
//!
//! ## Durability
//!
//! `TRUE` means Redis replied to the `XADD`: the entry is in the primary's
//! memory and, depending on the server's `appendfsync`, in its AOF (`always`:
//! on disk before the reply; `everysec`: at most one second later). With the
//! namespace setting `waitReplicas = n` the producer also sends `WAIT n` on
//! the same connection and answers `UNKNOWN` if fewer replicas confirmed in
//! time. A command that cannot be sent because the connection is down answers
//! `FALSE` at once; one that was sent but not answered in time answers
//! `UNKNOWN`.
//!
//! ## Retention
//!
//! Every append trims approximately (`MAXLEN ~ n` or `MINID ~ <now - age>`),
//! which costs nothing measurable and keeps memory bounded. Trimming removes
//! entries whether or not the group has read them: size retention above the
//! consumer's worst backlog.

mod consumer;
mod producer;

pub use consumer::RedisStreamConsumer;
pub use producer::RedisStreamProducer;
