//! What the wal-state integration tests share: a connection to the Redis of
//! `WAL_TEST_REDIS_URL` (default `127.0.0.1:6379`), random namespace names
//! and the cleanup of a namespace's keys.

#![allow(dead_code)] // each test binary uses its own subset

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fred::prelude::*;
use wal_redis::{RedisConnection, RedisConnectionConfig};

/// A connection to the test Redis.
pub async fn connect() -> RedisConnection {
    let url =
        std::env::var("WAL_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    RedisConnection::connect(
        &RedisConnectionConfig {
            url,
            ..Default::default()
        },
        Duration::from_secs(3),
    )
    .await
    .expect("Redis client")
}

/// A namespace name no other test (or test process) uses: `<prefix>-<pid>-<nanos>-<n>`.
pub fn random_ns(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Deletes every key of namespace `ns`.
pub async fn cleanup(conn: &RedisConnection, ns: &str) {
    let keys: Vec<String> = conn
        .pool()
        .custom(fred::cmd!("KEYS"), vec![format!("wal:{{{ns}}}:*")])
        .await
        .unwrap_or_default();
    if !keys.is_empty() {
        let _: Result<i64, _> = conn.pool().del(keys).await;
    }
}
