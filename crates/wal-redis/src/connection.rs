//! One pool of Redis connections, configured to fail fast while Redis is
//! down and to reconnect by itself when it returns.

use std::time::Duration;

use fred::prelude::*;
use fred::types::config::{ConnectionConfig, PerformanceConfig, ReconnectPolicy};
use wal_core::backend::BackendError;

/// How to connect to Redis.
#[derive(Clone, Debug)]
pub struct RedisConnectionConfig {
    /// `redis://host:port[/db]` (credentials may be in the URL).
    pub url: String,
    /// Connections in the pool; concurrent commands are pipelined on each.
    pub pool_size: usize,
    /// How long a command may wait for its reply before the outcome is unknown.
    pub command_timeout: Duration,
}

impl Default for RedisConnectionConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            pool_size: 4,
            command_timeout: Duration::from_secs(2),
        }
    }
}

/// A connected (or reconnecting) pool.
#[derive(Clone)]
pub struct RedisConnection {
    pool: Pool,
    command_timeout: Duration,
}

impl RedisConnection {
    /// Creates the pool and starts connecting. Returns once connected or
    /// after `connect_wait`, whichever comes first: a service must be able to
    /// start while Redis is down (it answers 503 until Redis is back).
    pub async fn connect(
        cfg: &RedisConnectionConfig,
        connect_wait: Duration,
    ) -> Result<Self, BackendError> {
        let mut config = Config::from_url(&cfg.url)
            .map_err(|e| BackendError::Other(format!("invalid Redis URL: {}", e.details())))?;
        config.fail_fast = false;
        let pool = Builder::from_config(config)
            .with_connection_config(|c: &mut ConnectionConfig| {
                c.connection_timeout = Duration::from_secs(2);
                c.internal_command_timeout = Duration::from_secs(2);
                c.max_command_attempts = 1;
                c.tcp = fred::types::config::TcpConfig {
                    nodelay: Some(true),
                    ..Default::default()
                };
            })
            .with_performance_config(|p: &mut PerformanceConfig| {
                p.default_command_timeout = cfg.command_timeout;
            })
            .set_policy(ReconnectPolicy::new_exponential(0, 50, 1_000, 2))
            .build_pool(cfg.pool_size.max(1))
            .map_err(|e| BackendError::Other(e.to_string()))?;
        pool.connect_pool();
        let _ = tokio::time::timeout(connect_wait, pool.wait_for_connect()).await;
        Ok(Self {
            pool,
            command_timeout: cfg.command_timeout,
        })
    }

    /// The pool (for callers that need a raw command, e.g. the rate limiter).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// A connected client of the pool, or `Unavailable` when none is.
    pub fn connected_client(&self) -> Result<&Client, BackendError> {
        let client = self.pool.next_connected();
        if client.is_connected() {
            Ok(client)
        } else {
            Err(BackendError::Unavailable("no connection to Redis".into()))
        }
    }

    /// Per-command options: one attempt, fail fast when disconnected, the
    /// configured timeout.
    pub fn command_options(&self) -> Options {
        Options {
            max_attempts: Some(1),
            fail_fast: true,
            timeout: Some(self.command_timeout),
            ..Default::default()
        }
    }

    /// The configured command timeout.
    pub fn command_timeout(&self) -> Duration {
        self.command_timeout
    }

    /// `PING`.
    pub async fn ping(&self) -> Result<(), BackendError> {
        let client = self.connected_client()?;
        client
            .with_options(&self.command_options())
            .ping::<()>(None)
            .await
            .map_err(crate::backend_error)
    }

    /// Closes every connection.
    pub async fn quit(&self) {
        let _ = self.pool.quit().await;
    }
}
