//! Which producer a namespace's writes go through: the Redis Streams one,
//! or a Kafka / SQS producer per cluster or endpoint, created on first use
//! and shared by every namespace with the same connection settings. Kafka
//! and SQS producers are wrapped in [`RedisIdempotency`] so that
//! `Idempotency-Key` means the same on every backend.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use wal_backends::namespace_clients;
use wal_backends::redis_streams::RedisStreamProducer;
use wal_core::backend::{LogProducer, LogSettings};
use wal_namespace::{BackendKind, Namespace, SecretPolicy};
use wal_redis::RedisConnection;
use wal_state::RedisIdempotency;

/// Why a namespace has no producer right now.
#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    /// The backend's connection settings cannot be resolved (a referenced
    /// secret is missing) or the client cannot be created.
    #[error("the {backend} backend of namespace `{namespace}` is not usable: {reason}")]
    Unusable {
        /// Backend name.
        backend: &'static str,
        /// Namespace.
        namespace: String,
        /// What is wrong.
        reason: String,
    },
}

/// Producers by backend and connection.
pub struct Producers {
    redis_conn: RedisConnection,
    redis: Arc<dyn LogProducer>,
    #[cfg(feature = "kafka")]
    kafka:
        tokio::sync::Mutex<HashMap<wal_backends::kafka::KafkaClientConfig, Arc<dyn LogProducer>>>,
    #[cfg(feature = "sqs")]
    sqs: tokio::sync::Mutex<HashMap<wal_backends::sqs::SqsClientConfig, Arc<dyn LogProducer>>>,
    kafka_message_timeout: Duration,
    #[cfg_attr(not(any(feature = "kafka", feature = "sqs")), allow(dead_code))]
    secrets: SecretPolicy,
}

impl Producers {
    /// Producers over the gateway's Redis connection; Kafka and SQS client
    /// secrets are read as `secrets` allows.
    pub fn new(
        redis_conn: RedisConnection,
        kafka_message_timeout: Duration,
        secrets: SecretPolicy,
    ) -> Self {
        Self {
            secrets,
            redis: Arc::new(RedisStreamProducer::new(redis_conn.clone())),
            redis_conn,
            #[cfg(feature = "kafka")]
            kafka: Default::default(),
            #[cfg(feature = "sqs")]
            sqs: Default::default(),
            kafka_message_timeout,
        }
    }

    /// The producer for `ns`, and the log settings to publish with.
    pub async fn for_namespace(
        &self,
        ns: &Namespace,
    ) -> Result<(Arc<dyn LogProducer>, LogSettings), ProducerError> {
        let settings = ns.log_settings();
        let unusable = |reason: String| ProducerError::Unusable {
            backend: ns.backend.as_str(),
            namespace: ns.name.clone(),
            reason,
        };
        match ns.backend {
            BackendKind::RedisStreams => Ok((self.redis.clone(), settings)),
            #[cfg(feature = "kafka")]
            BackendKind::Kafka => {
                let (cfg, _) =
                    namespace_clients::kafka_client(ns, self.kafka_message_timeout, &self.secrets)
                        .map_err(|e| unusable(e.to_string()))?;
                let mut map = self.kafka.lock().await;
                if let Some(p) = map.get(&cfg) {
                    return Ok((p.clone(), settings));
                }
                let producer = wal_backends::kafka::KafkaProducer::new(&cfg)
                    .map_err(|e| unusable(e.to_string()))?;
                let p: Arc<dyn LogProducer> =
                    Arc::new(RedisIdempotency::new(self.redis_conn.clone(), producer));
                map.insert(cfg, p.clone());
                Ok((p, settings))
            }
            #[cfg(feature = "sqs")]
            BackendKind::Sqs => {
                let (cfg, queue) = namespace_clients::sqs_client(ns, &self.secrets)
                    .map_err(|e| unusable(e.to_string()))?;
                let settings = LogSettings {
                    topic: queue,
                    ..settings
                };
                let mut map = self.sqs.lock().await;
                if let Some(p) = map.get(&cfg) {
                    return Ok((p.clone(), settings));
                }
                let producer = wal_backends::sqs::SqsProducer::new(&cfg).await;
                let p: Arc<dyn LogProducer> =
                    Arc::new(RedisIdempotency::new(self.redis_conn.clone(), producer));
                map.insert(cfg, p.clone());
                Ok((p, settings))
            }
            #[allow(unreachable_patterns)]
            other => Err(unusable(format!(
                "this gateway was built without the `{}` feature",
                other.as_str()
            ))),
        }
    }
}

impl Producers {
    /// The admin step of a Kafka or SQS namespace (creates its topic or
    /// queue when missing); nothing for Redis Streams.
    pub async fn provision(&self, ns: &Namespace) -> Result<(), ProducerError> {
        namespace_clients::provision(ns, self.kafka_message_timeout, &self.secrets)
            .await
            .map_err(|e| ProducerError::Unusable {
                backend: ns.backend.as_str(),
                namespace: ns.name.clone(),
                reason: e.to_string(),
            })
    }
}
