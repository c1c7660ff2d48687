//! The validated, typed namespace ([`Namespace`]) that the gateway and the
//! worker use, and the admin API's view of it ([`NamespaceView`]), which
//! never contains API keys or their hashes.
//!
//! A `Namespace` only comes out of
//! [`NamespaceSpec::validate`](crate::spec::NamespaceSpec::validate) (directly
//! or through the store), so every value in it is within bounds.

use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::Serialize;
use wal_core::backend::LogSettings;
use wal_core::retry::RetryPolicy;

use crate::api_key::{any_matches, ApiKeyHash};
use crate::spec::{
    AccessControlSpec, BackendConfig, BackendKind, DlqConfig, NamespaceSpec, RateLimits,
    ShardConfig,
};
use crate::targets::{TargetConfig, TargetConfigSpec};

/// A validated namespace.
#[derive(Clone, Debug, PartialEq)]
pub struct Namespace {
    /// Stable id (a ULID), assigned on create.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Log backend.
    pub backend: BackendKind,
    /// Stream / topic / queue name.
    pub topic_name: String,
    /// Free text.
    pub description: Option<String>,
    /// Whether writes are accepted.
    pub enabled: bool,
    /// Largest payload, in bytes.
    pub max_message_size: u64,
    /// Default time to live of a message, in seconds.
    pub message_ttl_seconds: u64,
    /// Largest delivery delay a write may ask for, in seconds.
    pub max_delay_seconds: u64,
    /// Default retry policy.
    pub retry_policy: RetryPolicy,
    /// Dead-letter settings.
    pub dlq_config: DlqConfig,
    /// Partitioning.
    pub shard_config: ShardConfig,
    /// Delivery targets, in the configured order.
    pub targets: Vec<TargetConfig>,
    /// Backend settings; `retention` is always set.
    pub backend_config: BackendConfig,
    /// SHA-256 hashes of the API keys allowed to write (empty: any valid key).
    pub api_key_hashes: Vec<ApiKeyHash>,
    /// Request rate limits.
    pub rate_limits: RateLimits,
    /// Client networks allowed to write (empty: all).
    pub ip_allow_list: Vec<IpNet>,
    /// How long an `Idempotency-Key` is remembered, in seconds.
    pub dedup_window_seconds: u64,
    /// Configuration version: 1 on create, incremented by every update.
    pub version: i64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
    /// Fingerprint of the admin key that created it.
    pub created_by: String,
    /// Fingerprint of the admin key that last changed it.
    pub updated_by: String,
}

impl Namespace {
    /// What a log backend needs to know about this namespace.
    pub fn log_settings(&self) -> LogSettings {
        LogSettings {
            namespace: self.name.clone(),
            topic: self.topic_name.clone(),
            partition_count: self.shard_config.partition_count,
            shard_strategy: self.shard_config.strategy,
            retention: self.backend_config.effective_retention(),
            wait_replicas: self.backend_config.wait_replicas,
            wait_timeout: Duration::from_millis(self.backend_config.wait_timeout_ms),
            dedup_window: Duration::from_secs(self.dedup_window_seconds),
        }
    }

    /// Whether a client at `ip` may write. An empty allow list allows all; an
    /// IPv4-mapped IPv6 address (`::ffff:10.1.2.3`) matches IPv4 entries.
    pub fn ip_allowed(&self, ip: IpAddr) -> bool {
        if self.ip_allow_list.is_empty() {
            return true;
        }
        let canonical = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            IpAddr::V4(_) => ip,
        };
        self.ip_allow_list
            .iter()
            .any(|net| net.contains(&canonical) || net.contains(&ip))
    }

    /// Whether the namespace restricts writes to a list of API keys.
    pub fn has_key_allow_list(&self) -> bool {
        !self.api_key_hashes.is_empty()
    }

    /// Whether `presented` is one of the allowed keys, compared in constant
    /// time against every stored hash. `false` when there is no list (see
    /// [`has_key_allow_list`](Self::has_key_allow_list)).
    pub fn key_allowed(&self, presented: &ApiKeyHash) -> bool {
        any_matches(&self.api_key_hashes, presented)
    }

    /// The enabled targets, in the configured order.
    pub fn enabled_targets(&self) -> impl Iterator<Item = &TargetConfig> {
        self.targets.iter().filter(|t| t.enabled)
    }

    /// The target named `identifier`, enabled or not.
    pub fn target(&self, identifier: &str) -> Option<&TargetConfig> {
        self.targets.iter().find(|t| t.identifier == identifier)
    }

    /// The wire form, with API keys as `sha256:` entries (so it validates back
    /// to the same namespace). Used for storage; never answer it to a client.
    pub fn to_spec(&self) -> NamespaceSpec {
        NamespaceSpec {
            name: Some(self.name.clone()),
            backend: self.backend,
            topic_name: Some(self.topic_name.clone()),
            description: self.description.clone(),
            enabled: self.enabled,
            max_message_size: self.max_message_size,
            message_ttl_seconds: self.message_ttl_seconds,
            max_delay_seconds: self.max_delay_seconds,
            retry_policy: self.retry_policy.clone(),
            dlq_config: self.dlq_config.clone(),
            shard_config: self.shard_config.clone(),
            target_configs: self.targets.iter().map(TargetConfig::to_spec).collect(),
            backend_config: self.backend_config.clone(),
            access_control: AccessControlSpec {
                allowed_api_keys: Some(
                    self.api_key_hashes
                        .iter()
                        .map(ApiKeyHash::to_prefixed)
                        .collect(),
                ),
                rate_limits: self.rate_limits.clone(),
                ip_allow_list: self.ip_allow_list.iter().map(IpNet::to_string).collect(),
            },
            dedup_window_seconds: self.dedup_window_seconds,
        }
    }

    /// What the namespace's log is outside this service, when two
    /// namespaces could name the same one: its Kafka topic, or its SQS queue
    /// (URL, else name). `None` for Redis Streams, whose streams are keyed
    /// by the namespace's own name. Two namespaces never share one.
    pub fn log_identity(&self) -> Option<(String, &'static str)> {
        match self.backend {
            BackendKind::RedisStreams => None,
            BackendKind::Kafka => Some((format!("kafka topic {}", self.topic_name), "topicName")),
            BackendKind::Sqs => Some(match &self.backend_config.queue_url {
                Some(url) => (format!("sqs queue {url}"), "backendConfig.queueUrl"),
                None => (format!("sqs queue {}", self.topic_name), "topicName"),
            }),
        }
    }

    /// The admin API's answer: the configuration without keys or hashes.
    pub fn view(&self) -> NamespaceView {
        NamespaceView {
            id: self.id.clone(),
            name: self.name.clone(),
            backend: self.backend,
            topic_name: self.topic_name.clone(),
            description: self.description.clone(),
            enabled: self.enabled,
            max_message_size: self.max_message_size,
            message_ttl_seconds: self.message_ttl_seconds,
            max_delay_seconds: self.max_delay_seconds,
            retry_policy: self.retry_policy.clone(),
            dlq_config: self.dlq_config.clone(),
            shard_config: self.shard_config.clone(),
            target_configs: self.targets.clone(),
            backend_config: self.backend_config.clone(),
            access_control: AccessControlView {
                allowed_api_key_count: self.api_key_hashes.len(),
                rate_limits: self.rate_limits.clone(),
                ip_allow_list: self.ip_allow_list.iter().map(IpNet::to_string).collect(),
            },
            dedup_window_seconds: self.dedup_window_seconds,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
            created_by: self.created_by.clone(),
            updated_by: self.updated_by.clone(),
        }
    }
}

/// `accessControl` as answered by the admin API: how many keys, never which.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessControlView {
    /// Number of allowed API keys (0: any valid key may write).
    pub allowed_api_key_count: usize,
    /// Request rate limits.
    pub rate_limits: RateLimits,
    /// Allowed client networks, as CIDRs.
    pub ip_allow_list: Vec<String>,
}

/// `GET /api/v1/namespaces/{name}`: the spec's shape with every default filled
/// in, `accessControl.allowedApiKeys` replaced by `allowedApiKeyCount`, and
/// the audit fields.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceView {
    /// Stable id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Log backend.
    pub backend: BackendKind,
    /// Stream / topic / queue name.
    pub topic_name: String,
    /// Free text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether writes are accepted.
    pub enabled: bool,
    /// Largest payload, in bytes.
    pub max_message_size: u64,
    /// Default time to live of a message, in seconds.
    pub message_ttl_seconds: u64,
    /// Largest delivery delay, in seconds.
    pub max_delay_seconds: u64,
    /// Default retry policy.
    pub retry_policy: RetryPolicy,
    /// Dead-letter settings.
    pub dlq_config: DlqConfig,
    /// Partitioning.
    pub shard_config: ShardConfig,
    /// Delivery targets.
    #[schema(value_type = Vec<TargetConfigSpec>)]
    pub target_configs: Vec<TargetConfig>,
    /// Backend settings.
    pub backend_config: BackendConfig,
    /// Access control, without keys.
    pub access_control: AccessControlView,
    /// Idempotency window, in seconds.
    pub dedup_window_seconds: u64,
    /// Configuration version.
    pub version: i64,
    /// Creation time (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    /// Last change (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
    /// Fingerprint of the admin key that created it.
    pub created_by: String,
    /// Fingerprint of the admin key that last changed it.
    pub updated_by: String,
}
