//! Where a namespace's entries come from.
//!
//! Every namespace reads its Redis partition streams: for a `redis_streams`
//! namespace they are the log; for every namespace they are where the
//! schedule puts delayed and retried entries back when due (Kafka has no
//! delay and SQS none beyond 15 minutes, so the worker's Redis schedule does
//! it for all three). A `kafka` or `sqs` namespace reads its topic or queue
//! too: a second source.
//!
//! | source | ack | read wait |
//! | --- | --- | --- |
//! | Redis streams | `XACK` inside the settlement (`settle.lua`): one atomic step | 500 ms `XREADGROUP BLOCK` |
//! | Kafka topic | after the settlement: marks the offset handled (store-after-handle) | 500 ms |
//! | SQS queue | after the settlement: `DeleteMessageBatch` | `WAL_SQS_WAIT_SECS` long poll |
//!
//! A crash between a settlement and the ack of a Kafka or SQS entry hands the
//! entry out again; the status record tells the next handling which targets
//! already have it, so they are not called twice.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{mpsc, oneshot};
use wal_backends::redis_streams::RedisStreamConsumer;
use wal_core::backend::{AckToken, BackendError, LogConsumer};
use wal_namespace::spec::MAX_PARTITION_COUNT;
use wal_namespace::{BackendKind, Namespace};
use wal_redis::RedisConnection;
use wal_state::inspect::retired_partitions;

use crate::config::WorkerConfig;
#[cfg(feature = "sqs")]
use crate::targets::namespace_visibility;

/// Longest block of one `XREADGROUP` (bounds how fast a stop is noticed).
const REDIS_READ_WAIT: Duration = Duration::from_millis(500);
/// Longest wait of one Kafka receive.
#[cfg(feature = "kafka")]
const KAFKA_READ_WAIT: Duration = Duration::from_millis(500);
/// Most tokens acked in one call.
const MAX_ACK_BATCH: usize = 256;

/// One ack request to a source's acker task, with where to answer.
type AckRequest = (AckToken, oneshot::Sender<Result<(), String>>);

/// One place a namespace's entries are read from.
pub struct Source {
    /// `redis`, `kafka` or `sqs` (logs and metrics).
    pub name: &'static str,
    /// The consumer.
    pub consumer: Arc<dyn LogConsumer>,
    /// Whether the settlement acknowledges the entry itself (Redis streams);
    /// otherwise [`Source::ack`] follows a successful settlement.
    pub acks_in_settle: bool,
    /// Longest wait of one receive.
    pub read_wait: Duration,
    /// Whether entries are spread over one stream per partition, each read
    /// How many streams one receive reads, each with its own `COUNT` (the
    /// Redis partition streams); 1 for a Kafka topic or an SQS queue.
    pub streams: usize,
    acker: Option<mpsc::Sender<AckRequest>>,
}

impl Source {
    fn new(
        name: &'static str,
        consumer: Arc<dyn LogConsumer>,
        acks_in_settle: bool,
        read_wait: Duration,
    ) -> Self {
        let acker = (!acks_in_settle).then(|| spawn_acker(consumer.clone()));
        Self {
            name,
            consumer,
            acks_in_settle,
            read_wait,
            streams: 1,
            acker,
        }
    }

    /// Acknowledges one handled entry of a source that does not ack in the
    /// settlement; concurrent acks go out together (one `DeleteMessageBatch`).
    pub async fn ack(&self, token: AckToken) -> Result<(), String> {
        let Some(acker) = &self.acker else {
            return Ok(());
        };
        let (reply, answer) = oneshot::channel();
        acker
            .send((token, reply))
            .await
            .map_err(|_| "acker stopped".to_string())?;
        answer
            .await
            .unwrap_or_else(|_| Err("acker stopped".to_string()))
    }
}

fn spawn_acker(consumer: Arc<dyn LogConsumer>) -> mpsc::Sender<AckRequest> {
    let (tx, mut rx) = mpsc::channel::<AckRequest>(4096);
    tokio::spawn(async move {
        let mut tokens = Vec::with_capacity(MAX_ACK_BATCH);
        let mut replies = Vec::with_capacity(MAX_ACK_BATCH);
        while let Some((t, r)) = rx.recv().await {
            tokens.push(t);
            replies.push(r);
            while tokens.len() < MAX_ACK_BATCH {
                match rx.try_recv() {
                    Ok((t, r)) => {
                        tokens.push(t);
                        replies.push(r);
                    }
                    Err(_) => break,
                }
            }
            let result: Result<(), BackendError> = consumer.ack(&tokens).await;
            let result = result.map_err(|e| e.to_string());
            for reply in replies.drain(..) {
                let _ = reply.send(result.clone());
            }
            tokens.clear();
        }
    });
    tx
}

/// Opens the sources of `ns`: its Redis partition streams, and its Kafka
/// topic or SQS queue (created first when missing — the admin step).
/// Opens the Redis partition streams of `ns` (and retired ones still
/// holding entries), read as `consumer_name`.
pub async fn open_redis(
    redis: &RedisConnection,
    consumer_name: &str,
    ns: &Namespace,
) -> anyhow::Result<Source> {
    let count = ns.shard_config.partition_count.max(1);
    let mut partitions: Vec<u32> = (0..count).collect();
    // Streams beyond a lowered partition count are read until they are done.
    let retired = retired_partitions(redis, &ns.name, count, MAX_PARTITION_COUNT)
        .await
        .context("looking for partitions retired by a lower partition count")?;
    if !retired.is_empty() {
        tracing::info!(namespace = %ns.name, ?retired, "draining partitions beyond the partition count");
    }
    partitions.extend(retired);
    let stream_count = partitions.len();
    let redis = RedisStreamConsumer::new(redis, &ns.name, partitions, consumer_name)
        .await
        .context("joining the Redis consumer groups")?;
    let mut redis_source = Source::new("redis", Arc::new(redis), true, REDIS_READ_WAIT);
    redis_source.streams = stream_count;
    Ok(redis_source)
}

/// Opens the Kafka topic or SQS queue of `ns` (created first when missing —
/// the admin step); `None` for a Redis Streams namespace, whose log is its
/// Redis partition streams.
pub async fn open_log(
    cfg: &WorkerConfig,
    consumer_name: &str,
    ns: &Namespace,
) -> anyhow::Result<Option<Source>> {
    #[cfg(any(feature = "kafka", feature = "sqs"))]
    let secrets = cfg.store.secret_policy();
    match ns.backend {
        BackendKind::RedisStreams => Ok(None),
        #[cfg(feature = "kafka")]
        BackendKind::Kafka => {
            use wal_backends::kafka::{KafkaConsumer, KafkaConsumerSettings};
            wal_backends::namespace_clients::provision(ns, Duration::from_secs(5), &secrets)
                .await
                .context("creating the Kafka topic")?;
            let (client, _) = wal_backends::namespace_clients::kafka_client(
                ns,
                Duration::from_secs(5),
                &secrets,
            )?;
            let consumer = KafkaConsumer::new(
                &client,
                &ns.topic_name,
                &KafkaConsumerSettings {
                    group_id: format!("{}.{}", wal_core::keys::CONSUMER_GROUP, ns.name),
                    consumer_name: consumer_name.to_string(),
                    session_timeout: Duration::from_millis(cfg.kafka_session_timeout_ms),
                },
            )
            .context("joining the Kafka consumer group")?;
            Ok(Some(Source::new(
                "kafka",
                Arc::new(consumer),
                false,
                KAFKA_READ_WAIT,
            )))
        }
        #[cfg(feature = "sqs")]
        BackendKind::Sqs => {
            use wal_backends::sqs::{SqsConsumer, SqsConsumerSettings};
            wal_backends::namespace_clients::provision(ns, Duration::from_secs(5), &secrets)
                .await
                .context("creating the SQS queue")?;
            let (client, queue) = wal_backends::namespace_clients::sqs_client(ns, &secrets)?;
            let consumer = SqsConsumer::new(
                &client,
                &queue,
                &SqsConsumerSettings {
                    visibility_timeout: namespace_visibility(cfg.visibility_timeout(), ns),
                },
            )
            .await
            .context("opening the SQS queue")?;
            if let Some(max) = consumer.redrive_max_receive_count() {
                if max <= cfg.poison_threshold {
                    tracing::warn!(
                        namespace = %ns.name,
                        max_receive_count = max,
                        poison_threshold = cfg.poison_threshold,
                        "the queue's redrive policy moves a message to its dead-letter queue before the worker would park it as poison; the queue's policy wins"
                    );
                }
            }
            Ok(Some(Source::new(
                "sqs",
                Arc::new(consumer),
                false,
                Duration::from_secs(cfg.sqs_wait_secs.clamp(1, 20)),
            )))
        }
        #[allow(unreachable_patterns)]
        other => anyhow::bail!(
            "this worker was built without the `{}` backend feature",
            other.as_str()
        ),
    }
}
