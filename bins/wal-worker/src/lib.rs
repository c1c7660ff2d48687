//! # wal-worker
//!
//! Delivers what the gateway recorded. Owns the Redis consumer groups, the
//! delayed and retry schedules, the dead-letter queue and target execution
//! (SPEC §5).
//!
//! * [`app`] — build, the namespace supervisor, shutdown.
//! * [`context`] — what the tasks share: process-wide [`context::Shared`] and
//!   one namespace's [`context::NamespaceContext`].
//! * [`runner`] — one namespace's reader, reclaimer, heartbeat and schedulers.
//! * [`supervisor`] — one runner per namespace, started and stopped
//!   independently and concurrently.
//! * [`handler`] — one entry: decide, deliver to each target, settle.
//! * [`plan`] — pure rules from outcomes to what is recorded (retry, DLQ, …).
//! * [`settler`] — batches settlements into Redis pipelines.
//! * [`breaker`] — per-target circuit breaker.
//! * [`targets`] — the built targets of a namespace with their limits.
//! * [`http`] / [`metrics`] — `/metrics` and health checks.
//!
//! **Invariant**: an entry is acknowledged only in the same atomic step
//! (`settle.lua`) that records each of its targets as delivered, scheduled
//! for retry, or dead-lettered. A worker that dies before that step leaves
//! the entry pending; another worker reclaims it after the visibility timeout.

pub mod app;
pub mod breaker;
pub mod clock;
pub mod config;
pub mod context;
pub mod handler;
pub mod http;
pub mod metrics;
pub mod parking;
pub mod plan;
pub mod report;
pub mod runner;
pub mod settler;
pub mod sources;
pub mod supervisor;
pub mod targets;

pub use app::Worker;
pub use config::WorkerConfig;

/// The `wal-worker` program: settings from flags and `WAL_…` variables,
/// logging, build, run until SIGTERM/SIGINT. (The test suite's e2e binary
/// runs this same function.)
pub async fn run_cli() -> anyhow::Result<()> {
    use clap::Parser;
    use wal_process::Program;
    let config = WorkerConfig::parse();
    config.log.init();
    let worker = Worker::build(config).await?;
    tracing::info!(addr = %worker.local_addr(), "wal-worker health and metrics listening");
    worker.run_until_stopped().await
}
