//! From a namespace's configuration to its backend clients: the client
//! settings of a Kafka or SQS namespace (secrets read now, from the
//! environment variables or files `backendConfig` references), and the admin
//! step that creates its topic or queue when missing. Used by the gateway
//! (producers) and the worker (consumers) alike.

#[cfg(any(feature = "kafka", feature = "sqs"))]
use wal_core::backend::BackendError;
#[cfg(any(feature = "kafka", feature = "sqs"))]
use wal_namespace::{Namespace, SecretPolicy};

/// Kafka client settings of a `kafka` namespace, and the replication factor
/// its topic is created with.
#[cfg(feature = "kafka")]
pub fn kafka_client(
    ns: &Namespace,
    message_timeout: std::time::Duration,
    secrets: &SecretPolicy,
) -> Result<(crate::kafka::KafkaClientConfig, u16), BackendError> {
    let conn = ns
        .backend_config
        .kafka_connection(secrets)
        .map_err(|e| BackendError::Other(e.to_string()))?;
    Ok((
        crate::kafka::KafkaClientConfig {
            brokers: conn.brokers,
            properties: conn.properties,
            message_timeout,
        },
        conn.replication_factor,
    ))
}

/// SQS client settings of an `sqs` namespace, and its queue (URL or name).
#[cfg(feature = "sqs")]
pub fn sqs_client(
    ns: &Namespace,
    secrets: &SecretPolicy,
) -> Result<(crate::sqs::SqsClientConfig, String), BackendError> {
    let conn = ns
        .backend_config
        .sqs_connection(&ns.topic_name, secrets)
        .map_err(|e| BackendError::Other(e.to_string()))?;
    let credentials =
        conn.credentials.map(
            |(access_key_id, secret_access_key)| crate::sqs::SqsCredentials {
                access_key_id,
                secret_access_key,
                session_token: None,
            },
        );
    Ok((
        crate::sqs::SqsClientConfig {
            region: conn.region,
            endpoint_url: conn.endpoint_url,
            credentials,
        },
        conn.queue,
    ))
}

/// The admin step of a Kafka or SQS namespace: creates its topic (with the
/// namespace's partition count) or its queue when missing; refuses a topic
/// with fewer partitions than the namespace routes to. Nothing to do for
/// Redis Streams (streams appear with their first entry).
#[cfg_attr(not(feature = "kafka"), allow(unused_variables))]
pub async fn provision(
    ns: &wal_namespace::Namespace,
    kafka_timeout: std::time::Duration,
    secrets: &wal_namespace::SecretPolicy,
) -> Result<(), wal_core::backend::BackendError> {
    match ns.backend {
        wal_namespace::BackendKind::RedisStreams => Ok(()),
        #[cfg(feature = "kafka")]
        wal_namespace::BackendKind::Kafka => {
            let (cfg, replication) = kafka_client(ns, kafka_timeout, secrets)?;
            let wanted = ns.shard_config.partition_count.max(1);
            let state =
                crate::kafka::ensure_topic(&cfg, &ns.topic_name, wanted, replication as i16)
                    .await?;
            match state {
                crate::kafka::TopicState::Existed { partitions } if partitions < wanted => {
                    Err(BackendError::Other(format!(
                        "topic `{}` has {partitions} partitions but namespace `{}` routes to {wanted}: add partitions to the topic or lower shardConfig.partitionCount",
                        ns.topic_name, ns.name
                    )))
                }
                _ => Ok(()),
            }
        }
        #[cfg(feature = "sqs")]
        wal_namespace::BackendKind::Sqs => {
            let (cfg, queue) = sqs_client(ns, secrets)?;
            crate::sqs::ensure_queue(&cfg, &queue).await.map(|_| ())
        }
        #[allow(unreachable_patterns)]
        other => Err(wal_core::backend::BackendError::Other(format!(
            "built without the `{}` backend feature",
            other.as_str()
        ))),
    }
}
