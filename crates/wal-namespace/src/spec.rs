//! The namespace configuration as sent to the admin API (SPEC §4): camelCase,
//! unknown fields rejected, every absent field taking the documented default.
//!
//! [`parse_spec`] turns a request body into a [`NamespaceSpec`] with the path
//! of the offending field on error; [`NamespaceSpec::validate`] (in
//! [`crate::validate`]) checks every rule, collecting *all* field errors, and
//! produces the typed [`Namespace`](crate::Namespace). This module depends on
//! neither.
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

use serde::{Deserialize, Serialize};
use wal_core::retry::RetryPolicy;
use wal_core::routing::ShardStrategy;
use wal_core::validate::FieldErrors;

pub use crate::backend_config::{
    BackendConfig, BackendKind, RetentionSpec, DEFAULT_RETENTION_MAX_LEN, DEFAULT_WAIT_TIMEOUT_MS,
    MAX_WAIT_REPLICAS, MAX_WAIT_TIMEOUT_MS,
};
use crate::targets::{push_serde_error, TargetConfigSpec};

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
