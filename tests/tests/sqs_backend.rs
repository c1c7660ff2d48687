//! The SQS backend on its own: producer and consumer against a real moto
//! server (one per test) — queue creation, attributes, batching, native and
//! long delays, FIFO groups and deduplication, visibility extension and
//! release, redrive to a dead-letter queue, undecodable bodies, an endpoint
//! that goes away, and the size limit. What the client sent is checked in
//! moto's request recording.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::{json, value::RawValue, Value};
use wal_backends::sqs::{
    ensure_queue, SqsConsumer, SqsConsumerSettings, SqsProducer, SQS_MAX_ENTRY_BYTES,
    SQS_MAX_NATIVE_DELAY,
};
use wal_core::backend::{
    LogConsumer, LogProducer, LogSettings, OutgoingMessage, Position, PublishError, PublishOutcome,
    ReceivedEntry,
};
use wal_core::{Durability, Envelope, MessageId};
use wal_tests::fixtures::{self, log_settings, now_ms, outgoing as out};
use wal_tests::moto::MotoServer;
use wal_tests::random_name;

const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

fn settings(queue: &str) -> LogSettings {
    log_settings("orders", queue, 4)
}

fn envelope(partition: u32, n: u32) -> Envelope {
    fixtures::envelope("orders", partition, n)
}

fn assert_appended(outcomes: &[PublishOutcome]) -> Vec<String> {
    outcomes
        .iter()
        .map(|o| match o {
            PublishOutcome::Appended {
                position,
                durability: Durability::True,
            } => position.clone(),
            other => panic!("expected Appended TRUE, got {other:?}"),
        })
        .collect()
}

fn consumer_settings(visibility: Duration) -> SqsConsumerSettings {
    SqsConsumerSettings {
        visibility_timeout: visibility,
    }
}

/// Receives until `n` entries arrived or `within` passed.
async fn receive_n(c: &SqsConsumer, n: usize, within: Duration) -> Vec<ReceivedEntry> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < deadline {
        got.extend(
            c.receive(n - got.len(), Duration::from_secs(1))
                .await
                .unwrap(),
        );
    }
    got
}

fn decoded_ids(entries: &[ReceivedEntry]) -> Vec<MessageId> {
    entries.iter().map(|e| e.decode().unwrap().id).collect()
}

/// The `StringValue` of a recorded message attribute.
fn attr<'a>(entry: &'a Value, name: &str) -> Option<&'a str> {
    entry["MessageAttributes"][name]["StringValue"].as_str()
}

#[tokio::test]
async fn ensure_queue_creates_and_is_idempotent() {
    let moto = MotoServer::start().await;
    let cfg = moto.client_config();

    let name = random_name("std");
    let url = ensure_queue(&cfg, &name).await.unwrap();
    assert!(url.ends_with(&format!("/{name}")), "{url}");
    assert_eq!(ensure_queue(&cfg, &name).await.unwrap(), url);
    assert_eq!(
        ensure_queue(&cfg, &url).await.unwrap(),
        url,
        "a URL resolves to itself"
    );

    let fifo = format!("{}.fifo", random_name("fifo"));
    let fifo_url = ensure_queue(&cfg, &fifo).await.unwrap();
    assert!(fifo_url.ends_with(&format!("/{fifo}")), "{fifo_url}");
    assert_eq!(ensure_queue(&cfg, &fifo).await.unwrap(), fifo_url);
    let attrs = moto
        .sqs(
            "GetQueueAttributes",
            json!({"QueueUrl": fifo_url, "AttributeNames": ["All"]}),
        )
        .await
        .unwrap();
    assert_eq!(attrs["Attributes"]["FifoQueue"], "true", "{attrs}");
    assert_eq!(
        attrs["Attributes"]["ContentBasedDeduplication"], "false",
        "{attrs}"
    );
    assert_eq!(
        moto.recorded_action("CreateQueue").len(),
        2,
        "each queue created once"
    );

    // A URL whose queue is missing is created under its last path segment.
    let gone = format!("{}/123456789012/{}", moto.endpoint(), random_name("byurl"));
    let made = ensure_queue(&cfg, &gone).await.unwrap();
    assert_eq!(made, gone);
}

#[tokio::test]
async fn publish_receive_ack_with_attributes_and_receive_counts() {
    let moto = MotoServer::start().await;
    let cfg = moto.client_config();
    let queue = random_name("basic");
    ensure_queue(&cfg, &queue).await.unwrap();
    let producer = SqsProducer::new(&cfg).await;
    producer.ping().await.unwrap();
    assert_eq!(
        producer.max_entry_bytes(),
        Some(SQS_MAX_ENTRY_BYTES - 1024),
        "room is kept for the attributes"
    );

    let mut env = envelope(3, 1);
    env.trace.traceparent = Some(TRACEPARENT.into());
    env.metadata = Some(BTreeMap::from([("source".to_string(), json!("checkout"))]));
    let id = env.id;
    let outcomes = producer
        .publish(&settings(&queue), vec![out(env.clone())])
        .await;
    let positions = assert_appended(&outcomes);

    // One SendMessage with every attribute.
    let sends = moto.recorded_action("SendMessage");
    assert_eq!(sends.len(), 1);
    let sent = &sends[0];
    assert_eq!(attr(sent, "wal-message-id"), Some(id.to_string().as_str()));
    assert_eq!(attr(sent, "wal-namespace"), Some("orders"));
    assert_eq!(attr(sent, "wal-partition"), Some("3"));
    assert_eq!(
        sent["MessageAttributes"]["wal-partition"]["DataType"],
        "Number"
    );
    assert_eq!(attr(sent, "wal-request-id"), Some("req-1"));
    assert_eq!(attr(sent, "traceparent"), Some(TRACEPARENT));
    assert_eq!(
        attr(sent, "wal-due-at-ms"),
        Some(env.due_at_ms.to_string().as_str())
    );
    assert_eq!(
        sent["MessageAttributes"]["wal-due-at-ms"]["DataType"],
        "Number"
    );
    assert_eq!(attr(sent, "wal-metadata"), Some(r#"{"source":"checkout"}"#));
    assert!(sent.get("DelaySeconds").is_none_or(|d| d == 0), "{sent}");
    assert!(sent.get("MessageGroupId").is_none(), "{sent}");

    let consumer = SqsConsumer::new(&cfg, &queue, &consumer_settings(Duration::from_secs(1)))
        .await
        .unwrap();
    assert_eq!(consumer.redrive_max_receive_count(), None);
    assert!(consumer.counts_deliveries());
    assert!(consumer.reclaimer().is_none());

    let first = consumer.receive(10, Duration::from_secs(2)).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].delivery_count, 1);
    assert_eq!(first[0].token.partition, 3, "partition from wal-partition");
    assert!(matches!(first[0].token.position, Position::Receipt(_)));
    let back = first[0].decode().unwrap();
    assert_eq!(back.id, id);
    assert_eq!(back.payload.get(), env.payload.get());
    assert_eq!(
        positions[0].len(),
        36,
        "the SQS message id: {}",
        positions[0]
    );

    // Not acked: handed out again after the visibility timeout, counted.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let second = receive_n(&consumer, 1, Duration::from_secs(5)).await;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].decode().unwrap().id, id);
    assert_eq!(second[0].delivery_count, 2);

    consumer.ack(&[second[0].token.clone()]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let after = consumer.receive(10, Duration::from_secs(1)).await.unwrap();
    assert!(
        after.is_empty(),
        "acked messages never come back: {after:?}"
    );
}

#[tokio::test]
async fn batch_of_25_goes_out_in_three_chunks() {
    let moto = MotoServer::start().await;
    let cfg = moto.client_config();
    let queue = random_name("batch");
    ensure_queue(&cfg, &queue).await.unwrap();
    let producer = SqsProducer::new(&cfg).await;

    let batch: Vec<OutgoingMessage> = (0..25).map(|n| out(envelope(n % 4, n))).collect();
    let ids: HashSet<MessageId> = batch.iter().map(|m| m.envelope.id).collect();
    let outcomes = producer.publish(&settings(&queue), batch).await;
    assert_eq!(outcomes.len(), 25);
    let positions: HashSet<String> = assert_appended(&outcomes).into_iter().collect();
    assert_eq!(positions.len(), 25, "one SQS message id each");

    let calls = moto.recorded_action("SendMessageBatch");
    let mut sizes: Vec<usize> = calls
        .iter()
        .map(|c| c["Entries"].as_array().unwrap().len())
        .collect();
    sizes.sort_unstable();
    assert_eq!(sizes, vec![5, 10, 10]);
    assert!(moto.recorded_action("SendMessage").is_empty());

    let consumer = SqsConsumer::new(&cfg, &queue, &consumer_settings(Duration::from_secs(30)))
        .await
        .unwrap();
    let got = receive_n(&consumer, 25, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 25);
    let received: HashSet<MessageId> = decoded_ids(&got).into_iter().collect();
    assert_eq!(received, ids);
    for e in &got {
        assert_eq!(e.token.partition, e.decode().unwrap().partition);
    }
    let tokens: Vec<_> = got.iter().map(|e| e.token.clone()).collect();
    consumer.ack(&tokens).await.unwrap();
    let attrs = moto
        .sqs(
            "GetQueueAttributes",
            json!({"QueueUrl": consumer.queue_url(), "AttributeNames": ["All"]}),
        )
        .await
        .unwrap();
    assert_eq!(
        attrs["Attributes"]["ApproximateNumberOfMessages"], "0",
        "{attrs}"
    );
    assert_eq!(
        attrs["Attributes"]["ApproximateNumberOfMessagesNotVisible"], "0",
        "every delete in the batches succeeded: {attrs}"
    );
}

#[tokio::test]
async fn native_delay_up_to_15_minutes_and_none_beyond() {
    let moto = MotoServer::start().await;
    let cfg = moto.client_config();
    let queue = random_name("delay");
    ensure_queue(&cfg, &queue).await.unwrap();
    let producer = SqsProducer::new(&cfg).await;
    let consumer = SqsConsumer::new(&cfg, &queue, &consumer_settings(Duration::from_secs(30)))
        .await
        .unwrap();

    let start = Instant::now();
    let mut soon = envelope(0, 1);
    soon.due_at_ms = now_ms() + 3_500;
    let mut later = envelope(0, 2);
    later.due_at_ms = now_ms() + 20 * 60 * 1000;
    assert!(Duration::from_millis(later.due_at_ms - now_ms()) > SQS_MAX_NATIVE_DELAY);
    assert_appended(
        &producer
            .publish(&settings(&queue), vec![out(soon.clone())])
            .await,
    );
    assert_appended(
        &producer
            .publish(&settings(&queue), vec![out(later.clone())])
            .await,
    );

    let sends = moto.recorded_action("SendMessage");
    assert_eq!(sends.len(), 2);
    assert_eq!(
        sends[0]["DelaySeconds"], 3,
        "whole seconds until due: {}",
        sends[0]
    );
    assert!(
        sends[1].get("DelaySeconds").is_none_or(|d| d == 0),
        "beyond 15 minutes the Redis delayed set holds it: {}",
        sends[1]
    );

    // The 20-minute message is receivable at once; the 3.5 s one is not.
    let first = consumer.receive(10, Duration::from_secs(1)).await.unwrap();
    assert_eq!(decoded_ids(&first), vec![later.id]);
    consumer.ack(&[first[0].token.clone()]).await.unwrap();
    while start.elapsed() < Duration::from_millis(2_500) {
        let got = consumer.receive(10, Duration::from_secs(1)).await.unwrap();
        assert!(got.is_empty(), "received before its delay: {got:?}");
    }
    let got = receive_n(&consumer, 1, Duration::from_secs(5)).await;
    assert_eq!(decoded_ids(&got), vec![soon.id]);
    assert!(
        start.elapsed() >= Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn fifo_groups_by_partition_key_deduplicates_and_keeps_order() {
    let moto = MotoServer::start().await;
    let cfg = moto.client_config();
    let queue = format!("{}.fifo", random_name("fifo"));
    ensure_queue(&cfg, &queue).await.unwrap();
    let producer = SqsProducer::new(&cfg).await;
    let s = settings(&queue);

    // 24 in one group and one alone: three SendMessageBatch calls, which
    // must go out one after the other to keep the group's order.
    let keyed: Vec<Envelope> = (0..24)
        .map(|n| {
            let mut e = envelope(1, n);
            e.partition_key = Some("customer-42".into());
            e.due_at_ms = now_ms() + 5_000; // no per-message delay on FIFO
            e
        })
        .collect();
    let unkeyed = envelope(2, 99);
    let mut batch: Vec<OutgoingMessage> = keyed.iter().cloned().map(out).collect();
    batch.push(out(unkeyed.clone()));
    assert_appended(&producer.publish(&s, batch).await);
    // The same message again (a client retry after UNKNOWN): stored once.
    assert_appended(&producer.publish(&s, vec![out(keyed[0].clone())]).await);

    let calls = moto.recorded_action("SendMessageBatch");
    assert_eq!(calls.len(), 3);
    let entries: Vec<Value> = calls
        .iter()
        .flat_map(|c| c["Entries"].as_array().unwrap().clone())
        .collect();
    assert_eq!(entries.len(), 25);
    for (entry, env) in entries.iter().zip(&keyed) {
        assert_eq!(entry["MessageGroupId"], "customer-42");
        assert_eq!(entry["MessageDeduplicationId"], env.id.to_string());
        assert!(entry.get("DelaySeconds").is_none_or(|d| d == 0), "{entry}");
    }
    assert_eq!(entries[24]["MessageGroupId"], unkeyed.id.to_string());
    assert_eq!(
        entries[24]["MessageDeduplicationId"],
        unkeyed.id.to_string()
    );
    let single = moto.recorded_action("SendMessage");
    assert_eq!(single[0]["MessageDeduplicationId"], keyed[0].id.to_string());

    let consumer = SqsConsumer::new(&cfg, &queue, &consumer_settings(Duration::from_secs(30)))
        .await
        .unwrap();
    let mut got: Vec<MessageId> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        // Acking each batch unlocks the group for the next receive.
        let batch = consumer.receive(4, Duration::from_secs(1)).await.unwrap();
        if batch.is_empty() && got.len() >= 25 {
            break;
        }
        got.extend(decoded_ids(&batch));
        let tokens: Vec<_> = batch.iter().map(|e| e.token.clone()).collect();
        consumer.ack(&tokens).await.unwrap();
    }
    assert_eq!(got.len(), 25, "the duplicate was dropped by SQS: {got:?}");
    let in_group: Vec<MessageId> = got.iter().copied().filter(|id| *id != unkeyed.id).collect();
    let expected: Vec<MessageId> = keyed.iter().map(|e| e.id).collect();
    assert_eq!(in_group, expected, "order within a group is kept");
    assert!(got.contains(&unkeyed.id));
}

#[tokio::test]
async fn extend_visibility_keeps_a_message_past_its_timeout() {
    let moto = MotoServer::start().await;
    let cfg = moto.client_config();
    let queue = random_name("extend");
    ensure_queue(&cfg, &queue).await.unwrap();
    let producer = SqsProducer::new(&cfg).await;
    assert_appended(
        &producer
            .publish(&settings(&queue), vec![out(envelope(0, 1))])
            .await,
    );
    let consumer = SqsConsumer::new(&cfg, &queue, &consumer_settings(Duration::from_secs(5)))
        .await
        .unwrap();

    let got = consumer.receive(1, Duration::from_secs(2)).await.unwrap();
    assert_eq!(got.len(), 1);
    let received_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    consumer
        .extend_visibility(&[got[0].token.clone()])
        .await
        .unwrap();
    let extended_at = Instant::now();
    // Invisible until 5 s after the extension (about 7 s after the
    // receive), not 5 s after the receive.
    tokio::time::sleep_until((received_at + Duration::from_millis(5_300)).into()).await;
    let hidden = consumer.receive(1, Duration::from_secs(1)).await.unwrap();
    assert!(
        hidden.is_empty(),
        "redelivered {:?} after the receive despite the extension",
        received_at.elapsed()
    );
    let again = receive_n(&consumer, 1, Duration::from_secs(6)).await;
    assert_eq!(again.len(), 1, "visible again once the extension ran out");
    assert_eq!(again[0].delivery_count, 2);
    assert!(extended_at.elapsed() >= Duration::from_millis(4_500));
}

#[tokio::test]
async fn a_long_poll_outlasts_the_five_second_call_deadline() {
    let moto = MotoServer::start().await;
    let cfg = moto.client_config();
    let queue = random_name("poll");
    ensure_queue(&cfg, &queue).await.unwrap();
    let consumer = SqsConsumer::new(&cfg, &queue, &SqsConsumerSettings::default())
        .await
        .unwrap();
    let started = Instant::now();
    let got = consumer.receive(10, Duration::from_secs(7)).await.unwrap();
    assert!(got.is_empty());
    assert!(
        started.elapsed() >= Duration::from_millis(6_500),
        "{:?}",
        started.elapsed()
    );

    // A message arriving during the poll ends it early.
    let producer = SqsProducer::new(&cfg).await;
    let env = envelope(0, 1);
    let s = settings(&queue);
    let publish = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        producer.publish(&s, vec![out(env.clone())]).await
    };
    let started = Instant::now();
    let (got, outcomes) = tokio::join!(consumer.receive(10, Duration::from_secs(10)), publish);
    assert_appended(&outcomes);
    assert_eq!(decoded_ids(&got.unwrap()), vec![env.id]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn release_hands_a_message_back_at_once() {
    let moto = MotoServer::start().await;
    let cfg = moto.client_config();
    let queue = random_name("release");
    ensure_queue(&cfg, &queue).await.unwrap();
    let producer = SqsProducer::new(&cfg).await;
    let batch: Vec<OutgoingMessage> = (0..3).map(|n| out(envelope(0, n))).collect();
    assert_appended(&producer.publish(&settings(&queue), batch).await);
    let consumer = SqsConsumer::new(&cfg, &queue, &consumer_settings(Duration::from_secs(60)))
        .await
        .unwrap();

    let got = receive_n(&consumer, 3, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 3);
    let tokens: Vec<_> = got.iter().map(|e| e.token.clone()).collect();
    let started = Instant::now();
    consumer.release(&tokens).await.unwrap();
    let again = receive_n(&consumer, 3, Duration::from_secs(5)).await;
    assert_eq!(again.len(), 3);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(again.iter().all(|e| e.delivery_count == 2));
    let ids: HashSet<MessageId> = decoded_ids(&got).into_iter().collect();
    assert_eq!(decoded_ids(&again).into_iter().collect::<HashSet<_>>(), ids);
}

#[tokio::test]
async fn redrive_policy_moves_a_message_to_the_dead_letter_queue() {
    let moto = MotoServer::start().await;
    let cfg = moto.client_config();
    let dlq = random_name("dlq");
    let dlq_url = ensure_queue(&cfg, &dlq).await.unwrap();
    let arn = moto
        .sqs(
            "GetQueueAttributes",
            json!({"QueueUrl": dlq_url, "AttributeNames": ["QueueArn"]}),
        )
        .await
        .unwrap()["Attributes"]["QueueArn"]
        .as_str()
        .unwrap()
        .to_string();
    let queue = random_name("redrive");
    let policy = json!({"deadLetterTargetArn": arn, "maxReceiveCount": 2}).to_string();
    moto.sqs(
        "CreateQueue",
        json!({"QueueName": queue, "Attributes": {"RedrivePolicy": policy}}),
    )
    .await
    .unwrap();

    let producer = SqsProducer::new(&cfg).await;
    let env = envelope(0, 1);
    assert_appended(
        &producer
            .publish(&settings(&queue), vec![out(env.clone())])
            .await,
    );
    let consumer = SqsConsumer::new(&cfg, &queue, &consumer_settings(Duration::from_secs(1)))
        .await
        .unwrap();
    assert_eq!(consumer.redrive_max_receive_count(), Some(2));

    for count in 1..=2 {
        let got = receive_n(&consumer, 1, Duration::from_secs(5)).await;
        assert_eq!(got.len(), 1, "receive {count}");
        assert_eq!(got[0].delivery_count, count);
        tokio::time::sleep(Duration::from_millis(1_200)).await;
    }
    let third = consumer.receive(1, Duration::from_secs(2)).await.unwrap();
    assert!(
        third.is_empty(),
        "moved to the DLQ after 2 receives: {third:?}"
    );

    let dead = SqsConsumer::new(&cfg, &dlq, &consumer_settings(Duration::from_secs(30)))
        .await
        .unwrap();
    let got = receive_n(&dead, 1, Duration::from_secs(5)).await;
    assert_eq!(decoded_ids(&got), vec![env.id]);
}

#[tokio::test]
async fn a_garbage_body_is_handed_out_for_dead_lettering() {
    let moto = MotoServer::start().await;
    let cfg = moto.client_config();
    let queue = random_name("garbage");
    let url = ensure_queue(&cfg, &queue).await.unwrap();
    moto.sqs(
        "SendMessage",
        json!({"QueueUrl": url, "MessageBody": "not an envelope"}),
    )
    .await
    .unwrap();
    let consumer = SqsConsumer::new(&cfg, &url, &consumer_settings(Duration::from_secs(30)))
        .await
        .unwrap();
    let got = receive_n(&consumer, 1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, b"not an envelope");
    assert_eq!(got[0].token.partition, 0, "no wal-partition attribute");
    assert_eq!(got[0].delivery_count, 1);
    assert!(got[0].decode().is_err());
    consumer.ack(&[got[0].token.clone()]).await.unwrap();
}

#[tokio::test]
async fn an_unreachable_endpoint_answers_false_or_unknown_quickly() {
    let mut moto = MotoServer::start().await;
    let cfg = moto.client_config();
    let queue = random_name("down");
    ensure_queue(&cfg, &queue).await.unwrap();
    let producer = SqsProducer::new(&cfg).await;
    let s = settings(&queue);
    assert_appended(&producer.publish(&s, vec![out(envelope(0, 0))]).await);

    moto.stop().await;
    for n in [1u32, 3] {
        let batch: Vec<OutgoingMessage> = (0..n).map(|i| out(envelope(0, i))).collect();
        let started = Instant::now();
        let outcomes = producer.publish(&s, batch).await;
        let took = started.elapsed();
        eprintln!("endpoint down, batch of {n}: {outcomes:?} after {took:?}");
        assert_eq!(outcomes.len(), n as usize);
        for o in &outcomes {
            assert!(
                matches!(o.durability(), Durability::False | Durability::Unknown),
                "{o:?}"
            );
            assert!(matches!(o, PublishOutcome::Failed(_)), "{o:?}");
        }
        assert!(took < Duration::from_secs(7), "answered after {took:?}");
    }
    assert!(producer.ping().await.is_err());
    assert!(
        SqsConsumer::new(&cfg, &queue, &SqsConsumerSettings::default())
            .await
            .is_err()
    );

    // Back, but empty: the cached URL now names a missing queue.
    moto.restart().await;
    let outcomes = producer.publish(&s, vec![out(envelope(0, 7))]).await;
    assert!(
        matches!(
            &outcomes[0],
            PublishOutcome::Failed(PublishError::Rejected(_))
        ),
        "{outcomes:?}"
    );
    ensure_queue(&cfg, &queue).await.unwrap();
    assert_appended(&producer.publish(&s, vec![out(envelope(0, 8))]).await);
    producer.ping().await.unwrap();
}

#[tokio::test]
async fn a_silent_endpoint_answers_unknown_within_the_deadline() {
    // Takes connections and the requests on them, never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let mut cfg = MotoServer::config_for(&format!("http://127.0.0.1:{port}"));
    cfg.region = "eu-west-1".into();
    let producer = SqsProducer::new(&cfg).await;
    // A URL: no GetQueueUrl needed, the send itself goes out.
    let url = format!("http://127.0.0.1:{port}/123456789012/silent");
    for n in [1u32, 2] {
        let batch: Vec<OutgoingMessage> = (0..n).map(|i| out(envelope(0, i))).collect();
        let started = Instant::now();
        let outcomes = producer.publish(&settings(&url), batch).await;
        let took = started.elapsed();
        eprintln!("silent endpoint, batch of {n}: {outcomes:?} after {took:?}");
        for o in &outcomes {
            assert!(
                matches!(o, PublishOutcome::Failed(PublishError::Timeout(_))),
                "the request left: the outcome is unknown, got {o:?}"
            );
            assert_eq!(o.durability(), Durability::Unknown);
        }
        assert!(took < Duration::from_secs(7), "answered after {took:?}");
    }
    hold.abort();
}

#[tokio::test]
async fn publishing_to_a_missing_queue_is_rejected() {
    let moto = MotoServer::start().await;
    let cfg = moto.client_config();
    let producer = SqsProducer::new(&cfg).await;
    let outcomes = producer
        .publish(
            &settings(&random_name("missing")),
            vec![out(envelope(0, 0))],
        )
        .await;
    match &outcomes[0] {
        PublishOutcome::Failed(PublishError::Rejected(msg)) => {
            assert!(msg.contains("does not exist"), "{msg}")
        }
        other => panic!("{other:?}"),
    }
    assert!(
        moto.recorded_action("CreateQueue").is_empty(),
        "the producer never creates queues"
    );
    assert!(SqsConsumer::new(
        &cfg,
        &random_name("missing"),
        &SqsConsumerSettings::default()
    )
    .await
    .is_err());
}

#[tokio::test]
async fn an_oversize_entry_is_rejected_without_being_sent() {
    let moto = MotoServer::start().await;
    let cfg = moto.client_config();
    let queue = random_name("big");
    ensure_queue(&cfg, &queue).await.unwrap();
    let producer = SqsProducer::new(&cfg).await;

    let mut big = envelope(0, 1);
    big.payload =
        RawValue::from_string(format!("\"{}\"", "x".repeat(SQS_MAX_ENTRY_BYTES))).unwrap();
    let small = envelope(0, 2);
    let outcomes = producer
        .publish(
            &settings(&queue),
            vec![out(big.clone()), out(small.clone())],
        )
        .await;
    match &outcomes[0] {
        PublishOutcome::Failed(PublishError::Rejected(msg)) => assert!(
            msg.starts_with("entry of ") && msg.contains("exceeds the SQS limit of"),
            "{msg}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(outcomes[0].durability(), Durability::False);
    assert_appended(&outcomes[1..]);
    // Only the small one went out (alone: SendMessage).
    let sends = moto.recorded_action("SendMessage");
    assert_eq!(sends.len(), 1);
    assert!(moto.recorded_action("SendMessageBatch").is_empty());
    assert_eq!(
        attr(&sends[0], "wal-message-id"),
        Some(small.id.to_string().as_str())
    );

    // Near the limit, in a batch: every chunk stays within it.
    let batch: Vec<OutgoingMessage> = (0..3)
        .map(|n| {
            let mut e = envelope(0, n);
            e.payload =
                RawValue::from_string(format!("\"{}\"", "y".repeat(SQS_MAX_ENTRY_BYTES / 2)))
                    .unwrap();
            out(e)
        })
        .collect();
    assert_appended(&producer.publish(&settings(&queue), batch).await);
    for call in moto.recorded_action("SendMessageBatch") {
        let bytes: usize = call["Entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["MessageBody"].as_str().unwrap().len())
            .sum();
        assert!(bytes <= SQS_MAX_ENTRY_BYTES, "{bytes}");
    }
}
