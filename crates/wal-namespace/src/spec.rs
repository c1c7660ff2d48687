//! The namespace configuration as sent to the admin API (SPEC §4): camelCase,
//! unknown fields rejected, every absent field taking the documented default.
//!
//! [`parse_spec`] turns a request body into a [`NamespaceSpec`] with the path
//! of the offending field on error; [`NamespaceSpec::validate`] checks every
//! rule, collecting *all* field errors, and produces the typed
//! [`Namespace`].
//!
//! | field | default | bounds |
//! | --- | --- | --- |
//! | `name` | — (required on create) | `[a-z0-9][a-z0-9._-]{0,99}` |
//! | `backend` | `redis_streams` | `redis_streams`, `kafka`, `sqs` |
//! | `topicName` | `name` (on update: unchanged) | `[A-Za-z0-9._-]{1,100}` |
//! | `enabled` | `true` | |
//! | `maxMessageSize` | 1048576 | 1 to 10 MiB |
//! | `messageTtlSeconds` | 86400 | 1 to 30 days |
//! | `maxDelaySeconds` | 7 days | 0 to 30 days |
//! | `retryPolicy` | `RetryPolicy::default()` | see `wal_core::retry` |
//! | `dlqConfig` | enabled, 5 retries, no alert, 7 days | `maxRetries` ≤ 20, retention 1 s to 365 days |
//! | `shardConfig` | `hash`, 4 partitions | 1 to 256 partitions |
//! | `targetConfigs` | `[]` | see [`crate::targets`] |
//! | `backendConfig` | retention `maxLen` 1000000, no replica wait, 1000 ms | per backend: see [`crate::backend_config`] |
//! | `accessControl` | no keys, no limits, all IPs | see [`AccessControlSpec`] |
//! | `dedupWindowSeconds` | 86400 | 1 s to 30 days |

use std::collections::HashSet;
use std::net::IpAddr;

use chrono::Utc;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use wal_core::backend::Retention;
use wal_core::retry::{RetryPolicy, MAX_ATTEMPTS_LIMIT};
use wal_core::routing::ShardStrategy;
use wal_core::validate::{is_valid_identifier, is_valid_namespace_name, FieldErrors};

use crate::api_key::{ApiKeyHash, HASH_PREFIX};
pub use crate::backend_config::{
    BackendConfig, DEFAULT_RETENTION_MAX_LEN, DEFAULT_WAIT_TIMEOUT_MS, MAX_WAIT_REPLICAS,
    MAX_WAIT_TIMEOUT_MS,
};
use crate::model::Namespace;
use crate::targets::{push_serde_error, validate_targets, TargetConfigSpec};

const DAY: u64 = 86_400;

/// Default `maxMessageSize`: 1 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 1_048_576;
/// Largest `maxMessageSize`: 10 MiB.
pub const MAX_MESSAGE_SIZE_LIMIT: u64 = 10 * 1_048_576;
/// Default `messageTtlSeconds`: one day.
pub const DEFAULT_MESSAGE_TTL_SECONDS: u64 = DAY;
/// Largest `messageTtlSeconds`: 30 days.
pub const MAX_MESSAGE_TTL_SECONDS: u64 = 30 * DAY;
/// Default `maxDelaySeconds`: 7 days.
pub const DEFAULT_MAX_DELAY_SECONDS: u64 = 7 * DAY;
/// Largest `maxDelaySeconds`: 30 days.
pub const MAX_DELAY_SECONDS_LIMIT: u64 = 30 * DAY;
/// Default `dedupWindowSeconds`: one day.
pub const DEFAULT_DEDUP_WINDOW_SECONDS: u64 = DAY;
/// Largest `dedupWindowSeconds`: 30 days.
pub const MAX_DEDUP_WINDOW_SECONDS: u64 = 30 * DAY;
/// Default `shardConfig.partitionCount`.
pub const DEFAULT_PARTITION_COUNT: u32 = 4;
/// Largest `shardConfig.partitionCount`.
pub const MAX_PARTITION_COUNT: u32 = 256;
/// Default `dlqConfig.maxRetries`.
pub const DEFAULT_DLQ_MAX_RETRIES: u32 = 5;
/// Default `dlqConfig.retentionSeconds`: 7 days.
pub const DEFAULT_DLQ_RETENTION_SECONDS: u64 = 7 * DAY;
/// Largest `dlqConfig.retentionSeconds`: 365 days.
pub const MAX_DLQ_RETENTION_SECONDS: u64 = 365 * DAY;
/// Shortest clear API key accepted.
pub const MIN_API_KEY_LEN: usize = 16;
/// Longest clear API key accepted.
pub const MAX_API_KEY_LEN: usize = 512;
/// Most entries of `accessControl.allowedApiKeys`.
pub const MAX_API_KEYS: usize = 1_000;
/// Most entries of `accessControl.ipAllowList`.
pub const MAX_IP_ALLOW_LIST: usize = 1_000;
/// Longest `description`.
pub const MAX_DESCRIPTION_LEN: usize = 1_000;

fn default_true() -> bool {
    true
}
fn default_max_message_size() -> u64 {
    DEFAULT_MAX_MESSAGE_SIZE
}
fn default_message_ttl_seconds() -> u64 {
    DEFAULT_MESSAGE_TTL_SECONDS
}
fn default_max_delay_seconds() -> u64 {
    DEFAULT_MAX_DELAY_SECONDS
}
fn default_dedup_window_seconds() -> u64 {
    DEFAULT_DEDUP_WINDOW_SECONDS
}

/// The log backend of a namespace.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// Redis Streams (the default).
    #[default]
    RedisStreams,
    /// Apache Kafka (rdkafka).
    Kafka,
    /// Amazon SQS or an SQS-compatible endpoint (aws-sdk-sqs).
    Sqs,
}

impl BackendKind {
    /// The wire (and stored) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::RedisStreams => "redis_streams",
            BackendKind::Kafka => "kafka",
            BackendKind::Sqs => "sqs",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "redis_streams" => Some(BackendKind::RedisStreams),
            "kafka" => Some(BackendKind::Kafka),
            "sqs" => Some(BackendKind::Sqs),
            _ => None,
        }
    }
}

/// `dlqConfig`: what happens to messages that cannot be delivered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct DlqConfig {
    /// Whether exhausted or permanently failed deliveries go to the DLQ (default `true`).
    pub enabled: bool,
    /// Retries before a message is dead-lettered (default 5, at most 20).
    pub max_retries: u32,
    /// Whether a dead-lettered message raises an alert (default `false`).
    #[serde(rename = "alertOnDLQ")]
    pub alert_on_dlq: bool,
    /// How long dead-lettered messages are kept, in seconds (default 7 days, at most 365 days).
    pub retention_seconds: u64,
}

impl Default for DlqConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_retries: DEFAULT_DLQ_MAX_RETRIES,
            alert_on_dlq: false,
            retention_seconds: DEFAULT_DLQ_RETENTION_SECONDS,
        }
    }
}

/// `shardConfig`: how the log is partitioned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ShardConfig {
    /// How messages without a partition key are spread (default `hash`).
    pub strategy: ShardStrategy,
    /// Number of partitions, 1 to 256 (default 4).
    pub partition_count: u32,
}

impl Default for ShardConfig {
    fn default() -> Self {
        Self {
            strategy: ShardStrategy::Hash,
            partition_count: DEFAULT_PARTITION_COUNT,
        }
    }
}

/// `backendConfig.retention`: exactly one of `maxLen` or `maxAgeSeconds`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetentionSpec {
    /// Keep about this many entries per partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_len: Option<u64>,
    /// Keep entries younger than this many seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_seconds: Option<u64>,
}

impl RetentionSpec {
    /// The retention this describes, if exactly one of the two is set.
    pub fn to_retention(&self) -> Option<Retention> {
        match (self.max_len, self.max_age_seconds) {
            (Some(n), None) => Some(Retention::MaxLen(n)),
            (None, Some(s)) => Some(Retention::MaxAge(std::time::Duration::from_secs(s))),
            _ => None,
        }
    }

    /// The wire form of a retention.
    pub fn from_retention(r: Retention) -> Self {
        match r {
            Retention::MaxLen(n) => Self {
                max_len: Some(n),
                max_age_seconds: None,
            },
            Retention::MaxAge(d) => Self {
                max_len: None,
                max_age_seconds: Some(d.as_secs()),
            },
        }
    }
}

/// `accessControl.rateLimits`; each limit absent means unlimited.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimits {
    /// Requests per minute (> 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
    /// Requests per hour (> 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_hour: Option<u32>,
    /// Largest burst (> 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst_limit: Option<u32>,
}

/// `accessControl` as sent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessControlSpec {
    /// API keys allowed to write to the namespace: clear keys (at least 16
    /// characters), hashed with SHA-256 before they are stored, or already
    /// hashed entries written `sha256:<64 lowercase hex>`. Absent on an update:
    /// the stored keys are kept; present (even empty): they are replaced.
    /// Empty: any valid API key may write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_api_keys: Option<Vec<String>>,
    /// Request rate limits.
    #[serde(default)]
    pub rate_limits: RateLimits,
    /// Client addresses allowed to write: CIDRs (`10.0.0.0/8`) or single
    /// addresses. Empty: all.
    #[serde(default)]
    pub ip_allow_list: Vec<String>,
}

/// The namespace configuration as sent to `POST` / `PUT /api/v1/namespaces`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamespaceSpec {
    /// Namespace name, `[a-z0-9][a-z0-9._-]{0,99}`; required on create, on
    /// update absent or equal to the name in the path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Log backend (default `redis_streams`).
    #[serde(default)]
    pub backend: BackendKind,
    /// Stream / topic / queue name (default: the namespace name; on update,
    /// absent keeps the current one, since changing it moves the log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_name: Option<String>,
    /// Free text, at most 1000 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether writes are accepted (default `true`).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Largest payload in bytes, 1 to 10 MiB (default 1 MiB).
    #[serde(default = "default_max_message_size")]
    pub max_message_size: u64,
    /// Default time to live of a message, 1 s to 30 days (default 1 day).
    #[serde(default = "default_message_ttl_seconds")]
    pub message_ttl_seconds: u64,
    /// Largest delivery delay a write may ask for, 0 to 30 days (default 7 days).
    #[serde(default = "default_max_delay_seconds")]
    pub max_delay_seconds: u64,
    /// Default retry policy of deliveries.
    #[serde(default)]
    pub retry_policy: RetryPolicy,
    /// Dead-letter settings.
    #[serde(default)]
    pub dlq_config: DlqConfig,
    /// Partitioning.
    #[serde(default)]
    pub shard_config: ShardConfig,
    /// Delivery targets.
    #[serde(default)]
    pub target_configs: Vec<TargetConfigSpec>,
    /// Backend settings.
    #[serde(default)]
    pub backend_config: BackendConfig,
    /// Who may write, how fast, from where.
    #[serde(default)]
    pub access_control: AccessControlSpec,
    /// How long an `Idempotency-Key` is remembered, 1 s to 30 days (default 1 day).
    #[serde(default = "default_dedup_window_seconds")]
    pub dedup_window_seconds: u64,
}

impl Default for NamespaceSpec {
    /// The same values as an empty JSON object `{}`.
    fn default() -> Self {
        Self {
            name: None,
            backend: BackendKind::default(),
            topic_name: None,
            description: None,
            enabled: true,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            message_ttl_seconds: DEFAULT_MESSAGE_TTL_SECONDS,
            max_delay_seconds: DEFAULT_MAX_DELAY_SECONDS,
            retry_policy: RetryPolicy::default(),
            dlq_config: DlqConfig::default(),
            shard_config: ShardConfig::default(),
            target_configs: Vec::new(),
            backend_config: BackendConfig::default(),
            access_control: AccessControlSpec::default(),
            dedup_window_seconds: DEFAULT_DEDUP_WINDOW_SECONDS,
        }
    }
}

/// Parses a request body into a [`NamespaceSpec`]. On failure the error names
/// the field (`targetConfigs[0].type`, `shardConfig.partitionCount`, or `body`
/// when the body is not a JSON object at all).
pub fn parse_spec(bytes: &[u8]) -> Result<NamespaceSpec, FieldErrors> {
    let mut errors = FieldErrors::default();
    // serde would also read a struct from an array of its fields: only an object is a spec.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{') {
        errors.push("body", "must be a JSON object");
        return Err(errors);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, NamespaceSpec>(&mut de) {
        Ok(spec) => match de.end() {
            Ok(()) => Ok(spec),
            Err(e) => {
                errors.push("body", crate::targets::clean_serde_message(&e.to_string()));
                Err(errors)
            }
        },
        Err(e) => {
            push_serde_error(&mut errors, "", &e);
            Err(errors)
        }
    }
}

/// Parses one `ipAllowList` entry: a CIDR or a single address; IPv4-mapped
/// IPv6 networks (`::ffff:10.0.0.0/104`) become the IPv4 network they map.
pub fn parse_ip_entry(s: &str) -> Option<IpNet> {
    let net = s
        .parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))?
        .trunc();
    if let IpNet::V6(v6) = net {
        if let Some(v4) = v6.addr().to_ipv4_mapped() {
            if v6.prefix_len() >= 96 {
                return ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
                    .ok()
                    .map(IpNet::V4);
            }
        }
    }
    Some(net)
}

fn check_range(errors: &mut FieldErrors, field: &str, v: u64, min: u64, max: u64) {
    if v < min || v > max {
        errors.push(field, format!("must be between {min} and {max}"));
    }
}

impl NamespaceSpec {
    /// Checks every rule and builds the typed namespace, or answers all the
    /// invalid fields.
    ///
    /// `previous` is the stored namespace on an update (`None` on create): its
    /// name must not change, its API key hashes are kept when
    /// `accessControl.allowedApiKeys` is absent, its topic when `topicName` is
    /// absent, and its id and audit fields are carried over (the store sets the
    /// new version and times).
    pub fn validate(self, previous: Option<&Namespace>) -> Result<Namespace, FieldErrors> {
        let mut errors = FieldErrors::default();

        let name = match (&self.name, previous) {
            (Some(n), _) if !is_valid_namespace_name(n) => {
                errors.push(
                    "name",
                    "must be 1 to 100 of [a-z0-9._-], starting with a letter or digit",
                );
                n.clone()
            }
            (Some(n), Some(p)) if *n != p.name => {
                errors.push(
                    "name",
                    "cannot be changed (must equal the namespace's name)",
                );
                n.clone()
            }
            (Some(n), _) => n.clone(),
            (None, Some(p)) => p.name.clone(),
            (None, None) => {
                errors.push("name", "required");
                String::new()
            }
        };

        let topic_name = match (&self.topic_name, previous) {
            (Some(t), _) => {
                if !is_valid_identifier(t) {
                    errors.push("topicName", "must be 1 to 100 of [A-Za-z0-9._-]");
                }
                t.clone()
            }
            (None, Some(p)) => p.topic_name.clone(),
            (None, None) => name.clone(),
        };

        if let Some(d) = &self.description {
            if d.chars().count() > MAX_DESCRIPTION_LEN {
                errors.push(
                    "description",
                    format!("at most {MAX_DESCRIPTION_LEN} characters"),
                );
            }
        }

        check_range(
            &mut errors,
            "maxMessageSize",
            self.max_message_size,
            1,
            MAX_MESSAGE_SIZE_LIMIT,
        );
        check_range(
            &mut errors,
            "messageTtlSeconds",
            self.message_ttl_seconds,
            1,
            MAX_MESSAGE_TTL_SECONDS,
        );
        check_range(
            &mut errors,
            "maxDelaySeconds",
            self.max_delay_seconds,
            0,
            MAX_DELAY_SECONDS_LIMIT,
        );
        check_range(
            &mut errors,
            "dedupWindowSeconds",
            self.dedup_window_seconds,
            1,
            MAX_DEDUP_WINDOW_SECONDS,
        );

        self.retry_policy.validate("retryPolicy", &mut errors);

        check_range(
            &mut errors,
            "dlqConfig.maxRetries",
            u64::from(self.dlq_config.max_retries),
            0,
            u64::from(MAX_ATTEMPTS_LIMIT),
        );
        check_range(
            &mut errors,
            "dlqConfig.retentionSeconds",
            self.dlq_config.retention_seconds,
            1,
            MAX_DLQ_RETENTION_SECONDS,
        );

        check_range(
            &mut errors,
            "shardConfig.partitionCount",
            u64::from(self.shard_config.partition_count),
            1,
            u64::from(MAX_PARTITION_COUNT),
        );

        let targets = validate_targets(&self.target_configs, &mut errors);

        let mut backend_config = self.backend_config.clone();
        backend_config.validate(self.backend, &topic_name, &mut errors);

        let ac = &self.access_control;
        let api_key_hashes = match (&ac.allowed_api_keys, previous) {
            (None, Some(p)) => p.api_key_hashes.clone(),
            (None, None) => Vec::new(),
            (Some(keys), _) => hash_keys(keys, &mut errors),
        };

        let rl = &ac.rate_limits;
        for (field, v) in [
            ("requestsPerMinute", rl.requests_per_minute),
            ("requestsPerHour", rl.requests_per_hour),
            ("burstLimit", rl.burst_limit),
        ] {
            if v == Some(0) {
                errors.push(
                    format!("accessControl.rateLimits.{field}"),
                    "must be greater than 0 (omit it for no limit)",
                );
            }
        }

        if ac.ip_allow_list.len() > MAX_IP_ALLOW_LIST {
            errors.push(
                "accessControl.ipAllowList",
                format!("at most {MAX_IP_ALLOW_LIST} entries"),
            );
        }
        let mut ip_allow_list = Vec::with_capacity(ac.ip_allow_list.len());
        for (i, entry) in ac.ip_allow_list.iter().enumerate() {
            match parse_ip_entry(entry.trim()) {
                Some(net) => {
                    if !ip_allow_list.contains(&net) {
                        ip_allow_list.push(net);
                    }
                }
                None => errors.push(
                    format!("accessControl.ipAllowList[{i}]"),
                    "not an IP address or CIDR (e.g. 10.0.0.0/8, 2001:db8::/32)",
                ),
            }
        }

        errors.into_result()?;

        let now = Utc::now();
        let (id, version, created_at, updated_at, created_by, updated_by) = match previous {
            Some(p) => (
                p.id.clone(),
                p.version,
                p.created_at,
                p.updated_at,
                p.created_by.clone(),
                p.updated_by.clone(),
            ),
            None => (
                ulid::Ulid::new().to_string(),
                0,
                now,
                now,
                String::new(),
                String::new(),
            ),
        };

        Ok(Namespace {
            id,
            name,
            backend: self.backend,
            topic_name,
            description: self.description,
            enabled: self.enabled,
            max_message_size: self.max_message_size,
            message_ttl_seconds: self.message_ttl_seconds,
            max_delay_seconds: self.max_delay_seconds,
            retry_policy: self.retry_policy,
            dlq_config: self.dlq_config,
            shard_config: self.shard_config,
            targets,
            backend_config,
            api_key_hashes,
            rate_limits: self.access_control.rate_limits,
            ip_allow_list,
            dedup_window_seconds: self.dedup_window_seconds,
            version,
            created_at,
            updated_at,
            created_by,
            updated_by,
        })
    }
}

/// Hashes clear keys and parses `sha256:` entries, recording bad ones;
/// duplicates are kept once.
fn hash_keys(keys: &[String], errors: &mut FieldErrors) -> Vec<ApiKeyHash> {
    if keys.len() > MAX_API_KEYS {
        errors.push(
            "accessControl.allowedApiKeys",
            format!("at most {MAX_API_KEYS} keys"),
        );
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(keys.len());
    for (i, key) in keys.iter().enumerate() {
        let field = format!("accessControl.allowedApiKeys[{i}]");
        let hash = if key.starts_with(HASH_PREFIX) {
            match ApiKeyHash::from_prefixed(key) {
                Some(h) => h,
                None => {
                    errors.push(
                        field,
                        "a sha256: entry must be followed by 64 lowercase hex digits",
                    );
                    continue;
                }
            }
        } else if key.chars().count() < MIN_API_KEY_LEN {
            errors.push(
                field,
                format!("too short: an API key needs at least {MIN_API_KEY_LEN} characters"),
            );
            continue;
        } else if key.len() > MAX_API_KEY_LEN {
            errors.push(field, format!("too long: at most {MAX_API_KEY_LEN} bytes"));
            continue;
        } else if key.chars().any(|c| c.is_control() || c.is_whitespace()) {
            errors.push(field, "must not contain whitespace or control characters");
            continue;
        } else {
            ApiKeyHash::of(key)
        };
        if seen.insert(hash) {
            out.push(hash);
        }
    }
    out
}
