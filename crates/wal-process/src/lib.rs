//! # wal-process
//!
//! What `wal-gateway` and `wal-worker` both do at start and at stop, in one
//! place:
//!
//! * [`RedisArgs`] and [`StoreArgs`] — the Redis and namespace-store
//!   settings (clap groups flattened into each program's settings), with
//!   [`RedisArgs::connect`] and [`StoreArgs::open`];
//! * [`LogArgs`] — the `WAL_LOG_LEVEL` / `WAL_LOG_FORMAT` settings (clap,
//!   flattened into each program's settings) and [`LogArgs::init`], which
//!   installs the `tracing` subscriber;
//! * [`Program`] — `run_until(shutdown)`, and `run_until_stopped` on
//!   [`shutdown_signal`], which resolves on SIGTERM or SIGINT;
//! * [`DrainDeadline`] — how long in-flight work may still run once a stop
//!   was asked for (`WAL_SHUTDOWN_GRACE_SECS` of each program).

mod drain;
mod logging;
mod program;
mod signal;
mod start;

pub use drain::DrainDeadline;
pub use logging::{LogArgs, LogFormat};
pub use program::Program;
pub use signal::shutdown_signal;
pub use start::{RedisArgs, StartError, StoreArgs};
