//! The backend conformance suite: the same cases, through the backend-neutral
//! [`LogProducer`] / [`LogConsumer`] traits, on every backend — Redis Streams
//! (a private `redis-server`), Kafka (a private tansu broker), SQS (a private
//! moto server; standard and FIFO queues). Each backend is one
//! [`Harness`]; `conformance!` instantiates every case for it.
//!
//! | case | asserts |
//! | --- | --- |
//! | `publish_consume_ack` | `TRUE` only with a position; the body comes back byte for byte; an acked entry is never handed out again |
//! | `redelivery_after_consumer_dies` | an entry received but never acked by a consumer that went away reaches another consumer, with a delivery count above 1 where the backend counts |
//! | `batch_publish` | one call of 25 messages: 25 outcomes in order, all `TRUE`, all received |
//! | `large_message_at_the_limit` | an entry of exactly the backend's limit round-trips; one byte more is refused `FALSE`, never sent |
//! | `delayed_not_visible_early` | a delayed message is never handed out as due before its time: hidden by the broker (SQS) or carrying its future due time for the worker's schedule |
//! | `metadata_round_trip` | id, partition key, metadata, trace context and tags come back unchanged |
//! | `ordering_within_partition_key` | 30 messages with one key arrive in order, where the backend promises it |
//! | `broker_down_is_never_true` | with the broker stopped, a publish answers `FALSE` or `UNKNOWN` |

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::value::RawValue;
use wal_core::backend::{
    LogConsumer, LogProducer, LogSettings, OutgoingMessage, PublishOutcome, ReceivedEntry,
};
use wal_core::envelope::TraceContext;
use wal_core::{Durability, Envelope, MessageId};
use wal_tests::fixtures::{envelope, log_settings, now_ms, outgoing as out};
use wal_tests::random_name;

/// One backend under test: a private broker, a fresh log on it, and what
/// the backend promises.
#[async_trait]
trait Harness: Sized + Send + Sync + 'static {
    /// Whether entries with one partition key arrive in publish order.
    const ORDERED: bool;
    /// Whether the broker itself hides a delayed message until it is due.
    const HIDES_DELAYED: bool;

    /// A private broker and a new, empty log of `partitions` partitions.
    async fn start(partitions: u32) -> Self;
    /// The log's settings.
    fn settings(&self) -> LogSettings;
    /// A producer.
    async fn producer(&self) -> Arc<dyn LogProducer>;
    /// A new consumer (another member of the same group, where there are
    /// groups); `visibility` is how long a received entry stays hidden.
    async fn consumer(&self, name: &str) -> Box<dyn LogConsumer>;
    /// Lets a consumer go away without acking (Kafka: leaves the group).
    async fn abandon(&self, consumer: Box<dyn LogConsumer>) {
        drop(consumer);
    }
    /// Stops the broker.
    async fn stop_broker(&mut self);
}

// ----- helpers ------------------------------------------------------------------

fn settings(topic: &str, partitions: u32) -> LogSettings {
    log_settings(topic, topic, partitions)
}

fn sequence(e: &Envelope) -> u32 {
    let v: serde_json::Value = serde_json::from_str(e.payload.get()).unwrap();
    v["n"].as_u64().unwrap() as u32
}

fn assert_appended(outcome: &PublishOutcome) {
    match outcome {
        PublishOutcome::Appended {
            position,
            durability,
        } => {
            assert_eq!(*durability, Durability::True, "{outcome:?}");
            assert!(!position.is_empty());
        }
        other => panic!("expected Appended, got {other:?}"),
    }
}

/// Receives until `want` entries (by message id) were seen or `within`
/// passed; acks each batch when `ack` is set.
async fn receive_ids(
    consumer: &dyn LogConsumer,
    want: usize,
    within: Duration,
    ack: bool,
) -> Vec<(Envelope, ReceivedEntry)> {
    let deadline = Instant::now() + within;
    let mut got: Vec<(Envelope, ReceivedEntry)> = Vec::new();
    let mut seen = HashSet::new();
    while seen.len() < want && Instant::now() < deadline {
        let batch = consumer
            .receive(10, Duration::from_millis(500))
            .await
            .expect("receive");
        if ack && !batch.is_empty() {
            let tokens: Vec<_> = batch.iter().map(|e| e.token.clone()).collect();
            consumer.ack(&tokens).await.expect("ack");
        }
        for entry in batch {
            let env = entry.decode().expect("an envelope");
            if seen.insert(env.id) {
                got.push((env, entry));
            }
        }
    }
    got
}

// ----- the cases --------------------------------------------------------------

async fn publish_consume_ack<H: Harness>() {
    let h = H::start(2).await;
    let s = h.settings();
    let producer = h.producer().await;
    let env = envelope(&s.namespace, 1, 7);
    let body = env.encode();
    let outcomes = producer.publish(&s, vec![out(env.clone())]).await;
    assert_appended(&outcomes[0]);

    let consumer = h.consumer("c1").await;
    let got = receive_ids(consumer.as_ref(), 1, Duration::from_secs(20), false).await;
    assert_eq!(got.len(), 1, "the entry was not received");
    let (received, entry) = &got[0];
    assert_eq!(received.id, env.id);
    assert_eq!(entry.body, body, "the body must come back byte for byte");
    assert_eq!(entry.delivery_count, 1);
    consumer
        .ack(std::slice::from_ref(&entry.token))
        .await
        .expect("ack");

    // Never handed out again, to this consumer or another.
    let other = h.consumer("c2").await;
    let deadline = Instant::now() + Duration::from_secs(4);
    while Instant::now() < deadline {
        for c in [consumer.as_ref(), other.as_ref()] {
            let again = c.receive(10, Duration::from_millis(300)).await.unwrap();
            assert!(again.is_empty(), "an acked entry came back: {again:?}");
            if let Some(r) = c.reclaimer() {
                let reclaimed = r.reclaim(Duration::from_millis(1), 10).await.unwrap();
                assert!(reclaimed.is_empty(), "an acked entry was reclaimed");
            }
        }
    }
}

async fn redelivery_after_consumer_dies<H: Harness>() {
    let h = H::start(1).await;
    let s = h.settings();
    let producer = h.producer().await;
    let env = envelope(&s.namespace, 0, 1);
    assert_appended(&producer.publish(&s, vec![out(env.clone())]).await[0]);

    let first = h.consumer("dies").await;
    let got = receive_ids(first.as_ref(), 1, Duration::from_secs(20), false).await;
    assert_eq!(got.len(), 1);
    h.abandon(first).await;

    let second = h.consumer("survivor").await;
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut again = None;
    while again.is_none() && Instant::now() < deadline {
        let mut batch = second
            .receive(10, Duration::from_millis(500))
            .await
            .unwrap();
        if let Some(r) = second.reclaimer() {
            batch.extend(r.reclaim(Duration::from_millis(500), 10).await.unwrap());
        }
        again = batch
            .into_iter()
            .find(|e| e.decode().map(|d| d.id == env.id).unwrap_or(false));
    }
    let again = again.expect("the unacked entry was never handed out again");
    if second.counts_deliveries() {
        assert!(
            again.delivery_count >= 2,
            "delivery count {}",
            again.delivery_count
        );
    }
    second.ack(&[again.token]).await.unwrap();
}

async fn batch_publish<H: Harness>() {
    let h = H::start(4).await;
    let s = h.settings();
    let producer = h.producer().await;
    let batch: Vec<Envelope> = (0..25).map(|n| envelope(&s.namespace, n % 4, n)).collect();
    let ids: Vec<MessageId> = batch.iter().map(|e| e.id).collect();
    let outcomes = producer
        .publish(&s, batch.into_iter().map(out).collect())
        .await;
    assert_eq!(outcomes.len(), 25);
    outcomes.iter().for_each(assert_appended);
    let consumer = h.consumer("c").await;
    let got = receive_ids(consumer.as_ref(), 25, Duration::from_secs(30), true).await;
    let got: HashSet<MessageId> = got.iter().map(|(e, _)| e.id).collect();
    assert_eq!(got, ids.into_iter().collect::<HashSet<_>>());
}

async fn large_message_at_the_limit<H: Harness>() {
    let h = H::start(1).await;
    let s = h.settings();
    let producer = h.producer().await;
    // Backends without a limit of their own take the gateway's largest message.
    let limit = producer.max_entry_bytes().unwrap_or(1_048_576 + 4096);
    let sized = |size: usize| {
        let mut env = envelope(&s.namespace, 0, 0);
        env.payload = RawValue::from_string(r#"{"n":0,"f":""}"#.into()).unwrap();
        let filler = "x".repeat(size - env.encode().len());
        env.payload = RawValue::from_string(format!("{{\"n\":0,\"f\":\"{filler}\"}}")).unwrap();
        assert_eq!(env.encode().len(), size);
        env
    };
    let at_limit = sized(limit);
    let outcomes = producer.publish(&s, vec![out(at_limit.clone())]).await;
    assert_appended(&outcomes[0]);
    let consumer = h.consumer("c").await;
    let got = receive_ids(consumer.as_ref(), 1, Duration::from_secs(20), true).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1.body, at_limit.encode());

    if producer.max_entry_bytes().is_some() {
        let over = sized(limit + 1);
        let outcomes = producer.publish(&s, vec![out(over)]).await;
        match &outcomes[0] {
            PublishOutcome::Failed(e) => assert_eq!(e.durability(), Durability::False, "{e}"),
            other => panic!("an entry over the limit was {other:?}"),
        }
    }
}

async fn delayed_not_visible_early<H: Harness>() {
    let h = H::start(1).await;
    let s = h.settings();
    let producer = h.producer().await;
    let mut env = envelope(&s.namespace, 0, 0);
    let delay = Duration::from_secs(4);
    env.due_at_ms = now_ms() + delay.as_millis() as u64;
    let published_at = Instant::now();
    assert_appended(&producer.publish(&s, vec![out(env.clone())]).await[0]);
    let consumer = h.consumer("c").await;
    let got = receive_ids(consumer.as_ref(), 1, Duration::from_secs(30), true).await;
    assert_eq!(got.len(), 1, "the delayed entry never arrived");
    let received_after = published_at.elapsed();
    let (received, _) = &got[0];
    if H::HIDES_DELAYED {
        // The broker hid it: whole seconds, never early.
        assert!(
            received_after >= delay - Duration::from_millis(1000),
            "handed out after {received_after:?}, delay {delay:?}"
        );
    }
    if received_after < delay {
        // Handed out before its time: only with its due time intact, so the
        // worker parks it in its schedule instead of delivering it.
        assert_eq!(received.due_at_ms, env.due_at_ms);
    }
}

async fn metadata_round_trip<H: Harness>() {
    let h = H::start(2).await;
    let s = h.settings();
    let producer = h.producer().await;
    let mut env = envelope(&s.namespace, 1, 3);
    env.partition_key = Some("customer-42".into());
    env.metadata = Some(BTreeMap::from([
        ("source".to_string(), serde_json::json!("checkout")),
        ("nested".to_string(), serde_json::json!({"a": [1, 2, "ü"]})),
    ]));
    env.trace = TraceContext {
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
        tracestate: Some("vendor=1".into()),
    };
    env.tags = vec!["a".into(), "b".into()];
    env.priority = Some(7);
    assert_appended(&producer.publish(&s, vec![out(env.clone())]).await[0]);
    let consumer = h.consumer("c").await;
    let got = receive_ids(consumer.as_ref(), 1, Duration::from_secs(20), true).await;
    assert_eq!(got.len(), 1);
    let (r, entry) = &got[0];
    assert_eq!(r.id, env.id);
    assert_eq!(r.partition_key, env.partition_key);
    assert_eq!(r.metadata, env.metadata);
    assert_eq!(r.trace, env.trace);
    assert_eq!(r.tags, env.tags);
    assert_eq!(r.priority, env.priority);
    assert_eq!(r.request_id, env.request_id);
    assert_eq!(
        entry.token.partition, 1,
        "the partition comes back with the entry"
    );
}

async fn ordering_within_partition_key<H: Harness>() {
    if !H::ORDERED {
        return;
    }
    let h = H::start(4).await;
    let s = h.settings();
    let producer = h.producer().await;
    let batch: Vec<OutgoingMessage> = (0..30)
        .map(|n| {
            let mut e = envelope(&s.namespace, 2, n);
            e.partition_key = Some("one-key".into());
            out(e)
        })
        .collect();
    producer
        .publish(&s, batch)
        .await
        .iter()
        .for_each(assert_appended);
    let consumer = h.consumer("c").await;
    let got = receive_ids(consumer.as_ref(), 30, Duration::from_secs(30), true).await;
    let order: Vec<u32> = got.iter().map(|(e, _)| sequence(e)).collect();
    assert_eq!(order, (0..30).collect::<Vec<_>>());
}

async fn broker_down_is_never_true<H: Harness>() {
    let mut h = H::start(1).await;
    let s = h.settings();
    let producer = h.producer().await;
    // Connected first, so the failure is the broker going away.
    assert_appended(
        &producer
            .publish(&s, vec![out(envelope(&s.namespace, 0, 0))])
            .await[0],
    );
    h.stop_broker().await;
    let started = Instant::now();
    let outcomes = tokio::time::timeout(
        Duration::from_secs(30),
        producer.publish(
            &s,
            (1..4).map(|n| out(envelope(&s.namespace, 0, n))).collect(),
        ),
    )
    .await
    .expect("a publish to a stopped broker must answer within its timeout");
    for o in &outcomes {
        assert_ne!(o.durability(), Durability::True, "{o:?}");
        assert!(matches!(o, PublishOutcome::Failed(_)), "{o:?}");
    }
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(producer.ping().await.is_err());
}

macro_rules! conformance {
    ($module:ident, $harness:ty) => {
        mod $module {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn publish_consume_ack() {
                super::publish_consume_ack::<$harness>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redelivery_after_consumer_dies() {
                super::redelivery_after_consumer_dies::<$harness>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn batch_publish() {
                super::batch_publish::<$harness>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn large_message_at_the_limit() {
                super::large_message_at_the_limit::<$harness>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn delayed_not_visible_early() {
                super::delayed_not_visible_early::<$harness>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn metadata_round_trip() {
                super::metadata_round_trip::<$harness>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn ordering_within_partition_key() {
                super::ordering_within_partition_key::<$harness>().await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn broker_down_is_never_true() {
                super::broker_down_is_never_true::<$harness>().await
            }
        }
    };
}

// ----- Redis Streams ------------------------------------------------------------

mod redis_harness {
    use super::*;
    use wal_backends::redis_streams::{RedisStreamConsumer, RedisStreamProducer};
    use wal_redis::{RedisConnection, RedisConnectionConfig};
    use wal_tests::redis_server::PrivateRedis;

    pub struct RedisHarness {
        server: PrivateRedis,
        conn: RedisConnection,
        settings: LogSettings,
    }

    #[async_trait]
    impl Harness for RedisHarness {
        const ORDERED: bool = true;
        const HIDES_DELAYED: bool = false;

        async fn start(partitions: u32) -> Self {
            let server = PrivateRedis::start().await;
            let conn = RedisConnection::connect(
                &RedisConnectionConfig {
                    url: server.url(),
                    pool_size: 2,
                    command_timeout: Duration::from_secs(2),
                },
                Duration::from_secs(3),
            )
            .await
            .unwrap();
            Self {
                server,
                conn,
                settings: settings(&random_name("conf"), partitions),
            }
        }
        fn settings(&self) -> LogSettings {
            self.settings.clone()
        }
        async fn producer(&self) -> Arc<dyn LogProducer> {
            Arc::new(RedisStreamProducer::new(self.conn.clone()))
        }
        async fn consumer(&self, name: &str) -> Box<dyn LogConsumer> {
            let partitions = (0..self.settings.partition_count).collect();
            Box::new(
                RedisStreamConsumer::new(&self.conn, &self.settings.namespace, partitions, name)
                    .await
                    .unwrap(),
            )
        }
        async fn stop_broker(&mut self) {
            self.server.stop().await;
        }
    }
}

// ----- Kafka (tansu) ----------------------------------------------------------------

mod kafka_harness {
    use super::*;
    use wal_backends::kafka::{ensure_topic, KafkaConsumer, KafkaConsumerSettings, KafkaProducer};
    use wal_tests::tansu::TansuBroker;

    pub struct KafkaHarness {
        broker: TansuBroker,
        settings: LogSettings,
        group: String,
    }

    #[async_trait]
    impl Harness for KafkaHarness {
        const ORDERED: bool = true;
        const HIDES_DELAYED: bool = false;

        async fn start(partitions: u32) -> Self {
            let broker = TansuBroker::start().await;
            let settings = settings(&random_name("conf"), partitions);
            ensure_topic(&broker.client_config(), &settings.topic, partitions, 1)
                .await
                .expect("topic created");
            Self {
                broker,
                settings,
                group: random_name("group"),
            }
        }
        fn settings(&self) -> LogSettings {
            self.settings.clone()
        }
        async fn producer(&self) -> Arc<dyn LogProducer> {
            Arc::new(KafkaProducer::new(&self.broker.client_config()).unwrap())
        }
        async fn consumer(&self, name: &str) -> Box<dyn LogConsumer> {
            Box::new(
                KafkaConsumer::new(
                    &self.broker.client_config(),
                    &self.settings.topic,
                    &KafkaConsumerSettings {
                        group_id: self.group.clone(),
                        consumer_name: name.to_string(),
                        session_timeout: Duration::from_secs(6),
                    },
                )
                .unwrap(),
            )
        }
        async fn stop_broker(&mut self) {
            self.broker.stop().await;
        }
    }
}

// ----- SQS (moto) ----------------------------------------------------------------------

mod sqs_harness {
    use super::*;
    use wal_backends::sqs::{ensure_queue, SqsConsumer, SqsConsumerSettings, SqsProducer};
    use wal_tests::moto::MotoServer;

    pub struct SqsHarness<const FIFO: bool> {
        server: MotoServer,
        settings: LogSettings,
    }

    pub type Standard = SqsHarness<false>;
    pub type Fifo = SqsHarness<true>;

    #[async_trait]
    impl<const FIFO: bool> Harness for SqsHarness<FIFO> {
        const ORDERED: bool = FIFO;
        const HIDES_DELAYED: bool = !FIFO;

        async fn start(partitions: u32) -> Self {
            let server = MotoServer::start().await;
            let mut name = random_name("conf");
            if FIFO {
                name.push_str(".fifo");
            }
            let url = ensure_queue(&server.client_config(), &name)
                .await
                .expect("queue created");
            let mut settings = settings(&name, partitions);
            settings.topic = url;
            Self { server, settings }
        }
        fn settings(&self) -> LogSettings {
            self.settings.clone()
        }
        async fn producer(&self) -> Arc<dyn LogProducer> {
            Arc::new(SqsProducer::new(&self.server.client_config()).await)
        }
        async fn consumer(&self, _name: &str) -> Box<dyn LogConsumer> {
            Box::new(
                SqsConsumer::new(
                    &self.server.client_config(),
                    &self.settings.topic,
                    &SqsConsumerSettings {
                        visibility_timeout: Duration::from_secs(2),
                    },
                )
                .await
                .unwrap(),
            )
        }
        async fn stop_broker(&mut self) {
            self.server.stop().await;
        }
    }
}

conformance!(redis_streams, redis_harness::RedisHarness);
conformance!(kafka, kafka_harness::KafkaHarness);
conformance!(sqs_standard, sqs_harness::Standard);
conformance!(sqs_fifo, sqs_harness::Fifo);
