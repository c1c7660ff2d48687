//! `backendConfig`: the settings of a namespace's log backend (SPEC §4, §7).
//!
//! One flat object; which fields apply depends on `backend`, and a field of
//! another backend is refused with its path.
//!
//! | field | backends | default | meaning |
//! | --- | --- | --- | --- |
//! | `retention` | all | `{"maxLen": 1000000}` | Redis streams kept per partition (for Kafka and SQS namespaces: the Redis streams that hold activated delays and retries) |
//! | `waitReplicas`, `waitTimeoutMs` | `redis_streams` | 0, 1000 | Redis `WAIT` before `TRUE` |
//! | `brokers` / `brokersEnv` | `kafka` | — (one required) | bootstrap servers, or the environment variable holding them (comma separated) |
//! | `acks` | `kafka` | `all` | only `all`: the idempotent producer needs it |
//! | `replicationFactor` | `kafka` | 1 | replicas of a topic the admin step creates |
//! | `properties` | `kafka` | `{}` | extra librdkafka client properties (no secrets: `sasl.password` and the like are refused here) |
//! | `secretPropertiesEnv` / `secretPropertiesFile` | `kafka` | `{}` | librdkafka properties whose values are read from an environment variable / a file |
//! | `queueUrl` | `sqs` | the queue named `topicName` | queue URL |
//! | `region` | `sqs` | `us-east-1` | AWS region |
//! | `endpointUrl` | `sqs` | AWS | another SQS endpoint (ElasticMQ, LocalStack, moto) |
//! | `accessKeyIdEnv`/`File`, `secretAccessKeyEnv`/`File` | `sqs` | the AWS default chain | static credentials, both or neither |
//!
//! Secrets are referenced by environment variable or file, read by the
//! gateway and the worker when they connect ([`BackendConfig::kafka_connection`],
//! [`BackendConfig::sqs_connection`]); they are never stored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use wal_core::backend::Retention;
use wal_core::validate::FieldErrors;

use crate::secrets::{SecretError, SecretPolicy, SecretRef};
use crate::targets::is_valid_env_name;

/// Retention when `backendConfig.retention` is absent: about this many entries per partition.
pub const DEFAULT_RETENTION_MAX_LEN: u64 = 1_000_000;
/// Largest `backendConfig.waitReplicas`.
pub const MAX_WAIT_REPLICAS: u32 = 16;
/// Default `backendConfig.waitTimeoutMs`.
pub const DEFAULT_WAIT_TIMEOUT_MS: u64 = 1_000;
/// Largest `backendConfig.waitTimeoutMs`.
pub const MAX_WAIT_TIMEOUT_MS: u64 = 60_000;
/// Largest `backendConfig.replicationFactor`.
pub const MAX_REPLICATION_FACTOR: u16 = 16;
/// Region of an SQS namespace without `region`.
pub const DEFAULT_SQS_REGION: &str = "us-east-1";
/// Longest SQS queue name.
pub const MAX_SQS_QUEUE_NAME: usize = 80;

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

/// `backendConfig`: settings of the log backend (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct BackendConfig {
    /// How much of the Redis streams is kept (default `{"maxLen": 1000000}`
    /// per partition; always set once validated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionSpec>,
    /// Replicas that must confirm a write before it is `TRUE` (Redis `WAIT`),
    /// 0 to 16 (default 0: none). `redis_streams` only.
    pub wait_replicas: u32,
    /// How long to wait for those replicas, 1 to 60000 ms (default 1000).
    pub wait_timeout_ms: u64,
    /// Kafka bootstrap servers (`host:port`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub brokers: Vec<String>,
    /// Environment variable holding the Kafka bootstrap servers, comma separated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brokers_env: Option<String>,
    /// Kafka producer acknowledgements: only `all`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acks: Option<String>,
    /// Replicas of a Kafka topic created by the admin step (default 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication_factor: Option<u16>,
    /// Extra librdkafka client properties (not secrets).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
    /// librdkafka properties read from environment variables: property → variable.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub secret_properties_env: BTreeMap<String, String>,
    /// librdkafka properties read from files: property → absolute path.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub secret_properties_file: BTreeMap<String, String>,
    /// SQS queue URL (default: the queue named `topicName`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_url: Option<String>,
    /// AWS region (default `us-east-1`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// SQS endpoint other than AWS's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// Environment variable holding the AWS access key id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_id_env: Option<String>,
    /// File holding the AWS access key id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_id_file: Option<String>,
    /// Environment variable holding the AWS secret access key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_access_key_env: Option<String>,
    /// File holding the AWS secret access key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_access_key_file: Option<String>,
}

impl Default for BackendConfig {
    fn default() -> Self {
        Self {
            retention: None,
            wait_replicas: 0,
            wait_timeout_ms: DEFAULT_WAIT_TIMEOUT_MS,
            brokers: Vec::new(),
            brokers_env: None,
            acks: None,
            replication_factor: None,
            properties: BTreeMap::new(),
            secret_properties_env: BTreeMap::new(),
            secret_properties_file: BTreeMap::new(),
            queue_url: None,
            region: None,
            endpoint_url: None,
            access_key_id_env: None,
            access_key_id_file: None,
            secret_access_key_env: None,
            secret_access_key_file: None,
        }
    }
}

/// How to reach a namespace's Kafka cluster, secrets resolved.
#[derive(Clone, PartialEq, Eq)]
pub struct KafkaConnection {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// Extra client properties, secret ones included.
    pub properties: BTreeMap<String, String>,
    /// Replicas of a topic the admin step creates.
    pub replication_factor: u16,
}

impl std::fmt::Debug for KafkaConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConnection")
            .field("brokers", &self.brokers)
            .field("properties", &self.properties.keys().collect::<Vec<_>>())
            .field("replication_factor", &self.replication_factor)
            .finish()
    }
}

/// How to reach a namespace's SQS queue, secrets resolved.
#[derive(Clone, PartialEq, Eq)]
pub struct SqsConnection {
    /// AWS region.
    pub region: String,
    /// Endpoint other than AWS's.
    pub endpoint_url: Option<String>,
    /// Static credentials (access key id, secret), or `None` for the AWS default chain.
    pub credentials: Option<(String, String)>,
    /// Queue URL, or the queue's name.
    pub queue: String,
}

impl std::fmt::Debug for SqsConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqsConnection")
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("static_credentials", &self.credentials.is_some())
            .field("queue", &self.queue)
            .finish()
    }
}

/// Why a backend connection could not be resolved at run time.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The namespace is on another backend.
    #[error("namespace backend is {0}")]
    WrongBackend(&'static str),
    /// A referenced secret cannot be read, or may not be.
    #[error("backendConfig: {0}")]
    Secret(#[from] SecretError),
}

/// Property names that hold secrets and so must come by reference.
fn is_secret_property(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "jaas",
        "token",
        "key.pem",
        "keystore",
        "oauthbearer.config",
    ]
    .iter()
    .any(|s| k.contains(s))
}

/// Properties that make librdkafka load a library, run a command or read a
/// file of the program's host: a namespace may not set them at all
/// (`plugin.library.paths` would let an admin key load any shared object).
fn reaches_the_host(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k == "plugin.library.paths"
        || k == "ssl.providers"
        || k.starts_with("ssl.engine")
        || k.ends_with(".location")
        || k.ends_with(".directory")
        || k.ends_with(".cmd")
        || k.contains("keytab")
        || k.contains("kinit")
}

const HOST_REFUSAL: &str =
    "names a library, command or file of the program's host: not settable by a namespace";

fn is_valid_property_name(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 128
        && key
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-')
}

/// Properties the producer and consumer set themselves, for the guarantees.
const RESERVED_PROPERTIES: &[&str] = &[
    "bootstrap.servers",
    "acks",
    "request.required.acks",
    "enable.idempotence",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "group.id",
    "client.id",
    "auto.offset.reset",
    "message.timeout.ms",
    "delivery.timeout.ms",
    "isolation.level",
];

impl BackendConfig {
    /// The retention, or the default (`MaxLen(1000000)`) when absent.
    pub fn effective_retention(&self) -> Retention {
        self.retention
            .as_ref()
            .and_then(RetentionSpec::to_retention)
            .unwrap_or(Retention::MaxLen(DEFAULT_RETENTION_MAX_LEN))
    }

    /// Checks the fields for `backend`, filling the defaults; `topic` is the
    /// namespace's `topicName`.
    pub(crate) fn validate(&mut self, backend: BackendKind, topic: &str, errors: &mut FieldErrors) {
        match &self.retention {
            None => {
                self.retention = Some(RetentionSpec::from_retention(Retention::MaxLen(
                    DEFAULT_RETENTION_MAX_LEN,
                )))
            }
            Some(r) => match (r.max_len, r.max_age_seconds) {
                (Some(_), Some(_)) | (None, None) => errors.push(
                    "backendConfig.retention",
                    "give exactly one of maxLen, maxAgeSeconds",
                ),
                (Some(0), None) => {
                    errors.push("backendConfig.retention.maxLen", "must be greater than 0")
                }
                (None, Some(0)) => errors.push(
                    "backendConfig.retention.maxAgeSeconds",
                    "must be greater than 0",
                ),
                _ => {}
            },
        }
        if self.wait_replicas > MAX_WAIT_REPLICAS {
            errors.push(
                "backendConfig.waitReplicas",
                format!("must be between 0 and {MAX_WAIT_REPLICAS}"),
            );
        }
        if !(1..=MAX_WAIT_TIMEOUT_MS).contains(&self.wait_timeout_ms) {
            errors.push(
                "backendConfig.waitTimeoutMs",
                format!("must be between 1 and {MAX_WAIT_TIMEOUT_MS}"),
            );
        }
        let not_for = |errors: &mut FieldErrors, field: &str, set: bool, only: &str| {
            if set {
                errors.push(
                    format!("backendConfig.{field}"),
                    format!("applies to backend {only} only"),
                );
            }
        };
        if backend != BackendKind::RedisStreams {
            not_for(
                errors,
                "waitReplicas",
                self.wait_replicas > 0,
                "redis_streams",
            );
        }
        let kafka_fields = [
            ("brokers", !self.brokers.is_empty()),
            ("brokersEnv", self.brokers_env.is_some()),
            ("acks", self.acks.is_some()),
            ("replicationFactor", self.replication_factor.is_some()),
            ("properties", !self.properties.is_empty()),
            (
                "secretPropertiesEnv",
                !self.secret_properties_env.is_empty(),
            ),
            (
                "secretPropertiesFile",
                !self.secret_properties_file.is_empty(),
            ),
        ];
        let sqs_fields = [
            ("queueUrl", self.queue_url.is_some()),
            ("region", self.region.is_some()),
            ("endpointUrl", self.endpoint_url.is_some()),
            ("accessKeyIdEnv", self.access_key_id_env.is_some()),
            ("accessKeyIdFile", self.access_key_id_file.is_some()),
            ("secretAccessKeyEnv", self.secret_access_key_env.is_some()),
            ("secretAccessKeyFile", self.secret_access_key_file.is_some()),
        ];
        if backend != BackendKind::Kafka {
            for (field, set) in kafka_fields {
                not_for(errors, field, set, "kafka");
            }
        }
        if backend != BackendKind::Sqs {
            for (field, set) in sqs_fields {
                not_for(errors, field, set, "sqs");
            }
        }
        match backend {
            BackendKind::RedisStreams => {}
            BackendKind::Kafka => self.validate_kafka(topic, errors),
            BackendKind::Sqs => self.validate_sqs(topic, errors),
        }
    }

    fn validate_kafka(&mut self, topic: &str, errors: &mut FieldErrors) {
        match (self.brokers.is_empty(), &self.brokers_env) {
            (true, None) => errors.push(
                "backendConfig.brokers",
                "required for backend kafka: give brokers or brokersEnv",
            ),
            (false, Some(_)) => errors.push(
                "backendConfig.brokersEnv",
                "give only one of brokers and brokersEnv",
            ),
            (_, Some(e)) if !is_valid_env_name(e) => errors.push(
                "backendConfig.brokersEnv",
                "must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*)",
            ),
            _ => {}
        }
        for (i, b) in self.brokers.iter().enumerate() {
            if !is_host_port(b) {
                errors.push(format!("backendConfig.brokers[{i}]"), "must be host:port");
            }
        }
        match self.acks.as_deref() {
            None | Some("all") | Some("-1") => self.acks = Some("all".into()),
            Some(_) => errors.push(
                "backendConfig.acks",
                "must be `all`: the idempotent producer and durable TRUE need every in-sync replica",
            ),
        }
        let rf = *self.replication_factor.get_or_insert(1);
        if !(1..=MAX_REPLICATION_FACTOR).contains(&rf) {
            errors.push(
                "backendConfig.replicationFactor",
                format!("must be between 1 and {MAX_REPLICATION_FACTOR}"),
            );
        }
        for (key, value) in &self.properties {
            let path = format!("backendConfig.properties.{key}");
            if !is_valid_property_name(key) {
                errors.push(path, "must be a librdkafka property name");
            } else if RESERVED_PROPERTIES.contains(&key.as_str()) {
                errors.push(path, "is set by the service for its guarantees");
            } else if reaches_the_host(key) {
                errors.push(path, HOST_REFUSAL);
            } else if is_secret_property(key) {
                errors.push(
                    path,
                    "holds a secret: give it in secretPropertiesEnv or secretPropertiesFile",
                );
            } else if value.len() > 4096 {
                errors.push(path, "must be at most 4096 bytes");
            }
        }
        for (key, env) in &self.secret_properties_env {
            let path = format!("backendConfig.secretPropertiesEnv.{key}");
            if reaches_the_host(key) {
                errors.push(path, HOST_REFUSAL);
            } else if !is_valid_property_name(key) || RESERVED_PROPERTIES.contains(&key.as_str()) {
                errors.push(
                    path,
                    "must be a librdkafka property the service does not set",
                );
            } else if !is_valid_env_name(env) {
                errors.push(
                    path,
                    "must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*)",
                );
            }
        }
        for (key, file) in &self.secret_properties_file {
            let path = format!("backendConfig.secretPropertiesFile.{key}");
            if reaches_the_host(key) {
                errors.push(path, HOST_REFUSAL);
            } else if !is_valid_property_name(key) || RESERVED_PROPERTIES.contains(&key.as_str()) {
                errors.push(
                    path,
                    "must be a librdkafka property the service does not set",
                );
            } else if !file.starts_with('/') {
                errors.push(path, "must be an absolute file path");
            }
        }
        if topic.len() > 249 || topic == "." || topic == ".." {
            errors.push("topicName", "is not a valid Kafka topic name");
        }
    }

    fn validate_sqs(&mut self, topic: &str, errors: &mut FieldErrors) {
        if let Some(u) = &self.queue_url {
            if !is_http_url(u) {
                errors.push("backendConfig.queueUrl", "must be an http or https URL");
            }
        } else {
            let base = topic.strip_suffix(".fifo").unwrap_or(topic);
            if topic.len() > MAX_SQS_QUEUE_NAME || base.contains('.') {
                errors.push(
                    "topicName",
                    "is the SQS queue name: at most 80 of [A-Za-z0-9_-], with an optional .fifo suffix",
                );
            }
        }
        if let Some(e) = &self.endpoint_url {
            if !is_http_url(e) {
                errors.push("backendConfig.endpointUrl", "must be an http or https URL");
            }
        }
        let region = self.region.get_or_insert_with(|| DEFAULT_SQS_REGION.into());
        if region.is_empty()
            || region.len() > 64
            || !region
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        {
            errors.push(
                "backendConfig.region",
                "must be an AWS region name such as eu-west-1",
            );
        }
        let key_id = (&self.access_key_id_env, &self.access_key_id_file);
        let secret = (&self.secret_access_key_env, &self.secret_access_key_file);
        for (name, (env, file)) in [("accessKeyId", key_id), ("secretAccessKey", secret)] {
            if env.is_some() && file.is_some() {
                errors.push(
                    format!("backendConfig.{name}File"),
                    format!("give only one of {name}Env and {name}File"),
                );
            }
            if let Some(e) = env {
                if !is_valid_env_name(e) {
                    errors.push(
                        format!("backendConfig.{name}Env"),
                        "must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*)",
                    );
                }
            }
            if file.as_ref().is_some_and(|f| !f.starts_with('/')) {
                errors.push(
                    format!("backendConfig.{name}File"),
                    "must be an absolute file path",
                );
            }
        }
        let has_id = key_id.0.is_some() || key_id.1.is_some();
        let has_secret = secret.0.is_some() || secret.1.is_some();
        if has_id != has_secret {
            errors.push(
                "backendConfig.secretAccessKeyEnv",
                "give the access key id and the secret access key together (or neither, for the AWS default chain)",
            );
        }
    }

    /// The Kafka cluster of a `kafka` namespace, reading referenced secrets now.
    pub fn kafka_connection(
        &self,
        policy: &SecretPolicy,
    ) -> Result<KafkaConnection, ConnectionError> {
        let brokers = match &self.brokers_env {
            Some(env) => policy.read(&SecretRef::Env(env.clone()))?,
            None if self.brokers.is_empty() => {
                return Err(ConnectionError::WrongBackend("not kafka"))
            }
            None => self.brokers.join(","),
        };
        let mut properties = self.properties.clone();
        for (key, env) in &self.secret_properties_env {
            properties.insert(key.clone(), policy.read(&SecretRef::Env(env.clone()))?);
        }
        for (key, file) in &self.secret_properties_file {
            properties.insert(key.clone(), policy.read(&SecretRef::File(file.clone()))?);
        }
        Ok(KafkaConnection {
            brokers,
            properties,
            replication_factor: self.replication_factor.unwrap_or(1),
        })
    }

    /// The SQS queue of an `sqs` namespace whose `topicName` is `topic`,
    /// reading referenced secrets now.
    pub fn sqs_connection(
        &self,
        topic: &str,
        policy: &SecretPolicy,
    ) -> Result<SqsConnection, ConnectionError> {
        let credentials = match (
            SecretRef::from_pair(&self.access_key_id_env, &self.access_key_id_file),
            SecretRef::from_pair(&self.secret_access_key_env, &self.secret_access_key_file),
        ) {
            (Some(id), Some(secret)) => Some((policy.read(&id)?, policy.read(&secret)?)),
            _ => None,
        };
        Ok(SqsConnection {
            region: self
                .region
                .clone()
                .unwrap_or_else(|| DEFAULT_SQS_REGION.into()),
            endpoint_url: self.endpoint_url.clone(),
            credentials,
            queue: self.queue_url.clone().unwrap_or_else(|| topic.to_string()),
        })
    }
}

fn is_host_port(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && host.len() <= 255
                && !host.contains(['/', ' ', ','])
                && port.parse::<u16>().is_ok_and(|p| p > 0)
        }
        None => false,
    }
}

fn is_http_url(s: &str) -> bool {
    url::Url::parse(s).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https") && u.host_str().is_some() && u.username().is_empty()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(backend: BackendKind, json: &str) -> (BackendConfig, Vec<String>) {
        let mut cfg: BackendConfig = serde_json::from_str(json).expect("parses");
        let mut errors = FieldErrors::default();
        cfg.validate(backend, "orders", &mut errors);
        let fields = errors.errors().iter().map(|e| e.field.clone()).collect();
        (cfg, fields)
    }

    #[test]
    fn redis_namespace_refuses_kafka_and_sqs_fields() {
        let (_, errors) = check(
            BackendKind::RedisStreams,
            r#"{"brokers":["k:9092"],"queueUrl":"http://q"}"#,
        );
        assert_eq!(errors, ["backendConfig.brokers", "backendConfig.queueUrl"]);
    }

    #[test]
    fn kafka_needs_brokers_and_only_acks_all() {
        let (_, errors) = check(BackendKind::Kafka, r#"{"acks":"1"}"#);
        assert_eq!(errors, ["backendConfig.brokers", "backendConfig.acks"]);
        let (cfg, errors) = check(BackendKind::Kafka, r#"{"brokers":["127.0.0.1:9092"]}"#);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(cfg.acks.as_deref(), Some("all"));
        assert_eq!(cfg.replication_factor, Some(1));
    }

    #[test]
    fn kafka_refuses_secrets_in_clear_and_reserved_properties() {
        let (_, errors) = check(
            BackendKind::Kafka,
            r#"{"brokers":["k:1"],"properties":{"sasl.password":"x","enable.idempotence":"false","linger.ms":"5"},
                "secretPropertiesEnv":{"sasl.password":"bad name"}}"#,
        );
        assert_eq!(
            errors,
            [
                "backendConfig.properties.enable.idempotence",
                "backendConfig.properties.sasl.password",
                "backendConfig.secretPropertiesEnv.sasl.password"
            ]
        );
    }

    #[test]
    fn properties_that_reach_the_host_are_refused() {
        let (_, errors) = check(
            BackendKind::Kafka,
            r#"{"brokers":["a:1"],"properties":{"plugin.library.paths":"/tmp/evil.so","ssl.ca.location":"/etc/shadow","sasl.kerberos.kinit.cmd":"sh -c id","linger.ms":"5"},"secretPropertiesFile":{"sasl.kerberos.keytab":"/run/secrets/wal/k"}}"#,
        );
        assert_eq!(
            errors,
            [
                "backendConfig.properties.plugin.library.paths",
                "backendConfig.properties.sasl.kerberos.kinit.cmd",
                "backendConfig.properties.ssl.ca.location",
                "backendConfig.secretPropertiesFile.sasl.kerberos.keytab"
            ]
        );
    }

    #[test]
    fn kafka_connection_reads_referenced_secrets() {
        std::env::set_var("WAL_TEST_KAFKA_BROKERS_X1", "a:1,b:2");
        std::env::set_var("WAL_TEST_KAFKA_PASSWORD_X1", " s3cret \n");
        let (cfg, errors) = check(
            BackendKind::Kafka,
            r#"{"brokersEnv":"WAL_TEST_KAFKA_BROKERS_X1","secretPropertiesEnv":{"sasl.password":"WAL_TEST_KAFKA_PASSWORD_X1"}}"#,
        );
        assert!(errors.is_empty(), "{errors:?}");
        let policy = SecretPolicy::new("WAL_TEST_", "/nonexistent");
        let conn = cfg.kafka_connection(&policy).expect("resolves");
        assert_eq!(conn.brokers, "a:1,b:2");
        assert_eq!(conn.properties["sasl.password"], "s3cret");
        assert!(!format!("{conn:?}").contains("s3cret"));
        let missing = BackendConfig {
            brokers_env: Some("WAL_TEST_UNSET_VARIABLE_X1".into()),
            ..BackendConfig::default()
        };
        assert!(matches!(
            missing.kafka_connection(&policy),
            Err(ConnectionError::Secret(SecretError::MissingEnv(_)))
        ));
        // A variable outside the policy's prefix is never read.
        assert!(matches!(
            cfg.kafka_connection(&SecretPolicy::default()),
            Err(ConnectionError::Secret(SecretError::NotAllowed { .. }))
        ));
    }

    #[test]
    fn sqs_defaults_and_credentials_come_in_pairs() {
        let (cfg, errors) = check(BackendKind::Sqs, "{}");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(cfg.region.as_deref(), Some(DEFAULT_SQS_REGION));
        let conn = cfg
            .sqs_connection("orders", &SecretPolicy::default())
            .expect("resolves");
        assert_eq!(conn.queue, "orders");
        assert_eq!(conn.credentials, None);
        let (_, errors) = check(
            BackendKind::Sqs,
            r#"{"accessKeyIdEnv":"AWS_KEY","endpointUrl":"not a url","region":"EU"}"#,
        );
        assert_eq!(
            errors,
            [
                "backendConfig.endpointUrl",
                "backendConfig.region",
                "backendConfig.secretAccessKeyEnv"
            ]
        );
    }

    #[test]
    fn sqs_queue_name_rules_apply_without_a_queue_url() {
        let mut errors = FieldErrors::default();
        let mut cfg = BackendConfig::default();
        cfg.validate(BackendKind::Sqs, "orders.v2", &mut errors);
        assert_eq!(errors.errors()[0].field, "topicName");
        let mut errors = FieldErrors::default();
        cfg.validate(BackendKind::Sqs, "orders-v2.fifo", &mut errors);
        assert!(errors.is_empty());
    }
}
