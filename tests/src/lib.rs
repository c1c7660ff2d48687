//! Helpers for the integration tests: a gateway running in-process on a free
//! port against the real Redis and a fresh namespace store, private Redis
//! servers a test may stop and restart, and random names so that tests can
//! share the machine's Redis and PostgreSQL.
//!
//! Endpoints come from `WAL_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`)
//! and `WAL_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`).

pub mod e2e;
pub mod fixtures;
pub mod gateway;
pub mod moto;
pub mod redis_server;
pub mod seed;
pub mod tansu;

use rand::Rng;

/// The shared Redis the tests use.
pub fn redis_url() -> String {
    std::env::var("WAL_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The shared PostgreSQL the tests use (a database they may create others from).
pub fn postgres_url() -> String {
    std::env::var("WAL_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// `prefix-<10 random lowercase letters and digits>`.
pub fn random_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let suffix: String = (0..10)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{prefix}-{suffix}")
}

/// A free TCP port on loopback (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
