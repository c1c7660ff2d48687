//! Shared state of the gateway's handlers.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use wal_namespace::NamespaceCache;
use wal_redis::RedisConnection;
use wal_state::RateLimiter;

use crate::auth::{ForwardedTrust, KeyRing};
use crate::config::GatewayConfig;
use crate::metrics::Metrics;
use crate::producers::Producers;

/// Everything a handler needs; one per process, behind an `Arc`.
pub struct AppState {
    /// Process settings.
    pub config: GatewayConfig,
    /// Namespace cache (lock-free reads; refreshed in the background).
    pub namespaces: Arc<NamespaceCache>,
    /// Producers of every backend, by namespace.
    pub producers: Producers,
    /// Redis connection shared by producer and rate limiter (health checks ping it).
    pub redis: RedisConnection,
    /// Shared-state rate limiter.
    pub rate_limiter: RateLimiter,
    /// Hashed global and admin keys.
    pub keys: KeyRing,
    /// Which `X-Forwarded-For` entries to believe.
    pub forwarded: ForwardedTrust,
    /// Metrics registry.
    pub metrics: Metrics,
    /// Round-robin ticket counter of this instance (all namespaces share it;
    /// consecutive tickets still cycle each namespace's partitions evenly).
    pub round_robin: AtomicU64,
    /// Free request slots (`WAL_MAX_CONCURRENT_REQUESTS`).
    pub request_slots: Arc<tokio::sync::Semaphore>,
    /// Process start, for `uptimeSeconds`.
    pub started: Instant,
}
