//! # wal-redis
//!
//! What every crate that talks to Redis needs, in one place:
//!
//! * [`RedisConnection`] — one pool of connections that fails fast while
//!   Redis is down and reconnects by itself ([`connection`]);
//! * [`LuaScript`] and [`run_pipeline`] — scripts kept as `.lua` files,
//!   sent by SHA-1 (`EVALSHA`) and re-sent with their source (`EVAL`) when
//!   Redis answers `NOSCRIPT`, alone or inside a pipeline ([`script`]);
//! * [`backend_error`] — a fred error as the backend-neutral
//!   [`BackendError`](wal_core::backend::BackendError);
//! * [`trim_args`] — the `MAXLEN ~ n` / `MINID ~ id` arguments of a stream
//!   retention, shared by every `XADD` into a partition stream.
//!
//! The log backend (`wal-backends`, Redis Streams) and the service's own
//! state (`wal-state`) are built on it; neither depends on the other.

pub mod connection;
pub mod script;
mod trim;

pub use connection::{RedisConnection, RedisConnectionConfig};
pub use script::{run_pipeline, Command, LuaScript};
pub use trim::trim_args;

use fred::error::{Error, ErrorKind};
use wal_core::backend::BackendError;

/// Maps a fred error to the backend-neutral error type: a connection that is
/// down, a timeout or back-pressure is `Unavailable`, anything else `Other`.
pub fn backend_error(e: Error) -> BackendError {
    match e.kind() {
        ErrorKind::IO | ErrorKind::Canceled | ErrorKind::Timeout | ErrorKind::Backpressure => {
            BackendError::Unavailable(e.to_string())
        }
        _ => BackendError::Other(e.to_string()),
    }
}
