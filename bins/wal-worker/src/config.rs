//! Process settings: flags with `WAL_…` environment variables (clap). The
//! README's configuration table lists the same settings.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use wal_process::{LogArgs, RedisArgs, StoreArgs};

/// Settings of one worker process.
#[derive(Clone, Debug, Parser)]
#[command(name = "wal-worker", version, about = "WAL service delivery worker")]
pub struct WorkerConfig {
    /// Address of the small HTTP server for `/metrics` and health checks.
    #[arg(long, env = "WAL_WORKER_LISTEN", default_value = "0.0.0.0:3001")]
    pub listen: SocketAddr,

    /// Redis (`WAL_REDIS_URL`, `WAL_REDIS_POOL_SIZE`, `WAL_REDIS_TIMEOUT_MS`).
    #[command(flatten)]
    pub redis: RedisArgs,

    /// The namespace store (`WAL_DATABASE_URL`, `WAL_NAMESPACE_REFRESH_MS`).
    #[command(flatten)]
    pub store: StoreArgs,

    /// This worker's consumer name in the groups (default: host name + pid).
    #[arg(long, env = "WAL_WORKER_NAME")]
    pub worker_name: Option<String>,

    /// Most entries read from the log in one `XREADGROUP`.
    #[arg(long, env = "WAL_WORKER_BATCH", default_value_t = 256)]
    pub batch_size: usize,

    /// Most entries being handled at once, per namespace.
    #[arg(long, env = "WAL_WORKER_MAX_IN_FLIGHT", default_value_t = 1024)]
    pub max_in_flight: usize,

    /// Most concurrent deliveries to one target.
    #[arg(long, env = "WAL_TARGET_CONCURRENCY", default_value_t = 64)]
    pub target_concurrency: usize,

    /// Milliseconds an entry may stay un-acknowledged before another worker
    /// takes it over. A namespace whose longest target timeout is longer
    /// gets twice that timeout instead (its own; the others keep this one).
    #[arg(long, env = "WAL_VISIBILITY_TIMEOUT_MS", default_value_t = 60_000)]
    pub visibility_timeout_ms: u64,

    /// How often (ms) abandoned entries are looked for.
    #[arg(long, env = "WAL_RECLAIM_INTERVAL_MS", default_value_t = 5_000)]
    pub reclaim_interval_ms: u64,

    /// Milliseconds another consumer of a group may stay idle, owning no
    /// entry, before it is removed from the group (a worker gone for good;
    /// a live worker reads at least every second).
    #[arg(long, env = "WAL_CONSUMER_IDLE_REMOVE_MS", default_value_t = 3_600_000)]
    pub consumer_idle_remove_ms: u64,

    /// An entry handed out more than this many times without an ack is
    /// dead-lettered as `poison`.
    #[arg(long, env = "WAL_POISON_THRESHOLD", default_value_t = 5)]
    pub poison_threshold: u32,

    /// Seconds a message's status record is kept after its last change.
    #[arg(long, env = "WAL_STATUS_TTL_SECS", default_value_t = 604_800)]
    pub status_ttl_secs: u64,

    /// Longest (ms) between two looks at the delayed and retry sets; due
    /// times this worker knows of are met by a local timer regardless.
    #[arg(long, env = "WAL_SCHEDULE_POLL_MS", default_value_t = 100)]
    pub schedule_poll_ms: u64,

    /// How often (ms) dead letters older than the namespace's
    /// `dlqConfig.retentionSeconds` are purged.
    #[arg(long, env = "WAL_DLQ_SWEEP_MS", default_value_t = 60_000)]
    pub dlq_sweep_ms: u64,

    /// Window (ms) over which a target's failure rate is measured.
    #[arg(long, env = "WAL_BREAKER_WINDOW_MS", default_value_t = 30_000)]
    pub breaker_window_ms: u64,

    /// Fewest deliveries in the window before the failure rate can open a
    /// target's circuit breaker.
    #[arg(long, env = "WAL_BREAKER_MIN_CALLS", default_value_t = 50)]
    pub breaker_min_calls: u32,

    /// Failure rate (percent of the window's deliveries failing retryably)
    /// that opens a target's circuit breaker; 0 disables breakers.
    #[arg(long, env = "WAL_BREAKER_FAILURE_RATE", default_value_t = 50)]
    pub breaker_failure_rate: u32,

    /// Milliseconds an open breaker waits before admitting probes.
    #[arg(long, env = "WAL_BREAKER_COOLDOWN_MS", default_value_t = 5_000)]
    pub breaker_cooldown_ms: u64,

    /// Probe deliveries a half-open breaker admits at once; as many
    /// successes close it.
    #[arg(long, env = "WAL_BREAKER_PROBES", default_value_t = 5)]
    pub breaker_probes: u32,

    /// Seconds to finish in-flight deliveries after SIGTERM/SIGINT; what is
    /// left is handed back to the other workers.
    #[arg(long, env = "WAL_SHUTDOWN_GRACE_SECS", default_value_t = 20)]
    pub shutdown_grace_secs: u64,

    /// Kafka consumer group session timeout (ms): how long a dead worker
    /// keeps its partitions before the group hands them to another.
    #[arg(long, env = "WAL_KAFKA_SESSION_TIMEOUT_MS", default_value_t = 10_000)]
    pub kafka_session_timeout_ms: u64,

    /// Longest SQS long poll of one receive (seconds, 1 to 20); also how
    /// long a stop may wait for a poll in progress.
    #[arg(long, env = "WAL_SQS_WAIT_SECS", default_value_t = 2)]
    pub sqs_wait_secs: u64,

    /// Logging (`WAL_LOG_LEVEL`, `WAL_LOG_FORMAT`).
    #[command(flatten)]
    pub log: LogArgs,
}

impl WorkerConfig {
    /// A configuration for tests: health port on a free loopback port, fast timers.
    pub fn for_tests(redis_url: &str, database_url: &str) -> Self {
        let mut cfg = Self::parse_from(["wal-worker"]);
        cfg.listen = "127.0.0.1:0".parse().expect("valid address");
        cfg.redis = RedisArgs::for_tests(redis_url);
        cfg.store = StoreArgs::for_tests(database_url);
        cfg.visibility_timeout_ms = 10_000;
        cfg.reclaim_interval_ms = 500;
        cfg.shutdown_grace_secs = 5;
        cfg.kafka_session_timeout_ms = 6_000;
        cfg.sqs_wait_secs = 1;
        cfg
    }

    /// The consumer name: the configured one, or host name + pid.
    pub fn consumer_name(&self) -> String {
        self.worker_name.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "worker".into());
            format!("{host}-{}", std::process::id())
        })
    }

    /// Visibility timeout.
    pub fn visibility_timeout(&self) -> Duration {
        Duration::from_millis(self.visibility_timeout_ms)
    }

    /// Status record retention.
    pub fn status_ttl(&self) -> Duration {
        Duration::from_secs(self.status_ttl_secs.max(1))
    }
}
