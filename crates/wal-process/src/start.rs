//! What both programs connect to at start: the namespace store (through
//! the namespace cache, refreshed in the background) and Redis. Their
//! settings are clap argument groups, flattened into each program's
//! settings, so the two programs read the same variables the same way.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tokio::task::JoinHandle;
use wal_core::backend::BackendError;
use wal_namespace::{NamespaceCache, NamespaceStore, SecretPolicy, StoreError};
use wal_redis::{RedisConnection, RedisConnectionConfig};

/// How long a program waits for Redis at start before it goes on without it.
const REDIS_CONNECT_WAIT: Duration = Duration::from_secs(3);

/// Why a program could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The namespace store could not be opened or migrated.
    #[error("connecting to the namespace store: {0}")]
    Store(#[source] StoreError),
    /// The namespaces could not be read.
    #[error("loading namespaces: {0}")]
    Load(#[source] StoreError),
    /// The Redis client could not be configured (an invalid URL, say).
    #[error("configuring the Redis client: {0}")]
    Redis(#[source] BackendError),
}

/// How to reach Redis: `WAL_REDIS_URL`, `WAL_REDIS_POOL_SIZE`, `WAL_REDIS_TIMEOUT_MS`.
#[derive(Clone, Debug, Args)]
pub struct RedisArgs {
    /// Redis holding the log streams and the service's own state (schedules,
    /// DLQ, status, idempotency and rate-limit records).
    #[arg(long, env = "WAL_REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,

    /// Redis connections in the shared pool; concurrent commands are
    /// pipelined on each (a worker also opens one per namespace for its
    /// blocking reads).
    #[arg(long, env = "WAL_REDIS_POOL_SIZE", default_value_t = 4)]
    pub redis_pool_size: usize,

    /// Milliseconds to wait for a Redis reply (a write whose reply does not
    /// come in time is UNKNOWN).
    #[arg(long, env = "WAL_REDIS_TIMEOUT_MS", default_value_t = 2000)]
    pub redis_timeout_ms: u64,
}

impl RedisArgs {
    /// Settings for tests: `url`, a one-second reply timeout.
    pub fn for_tests(url: &str) -> Self {
        Self {
            redis_url: url.to_string(),
            redis_pool_size: 4,
            redis_timeout_ms: 1000,
        }
    }

    /// The reply timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.redis_timeout_ms)
    }

    /// The pool settings.
    pub fn connection_config(&self) -> RedisConnectionConfig {
        RedisConnectionConfig {
            url: self.redis_url.clone(),
            pool_size: self.redis_pool_size,
            command_timeout: self.timeout(),
        }
    }

    /// Connects, waiting a few seconds at most: a program starts while Redis
    /// is down (logging `while_down`) and reconnects by itself.
    pub async fn connect(&self, while_down: &str) -> Result<RedisConnection, StartError> {
        let redis = RedisConnection::connect(&self.connection_config(), REDIS_CONNECT_WAIT)
            .await
            .map_err(StartError::Redis)?;
        if redis.ping().await.is_err() {
            tracing::warn!("Redis is not reachable yet; {while_down}");
        }
        Ok(redis)
    }
}

/// Where the namespaces are kept: `WAL_DATABASE_URL`, `WAL_NAMESPACE_REFRESH_MS`.
#[derive(Clone, Debug, Args)]
pub struct StoreArgs {
    /// Namespace store: `postgres://…` or `sqlite://path?mode=rwc`.
    #[arg(
        long,
        env = "WAL_DATABASE_URL",
        default_value = "sqlite://wal-namespaces.db?mode=rwc"
    )]
    pub database_url: String,

    /// How often (ms) the namespace cache checks the store for changes.
    #[arg(long, env = "WAL_NAMESPACE_REFRESH_MS", default_value_t = 1000)]
    pub namespace_refresh_ms: u64,

    /// Prefix of the environment variables a namespace may name as a
    /// secret (`…Env`); empty allows any.
    #[arg(long, env = "WAL_SECRET_ENV_PREFIX", default_value = SecretPolicy::DEFAULT_ENV_PREFIX)]
    pub secret_env_prefix: String,

    /// Directory of the files a namespace may name as a secret (`…File`).
    #[arg(long, env = "WAL_SECRET_DIR", default_value = SecretPolicy::DEFAULT_DIR)]
    pub secret_dir: std::path::PathBuf,
}

impl StoreArgs {
    /// Settings for tests: `url`, refreshed every 200 ms.
    pub fn for_tests(url: &str) -> Self {
        Self {
            database_url: url.to_string(),
            namespace_refresh_ms: 200,
            secret_env_prefix: "WAL_TEST_".into(),
            secret_dir: std::env::temp_dir(),
        }
    }

    /// What namespaces' secret references may name.
    pub fn secret_policy(&self) -> SecretPolicy {
        SecretPolicy::new(self.secret_env_prefix.clone(), self.secret_dir.clone())
    }

    /// The refresh interval (at least 100 ms).
    pub fn refresh(&self) -> Duration {
        Duration::from_millis(self.namespace_refresh_ms.max(100))
    }

    /// Connects to the store (running its migrations), loads every
    /// namespace and starts the task that keeps the cache in step.
    pub async fn open(&self) -> Result<(Arc<NamespaceCache>, JoinHandle<()>), StartError> {
        let store = NamespaceStore::connect(&self.database_url)
            .await
            .map_err(StartError::Store)?
            .with_secret_policy(self.secret_policy());
        let namespaces = NamespaceCache::load(store)
            .await
            .map_err(StartError::Load)?;
        let refresher = namespaces.clone().spawn_refresher(self.refresh());
        Ok((namespaces, refresher))
    }
}
