//! # wal-bench
//!
//! Tools for the end-to-end delivery benchmark (`just bench-e2e`,
//! `scripts/bench-e2e.sh`): gateway → Redis → worker → HTTP target.
//!
//! * [`sink`] — the HTTP target the worker delivers to (`wal-bench-sink`):
//!   answers `200` to every `POST`, and measures each delivery: end-to-end
//!   latency from the `sentAtUs` the load generator put into the payload,
//!   accept latency from the envelope's `createdAtMs`, lateness from the
//!   envelope's `dueAtMs`; counts distinct message ids and duplicates.
//! * [`load`] — the load generator (`wal-bench-load`): single or batch
//!   writes at a fixed open-loop rate or at max rate.
//! * [`payload`] — the write bodies the load generator sends.
//! * [`summary`] — percentile summaries.
//! * [`clock`] — wall-clock time in microseconds, shared by all processes
//!   on the machine (they compare each other's timestamps).

pub mod clock;
pub mod load;
pub mod payload;
pub mod sink;
pub mod summary;
