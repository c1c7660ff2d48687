//! # wal-backends
//!
//! Implementations of the log traits of [`wal_core::backend`]: a producer the
//! gateway appends with, and a consumer the worker reads with. Each backend
//! lives in its own folder of the same shape (`mod.rs` connection and config,
//! `producer.rs`, `consumer.rs`) behind its own Cargo feature, so a crate
//! that does not need a client library does not compile it.
//!
//! | backend | feature | status |
//! | --- | --- | --- |
//! | Redis Streams ([`redis_streams`]) | `redis-streams` (default) | producer and consumer |
//! | Kafka | — | not yet built |
//! | SQS | — | not yet built |

#[cfg(feature = "redis-streams")]
pub mod redis_streams;
