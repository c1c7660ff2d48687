//! The Kafka backend on its own: producer, consumer and topic admin against a
//! real tansu broker (each test starts its own, with random topic and group
//! names) — topic creation, key/headers/partition of published records,
//! out-of-order acks, rebalance without loss, a broker outage and the entry
//! size limit.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use wal_backends::kafka::rdkafka::consumer::{BaseConsumer, Consumer};
use wal_backends::kafka::rdkafka::message::{Headers, Message};
use wal_backends::kafka::rdkafka::producer::{FutureProducer, FutureRecord};
use wal_backends::kafka::rdkafka::{ClientConfig, Offset, TopicPartitionList};
use wal_backends::kafka::{
    ensure_topic, KafkaClientConfig, KafkaConsumer, KafkaConsumerSettings, KafkaProducer,
    TopicState, KAFKA_MAX_ENTRY_BYTES,
};
use wal_core::backend::{
    AckToken, LogConsumer, LogProducer, LogSettings, OutgoingMessage, Position, PublishError,
    PublishOutcome, ReceivedEntry,
};
use wal_core::envelope::TraceContext;
use wal_core::{Durability, Envelope, MessageId};
use wal_tests::fixtures::{self, log_settings};
use wal_tests::random_name;
use wal_tests::tansu::TansuBroker;

const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

fn settings(topic: &str, partitions: u32) -> LogSettings {
    log_settings("orders", topic, partitions)
}

fn envelope(partition: u32, n: u32) -> Envelope {
    let mut e = fixtures::envelope("orders", partition, n);
    (e.created_at_ms, e.due_at_ms) = (0, 1_000 + u64::from(n));
    e
}

fn outgoing(envelopes: &[Envelope]) -> Vec<OutgoingMessage> {
    envelopes
        .iter()
        .map(|e| OutgoingMessage {
            envelope: e.clone(),
            idempotency: None,
        })
        .collect()
}

fn consumer_settings(group: &str, name: &str) -> KafkaConsumerSettings {
    KafkaConsumerSettings {
        group_id: group.to_string(),
        consumer_name: name.to_string(),
        session_timeout: Duration::from_secs(6),
    }
}

async fn topic_with(broker: &TansuBroker, partitions: u32) -> String {
    let topic = random_name("wal-topic");
    let state = ensure_topic(&broker.client_config(), &topic, partitions, 1)
        .await
        .expect("topic created");
    assert_eq!(state, TopicState::Created);
    topic
}

/// Publishes `envelopes` and checks every one was appended with `TRUE`.
async fn publish_all(producer: &KafkaProducer, s: &LogSettings, envelopes: &[Envelope]) {
    let outcomes = producer.publish(s, outgoing(envelopes)).await;
    assert_eq!(outcomes.len(), envelopes.len());
    for (o, e) in outcomes.iter().zip(envelopes) {
        match o {
            PublishOutcome::Appended {
                position,
                durability,
            } => {
                assert_eq!(*durability, Durability::True);
                let (p, offset) = position.split_once(':').expect("partition:offset");
                assert_eq!(p, e.partition.to_string());
                offset.parse::<i64>().expect("numeric offset");
            }
            other => panic!("not appended: {other:?}"),
        }
    }
}

/// Receives until `n` entries arrived (or `within` passed).
async fn receive_n(consumer: &KafkaConsumer, n: usize, within: Duration) -> Vec<ReceivedEntry> {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    while out.len() < n && Instant::now() < deadline {
        let batch = consumer
            .receive(n - out.len(), Duration::from_millis(500))
            .await
            .expect("receive");
        out.extend(batch);
    }
    out
}

fn offset_of(e: &ReceivedEntry) -> i64 {
    match e.token.position {
        Position::Offset(o) => o,
        ref other => panic!("not an offset: {other:?}"),
    }
}

/// A raw consumer (no group) reading one partition from the beginning.
fn raw_reader(cfg: &KafkaClientConfig, topic: &str, partition: i32) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &cfg.brokers)
        .set("group.id", random_name("raw"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("raw consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).expect("assign");
    consumer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensure_topic_creates_with_the_partition_count_and_is_idempotent() {
    let broker = TansuBroker::start().await;
    let cfg = broker.client_config();
    let topic = random_name("wal-topic");
    assert_eq!(
        ensure_topic(&cfg, &topic, 3, 1).await.unwrap(),
        TopicState::Created
    );
    assert_eq!(
        ensure_topic(&cfg, &topic, 3, 1).await.unwrap(),
        TopicState::Existed { partitions: 3 }
    );
    // Never changes an existing topic: a different count is only reported.
    assert_eq!(
        ensure_topic(&cfg, &topic, 5, 1).await.unwrap(),
        TopicState::Existed { partitions: 3 }
    );
    // Publishing to each of the 3 partitions works.
    let producer = KafkaProducer::new(&cfg).unwrap();
    let envs: Vec<Envelope> = (0..3).map(|p| envelope(p, p)).collect();
    publish_all(&producer, &settings(&topic, 3), &envs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_receive_ack_with_key_headers_and_partition() {
    let broker = TansuBroker::start().await;
    let cfg = broker.client_config();
    let topic = topic_with(&broker, 2).await;
    let s = settings(&topic, 2);
    let producer = KafkaProducer::new(&cfg).unwrap();
    assert_eq!(producer.max_entry_bytes(), Some(KAFKA_MAX_ENTRY_BYTES));
    producer.ping().await.expect("ping");

    let mut keyed = envelope(1, 1);
    keyed.partition_key = Some("customer-7".into());
    keyed.trace = TraceContext {
        traceparent: Some(TRACEPARENT.into()),
        tracestate: Some("vendor=1".into()),
    };
    keyed.metadata = Some(BTreeMap::from([
        ("source".to_string(), serde_json::json!("web")),
        ("attempt".to_string(), serde_json::json!(3)),
    ]));
    let plain = envelope(0, 2);
    let more: Vec<Envelope> = (3..7).map(|n| envelope(n % 2, n)).collect();
    let mut all = vec![keyed.clone(), plain.clone()];
    all.extend(more);
    publish_all(&producer, &s, &all).await;

    // Through the backend's consumer: every entry, on its partition, once.
    let consumer = KafkaConsumer::new(
        &cfg,
        &topic,
        &consumer_settings(&random_name("group"), "worker-1"),
    )
    .unwrap();
    assert!(!consumer.counts_deliveries());
    let got = receive_n(&consumer, all.len(), Duration::from_secs(20)).await;
    assert_eq!(got.len(), all.len());
    let by_id: HashMap<MessageId, &Envelope> = all.iter().map(|e| (e.id, e)).collect();
    let mut seen = BTreeSet::new();
    for entry in &got {
        let env = entry.decode().expect("decodable body");
        let sent = by_id.get(&env.id).expect("a published message");
        assert_eq!(entry.token.partition, sent.partition);
        assert_eq!(entry.delivery_count, 1);
        assert_eq!(env.payload.get(), sent.payload.get());
        assert!(seen.insert(env.id), "delivered twice");
    }
    let tokens: Vec<AckToken> = got.iter().map(|e| e.token.clone()).collect();
    consumer.ack(&tokens).await.unwrap();
    consumer.extend_visibility(&tokens).await.unwrap();
    // Nothing more to read.
    assert!(consumer
        .receive(10, Duration::from_millis(300))
        .await
        .unwrap()
        .is_empty());
    consumer.close().await;

    // Raw records: key and headers.
    let cfg2 = cfg.clone();
    let topic2 = topic.clone();
    let (keyed_id, plain_id) = (keyed.id.to_string(), plain.id.to_string());
    tokio::task::spawn_blocking(move || {
        let reader = raw_reader(&cfg2, &topic2, 1);
        let msg = match reader.poll(Duration::from_secs(5)) {
            Some(Ok(m)) => m.detach(),
            Some(Err(e)) => panic!("raw read: {e}"),
            None => panic!("no record on partition 1"),
        };
        assert_eq!(msg.key(), Some(&b"customer-7"[..]));
        let headers: HashMap<String, String> = msg
            .headers()
            .expect("headers")
            .iter()
            .map(|h| {
                (
                    h.key.to_string(),
                    String::from_utf8(h.value.unwrap_or_default().to_vec()).unwrap(),
                )
            })
            .collect();
        assert_eq!(headers["wal-message-id"], keyed_id);
        assert_eq!(headers["wal-namespace"], "orders");
        assert_eq!(headers["wal-request-id"], "req-1");
        assert_eq!(headers["traceparent"], TRACEPARENT);
        assert_eq!(headers["tracestate"], "vendor=1");
        assert_eq!(headers["wal-due-at-ms"], "1001");
        assert_eq!(headers["wal-meta-source"], "\"web\"");
        assert_eq!(headers["wal-meta-attempt"], "3");
        let env = Envelope::decode(msg.payload().unwrap()).unwrap();
        assert_eq!(env.id.to_string(), keyed_id);

        // Without a routing key, the key is the message id; no trace headers.
        let reader = raw_reader(&cfg2, &topic2, 0);
        let msg = match reader.poll(Duration::from_secs(5)) {
            Some(Ok(m)) => m.detach(),
            other => panic!("no record on partition 0: {:?}", other.map(|r| r.err())),
        };
        assert_eq!(msg.key(), Some(plain_id.as_bytes()));
        let keys: Vec<String> = msg
            .headers()
            .unwrap()
            .iter()
            .map(|h| h.key.to_string())
            .collect();
        assert!(!keys.iter().any(|k| k == "traceparent"), "{keys:?}");
        assert!(keys.iter().any(|k| k == "wal-message-id"), "{keys:?}");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_acks_never_commit_past_an_unhandled_offset() {
    let broker = TansuBroker::start().await;
    let cfg = broker.client_config();
    let topic = topic_with(&broker, 1).await;
    let s = settings(&topic, 1);
    let producer = KafkaProducer::new(&cfg).unwrap();
    let envs: Vec<Envelope> = (0..6).map(|n| envelope(0, n)).collect();
    publish_all(&producer, &s, &envs).await;

    let group = random_name("group");
    let first = KafkaConsumer::new(&cfg, &topic, &consumer_settings(&group, "a")).unwrap();
    let got = receive_n(&first, 6, Duration::from_secs(20)).await;
    let offsets: Vec<i64> = got.iter().map(offset_of).collect();
    assert_eq!(offsets, vec![0, 1, 2, 3, 4, 5]);
    // Acks arrive out of order, offset 1 never: 3, then 0, then 2.
    for o in [3, 0, 2] {
        first.ack(&[got[o].token.clone()]).await.unwrap();
    }
    // Unknown or repeated acks are harmless.
    first.ack(&[got[3].token.clone()]).await.unwrap();
    first.close().await;

    let second = KafkaConsumer::new(&cfg, &topic, &consumer_settings(&group, "b")).unwrap();
    let again = receive_n(&second, 5, Duration::from_secs(20)).await;
    let offsets: Vec<i64> = again.iter().map(offset_of).collect();
    assert_eq!(
        offsets,
        vec![1, 2, 3, 4, 5],
        "resumes at the unhandled offset 1 (2 and 3 come again: at-least-once)"
    );
    let ids: Vec<MessageId> = again.iter().map(|e| e.decode().unwrap().id).collect();
    let expected: Vec<MessageId> = envs[1..].iter().map(|e| e.id).collect();
    assert_eq!(ids, expected);

    // Handling everything commits past the end.
    let tokens: Vec<AckToken> = again.iter().rev().map(|e| e.token.clone()).collect();
    second.ack(&tokens).await.unwrap();
    second.close().await;
    let third = KafkaConsumer::new(&cfg, &topic, &consumer_settings(&group, "c")).unwrap();
    assert!(
        third
            .receive(10, Duration::from_secs(4))
            .await
            .unwrap()
            .is_empty(),
        "everything was committed"
    );
    third.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_loses_nothing_when_a_member_leaves_with_unacked_entries() {
    const TOTAL: u32 = 200;
    const PARTITIONS: u32 = 4;
    let broker = TansuBroker::start().await;
    let cfg = broker.client_config();
    let topic = topic_with(&broker, PARTITIONS).await;
    let s = settings(&topic, PARTITIONS);
    let producer = KafkaProducer::new(&cfg).unwrap();
    let envs: Vec<Envelope> = (0..TOTAL).map(|n| envelope(n % PARTITIONS, n)).collect();
    publish_all(&producer, &s, &envs).await;
    let all: BTreeSet<MessageId> = envs.iter().map(|e| e.id).collect();
    let group = random_name("group");
    let acked: Arc<Mutex<BTreeSet<MessageId>>> = Arc::default();
    let ack_batch = |batch: &[ReceivedEntry], acked: &Mutex<BTreeSet<MessageId>>| {
        acked
            .lock()
            .unwrap()
            .extend(batch.iter().map(|e| e.decode().unwrap().id));
        batch
            .iter()
            .map(|e| e.token.clone())
            .collect::<Vec<AckToken>>()
    };

    // Member a alone owns every partition and handles a first share.
    let a = KafkaConsumer::new(&cfg, &topic, &consumer_settings(&group, "a")).unwrap();
    let mut a_received = 0usize;
    let deadline = Instant::now() + Duration::from_secs(15);
    while a_received < 20 && Instant::now() < deadline {
        let batch = a.receive(5, Duration::from_millis(200)).await.unwrap();
        a_received += batch.len();
        a.ack(&ack_batch(&batch, &acked)).await.unwrap();
    }
    assert!(a_received >= 20, "member a got only {a_received}");

    // Member b joins and acks everything it gets, slowly, until every
    // message is acked.
    let b = Arc::new(KafkaConsumer::new(&cfg, &topic, &consumer_settings(&group, "b")).unwrap());
    let b_received = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let b_task = {
        let (b, acked, b_received) = (Arc::clone(&b), Arc::clone(&acked), Arc::clone(&b_received));
        let total = all.len();
        tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(25);
            while acked.lock().unwrap().len() < total && Instant::now() < deadline {
                let batch = b.receive(5, Duration::from_millis(200)).await.unwrap();
                b_received.fetch_add(batch.len(), std::sync::atomic::Ordering::SeqCst);
                let tokens = ack_batch(&batch, &acked);
                b.ack(&tokens).await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    // Member a keeps handling (and so takes part in the rebalance) until b
    // has its share, then leaves holding one batch it never acks.
    // (Slowly: a must not drain the topic before the group rebalances.)
    let mut held: Vec<ReceivedEntry> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        let batch = a.receive(2, Duration::from_millis(200)).await.unwrap();
        a_received += batch.len();
        if b_received.load(std::sync::atomic::Ordering::SeqCst) > 0 && !batch.is_empty() {
            held = batch;
            break;
        }
        a.ack(&ack_batch(&batch, &acked)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !held.is_empty(),
        "the group never rebalanced to b (a received {a_received})"
    );
    let held_ids: BTreeSet<MessageId> = held.iter().map(|e| e.decode().unwrap().id).collect();
    a.close().await;

    b_task.await.unwrap();
    let acked = acked.lock().unwrap().clone();
    let missing = all.difference(&acked).count();
    assert_eq!(
        missing,
        0,
        "{missing} of {TOTAL} never acked (a received {a_received}, b {})",
        b_received.load(std::sync::atomic::Ordering::SeqCst)
    );
    assert!(
        held_ids.is_subset(&acked),
        "the entries a left unacked were handled by b"
    );
    Arc::try_unwrap(b).ok().expect("b task ended").close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_publish_is_never_true_and_answers_within_the_timeout() {
    let mut broker = TansuBroker::start().await;
    let cfg = broker.client_config();
    let topic = topic_with(&broker, 2).await;
    let s = settings(&topic, 2);
    let producer = KafkaProducer::new(&cfg).unwrap();
    publish_all(&producer, &s, &[envelope(0, 0)]).await;

    broker.stop().await;
    let started = Instant::now();
    let outcomes = producer
        .publish(&s, outgoing(&[envelope(0, 1), envelope(1, 2)]))
        .await;
    let took = started.elapsed();
    assert_eq!(outcomes.len(), 2);
    for o in &outcomes {
        assert!(
            matches!(o, PublishOutcome::Failed(_)),
            "published with the broker down: {o:?}"
        );
        assert_ne!(o.durability(), Durability::True);
    }
    assert!(
        took <= cfg.message_timeout + Duration::from_secs(2),
        "answered after {took:?}"
    );
    assert!(producer.ping().await.is_err());

    // The broker comes back (empty: its storage is in memory): with the
    // topic created again, publishing works. (A fresh producer: tansu also
    // forgot the old one's idempotent producer id and keeps answering it
    // UNKNOWN_PRODUCER_ID, which a Kafka broker that kept its data would not.)
    broker.restart().await;
    ensure_topic(&cfg, &topic, 2, 1).await.unwrap();
    let producer = KafkaProducer::new(&cfg).unwrap();
    producer.ping().await.expect("ping after restart");
    publish_all(&producer, &s, &[envelope(1, 3)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_over_the_limit_are_rejected_and_at_the_limit_accepted() {
    let broker = TansuBroker::start().await;
    let cfg = broker.client_config();
    let topic = topic_with(&broker, 1).await;
    let s = settings(&topic, 1);
    let producer = KafkaProducer::new(&cfg).unwrap();

    /// An envelope whose encoding is exactly `size` bytes.
    fn sized(size: usize) -> Envelope {
        let mut e = envelope(0, 0);
        e.partition_key = Some("k".repeat(256));
        e.metadata = Some(
            (0..64)
                .map(|i| (format!("key-{i}"), serde_json::json!("v".repeat(200))))
                .collect(),
        );
        let base = e.encode().len();
        let pad = size - base - r#"{"n":0,"pad":""}"#.len() + r#"{"n":0}"#.len();
        e.payload =
            RawValue::from_string(format!("{{\"n\":0,\"pad\":\"{}\"}}", "x".repeat(pad))).unwrap();
        assert_eq!(e.encode().len(), size);
        e
    }

    let too_big = sized(KAFKA_MAX_ENTRY_BYTES + 1);
    let at_limit = sized(KAFKA_MAX_ENTRY_BYTES);
    let outcomes = producer
        .publish(&s, outgoing(&[too_big, at_limit.clone()]))
        .await;
    match &outcomes[0] {
        PublishOutcome::Failed(PublishError::Rejected(msg)) => {
            assert_eq!(
                msg,
                &format!(
                    "entry of {} bytes exceeds the Kafka limit of {KAFKA_MAX_ENTRY_BYTES} bytes",
                    KAFKA_MAX_ENTRY_BYTES + 1
                )
            );
        }
        other => panic!("oversize entry not rejected: {other:?}"),
    }
    assert_eq!(outcomes[0].durability(), Durability::False);
    assert!(
        matches!(
            outcomes[1],
            PublishOutcome::Appended {
                durability: Durability::True,
                ..
            }
        ),
        "an entry at the limit (with the largest key and metadata headers) is accepted: {:?}",
        outcomes[1]
    );

    // Only the accepted one is in the topic, and it reads back whole.
    let consumer =
        KafkaConsumer::new(&cfg, &topic, &consumer_settings(&random_name("group"), "w")).unwrap();
    let got = receive_n(&consumer, 1, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body.len(), KAFKA_MAX_ENTRY_BYTES);
    assert_eq!(got[0].decode().unwrap().id, at_limit.id);
    assert!(consumer
        .receive(5, Duration::from_millis(500))
        .await
        .unwrap()
        .is_empty());
    consumer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_without_payload_is_handed_out_with_an_empty_body() {
    let broker = TansuBroker::start().await;
    let cfg = broker.client_config();
    let topic = topic_with(&broker, 1).await;
    let raw: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &cfg.brokers)
        .create()
        .unwrap();
    raw.send(
        FutureRecord::<str, [u8]>::to(&topic).partition(0).key("k"),
        Duration::from_secs(3),
    )
    .await
    .expect("raw send");
    let producer = KafkaProducer::new(&cfg).unwrap();
    let good = envelope(0, 1);
    publish_all(&producer, &settings(&topic, 1), std::slice::from_ref(&good)).await;

    let consumer =
        KafkaConsumer::new(&cfg, &topic, &consumer_settings(&random_name("group"), "w")).unwrap();
    let got = receive_n(&consumer, 2, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 2);
    assert!(got[0].body.is_empty(), "the empty record is not skipped");
    assert!(got[0].decode().is_err());
    assert_eq!(got[1].decode().unwrap().id, good.id);
    consumer.close().await;
}
