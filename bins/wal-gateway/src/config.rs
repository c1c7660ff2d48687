//! Process settings: flags with `WAL_…` environment variables (clap). The
//! README's configuration table lists the same settings.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use ipnet::IpNet;
use wal_process::{LogArgs, RedisArgs, StoreArgs};

/// Settings of one gateway process.
#[derive(Clone, Debug, Parser)]
#[command(name = "wal-gateway", version, about = "WAL service ingest gateway")]
pub struct GatewayConfig {
    /// Address to listen on.
    #[arg(long, env = "WAL_LISTEN", default_value = "0.0.0.0:3000")]
    pub listen: SocketAddr,

    /// Redis (`WAL_REDIS_URL`, `WAL_REDIS_POOL_SIZE`, `WAL_REDIS_TIMEOUT_MS`).
    #[command(flatten)]
    pub redis: RedisArgs,

    /// The namespace store (`WAL_DATABASE_URL`, `WAL_NAMESPACE_REFRESH_MS`).
    #[command(flatten)]
    pub store: StoreArgs,

    /// Comma-separated API keys accepted on namespaces without their own allow-list.
    #[arg(long, env = "WAL_API_KEYS", value_delimiter = ',', default_value = "")]
    pub api_keys: Vec<String>,

    /// Comma-separated API keys allowed to manage namespaces.
    #[arg(
        long,
        env = "WAL_ADMIN_API_KEYS",
        value_delimiter = ',',
        default_value = ""
    )]
    pub admin_api_keys: Vec<String>,

    /// Most requests one gateway handles at once; one more is answered 503
    /// SERVICE_OVERLOADED with Retry-After (health and metrics excepted).
    #[arg(long, env = "WAL_MAX_CONCURRENT_REQUESTS", default_value_t = 512)]
    pub max_concurrent_requests: usize,

    /// Milliseconds a client may take to send its request headers; the
    /// connection is closed after that (slowloris).
    #[arg(long, env = "WAL_HEADER_READ_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_read_timeout_ms: u64,

    /// Milliseconds a client may take to send a request body (408 after that).
    #[arg(long, env = "WAL_BODY_READ_TIMEOUT_MS", default_value_t = 30_000)]
    pub body_read_timeout_ms: u64,

    /// Largest request body in bytes (a batch included).
    #[arg(long, env = "WAL_MAX_BODY_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Most messages in one batch request.
    #[arg(long, env = "WAL_MAX_BATCH", default_value_t = 1000)]
    pub max_batch: usize,

    /// Take the client IP for IP allow-lists from `X-Forwarded-For` (only
    /// behind a proxy that appends to it): the address the nearest trusted
    /// proxy added, i.e. the rightmost one that is not itself a trusted
    /// proxy (`WAL_TRUSTED_PROXIES`). Never the leftmost: a client writes
    /// what it likes there.
    #[arg(long, env = "WAL_TRUST_FORWARDED_FOR", default_value_t = false)]
    pub trust_forwarded_for: bool,

    /// Comma-separated CIDRs (or addresses) of the proxies in front of the
    /// gateway. When set, `X-Forwarded-For` is believed only from a peer in
    /// this list, and its entries are walked from the right past every
    /// trusted proxy; when empty, the peer is the one proxy and the rightmost
    /// entry is the client.
    #[arg(long, env = "WAL_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_net)]
    pub trusted_proxies: Vec<IpNet>,

    /// Requeue-by-filter calls (`POST …/dlq/requeue`) allowed per namespace
    /// per second, counted across every gateway instance.
    #[arg(long, env = "WAL_DLQ_REQUEUE_PER_SECOND", default_value_t = 2)]
    pub dlq_requeue_per_second: u32,

    /// TTL (seconds) of a message's status record when a DLQ requeue writes
    /// it; keep it equal to the worker's status retention.
    #[arg(long, env = "WAL_STATUS_TTL_SECS", default_value_t = 7 * 24 * 3600)]
    pub status_ttl_secs: u64,

    /// Milliseconds a Kafka publish may take (librdkafka `message.timeout.ms`)
    /// before its outcome is UNKNOWN.
    #[arg(long, env = "WAL_KAFKA_MESSAGE_TIMEOUT_MS", default_value_t = 5000)]
    pub kafka_message_timeout_ms: u64,

    /// Seconds to finish in-flight requests after SIGTERM/SIGINT.
    #[arg(long, env = "WAL_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,

    /// Logging (`WAL_LOG_LEVEL`, `WAL_LOG_FORMAT`).
    #[command(flatten)]
    pub log: LogArgs,
}

impl GatewayConfig {
    /// How long request headers may take.
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms.max(1))
    }

    /// How long a request body may take.
    pub fn body_read_timeout(&self) -> Duration {
        Duration::from_millis(self.body_read_timeout_ms.max(1))
    }

    /// Which `X-Forwarded-For` entries to believe.
    pub fn forwarded_trust(&self) -> crate::auth::ForwardedTrust {
        crate::auth::ForwardedTrust {
            enabled: self.trust_forwarded_for,
            proxies: self.trusted_proxies.clone(),
        }
    }

    /// A configuration for tests: listen on a free loopback port.
    pub fn for_tests(redis_url: &str, database_url: &str) -> Self {
        let mut cfg = Self::parse_from(["wal-gateway"]);
        cfg.listen = "127.0.0.1:0".parse().expect("valid address");
        cfg.redis = RedisArgs::for_tests(redis_url);
        cfg.store = StoreArgs::for_tests(database_url);
        cfg
    }
}

/// A CIDR or a single address (`10.0.0.0/8`, `127.0.0.1`).
fn parse_net(s: &str) -> Result<IpNet, String> {
    wal_namespace::validate::parse_ip_entry(s.trim())
        .ok_or_else(|| format!("`{s}` is not an IP address or CIDR"))
}
