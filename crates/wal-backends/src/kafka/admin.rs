//! Topic administration: create a namespace's topic when it is missing.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::types::RDKafkaErrorCode;
use wal_core::backend::BackendError;

use super::{backend_error, safe_error, KafkaClientConfig, TracingContext};

/// How long one admin or metadata request may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What [`ensure_topic`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopicState {
    /// The topic did not exist and was created as asked.
    Created,
    /// The topic already existed (and was left as it is).
    Existed {
        /// Its partition count, which may differ from the one asked for.
        partitions: u32,
    },
}

/// Creates `topic` with `partitions` partitions when missing (admin API);
/// never changes an existing one. `replication_factor` −1 takes the broker's
/// default.
#[tracing::instrument(skip(cfg), fields(brokers = %cfg.brokers))]
pub async fn ensure_topic(
    cfg: &KafkaClientConfig,
    topic: &str,
    partitions: u32,
    replication_factor: i16,
) -> Result<TopicState, BackendError> {
    let partition_count = i32::try_from(partitions)
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| BackendError::Other(format!("invalid partition count {partitions}")))?;
    let admin: Arc<AdminClient<TracingContext>> = Arc::new(
        cfg.client_config(&[("allow.auto.create.topics", "false".into())])
            .create_with_context(TracingContext)
            .map_err(|e| BackendError::Other(safe_error(&e)))?,
    );

    // Look first: a topic managed by someone else (and a client without the
    // right to create topics) must still work.
    if let Some(existing) = existing_partitions(&admin, topic).await? {
        return Ok(TopicState::Existed {
            partitions: existing,
        });
    }

    let new_topic = NewTopic::new(
        topic,
        partition_count,
        TopicReplication::Fixed(i32::from(replication_factor)),
    );
    let opts = AdminOptions::new()
        .request_timeout(Some(ADMIN_TIMEOUT))
        .operation_timeout(Some(ADMIN_TIMEOUT));
    let results = admin
        .create_topics([&new_topic], &opts)
        .await
        .map_err(|e| backend_error(&e))?;
    match results.into_iter().next() {
        Some(Ok(_)) => {
            tracing::info!(topic, partitions, "Kafka topic created");
            Ok(TopicState::Created)
        }
        Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => {
            // Created concurrently by someone else: report what is there.
            for _ in 0..20 {
                if let Some(existing) = existing_partitions(&admin, topic).await? {
                    return Ok(TopicState::Existed {
                        partitions: existing,
                    });
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(BackendError::Other(format!(
                "topic {topic} exists but its metadata is not visible"
            )))
        }
        Some(Err((_, code))) => Err(BackendError::Other(format!(
            "could not create topic {topic}: {code}"
        ))),
        None => Err(BackendError::Other(format!(
            "no answer about topic {topic} from CreateTopics"
        ))),
    }
}

/// The partition count of `topic`, or `None` when the cluster does not know it.
async fn existing_partitions(
    admin: &Arc<AdminClient<TracingContext>>,
    topic: &str,
) -> Result<Option<u32>, BackendError> {
    let admin = Arc::clone(admin);
    let name = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let md = admin
            .inner()
            .fetch_metadata(Some(&name), ADMIN_TIMEOUT)
            .map_err(|e| backend_error(&e))?;
        Ok(md
            .topics()
            .iter()
            .find(|t| t.name() == name && t.error().is_none() && !t.partitions().is_empty())
            .map(|t| t.partitions().len() as u32))
    })
    .await
    .map_err(|e| BackendError::Other(format!("metadata task failed: {e}")))?
}
