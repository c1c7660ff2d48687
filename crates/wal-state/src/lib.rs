//! # wal-state
//!
//! The service's own bookkeeping, kept in Redis for every namespace whatever
//! its log backend: a Kafka or SQS namespace uses the very same schedule,
//! dead-letter queue, status records and idempotency records as a Redis
//! Streams one. The logs themselves live in `wal-backends`; this crate
//! never reads a Kafka topic or an SQS queue.
//!
//! | module | what | keys it owns (see [`wal_core::keys`]) |
//! | --- | --- | --- |
//! | [`schedule`] | delayed and retry sets; activating due members back into the partition streams (`activate.lua`) | `wal:{ns}:delayed`, `wal:{ns}:retry` |
//! | [`settle`] | recording a handled entry's fate — statuses, schedule members, DLQ records — and its `XACK`, in one step (`settle.lua`) | writes status, sets, DLQ |
//! | [`dlq`] | the dead-letter queue: add, list, requeue, purge | `wal:{ns}:dlq`, `wal:{ns}:dlq:idx` |
//! | [`status`] | per-message status records: delivery counts, delivered targets, lookup | `wal:{ns}:status:<id>` |
//! | [`idempotency`] | `Idempotency-Key` records for backends that cannot check them in the append (Kafka, SQS) | `wal:{ns}:idem:<key>` |
//! | [`parking`] | messages of targets whose circuit breaker is open, until the breaker releases them into the retry set (`unpark.lua`) | `wal:{ns}:parked` |
//! | [`worker_reports`] | what each worker says of a namespace it consumes: running or degraded, its targets' breakers | `wal:{ns}:workers` |
//! | [`inspect`] | read-only view of a namespace's streams, groups and sets | reads only |
//! | [`rate_limit`] | per-namespace token buckets and the requeue-by-filter window, shared by every gateway | `wal:{ns}:rl`, `wal:{ns}:dlq:requeue-rl` |
//!
//! The partition streams `wal:{ns}:p:<n>` belong to the Redis Streams log
//! (`wal-backends`); the scripts here append to them only to put an entry
//! back (activation, requeue), with the same fields the producer writes.
//!
//! Every script is a `.lua` file in `src/scripts/`, sent through
//! [`wal_redis::LuaScript`] (`EVALSHA` with the `NOSCRIPT` fallback).

pub mod dlq;
pub mod idempotency;
pub mod inspect;
pub mod parking;
pub mod rate_limit;
mod reply;
pub mod schedule;
pub mod settle;
pub mod status;
pub mod worker_reports;

pub use dlq::{DlqError, DlqStore};
pub use idempotency::RedisIdempotency;
pub use rate_limit::{Admission, Limits, Permit, RateLimiter};
pub use schedule::{schedule_member, Activated, RedisSchedule, ScheduleSet};
pub use settle::{SettleOp, Settlement};
