//! # wal-backends
//!
//! The logs, and only the logs: implementations of the traits of
//! [`wal_core::backend`] — a producer the gateway appends with, and a
//! consumer the worker reads with. The service's own bookkeeping (schedule,
//! DLQ, status and idempotency records), which serves every backend alike,
//! is `wal-state`'s. Each backend
//! lives in its own folder of the same shape (`mod.rs` connection and config,
//! `producer.rs`, `consumer.rs`) behind its own Cargo feature, so a crate
//! that does not need a client library does not compile it.
//!
//! | backend | feature | status |
//! | --- | --- | --- |
//! | Redis Streams ([`redis_streams`]) | `redis-streams` (default) | producer and consumer |
//! | Kafka ([`kafka`]) | `kafka` | producer, consumer, topic admin |
//! | SQS ([`sqs`]) | `sqs` | producer, consumer, queue admin |
//!
//! With the `namespace` feature, [`namespace_clients`] builds the clients of
//! a namespace from its configuration and runs its topic/queue admin step.

#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "namespace")]
pub mod namespace_clients;
#[cfg(feature = "redis-streams")]
pub mod redis_streams;
#[cfg(feature = "sqs")]
pub mod sqs;
