//! `Idempotency-Key` records for backends that publish outside Redis (Kafka,
//! SQS), against the Redis of `WAL_TEST_REDIS_URL`. The wrapped producer is
//! a test double whose publish the test holds and releases, so that "the
//! original is still in flight" is a state the test controls.

mod common;

use common::{connect, random_ns};

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::value::RawValue;
use tokio::sync::{Mutex, Notify};
use wal_core::backend::{
    BackendError, IdempotencyClaim, LogProducer, LogSettings, OutgoingMessage, PublishError,
    PublishOutcome, Retention,
};
use wal_core::envelope::{Envelope, ResolvedLifecycle, TraceContext, ENVELOPE_VERSION};
use wal_core::request::TargetRef;
use wal_core::retry::RetryPolicy;
use wal_core::routing::ShardStrategy;
use wal_core::{Durability, MessageId};
use wal_state::RedisIdempotency;

fn settings(ns: &str) -> LogSettings {
    LogSettings {
        namespace: ns.to_string(),
        topic: ns.to_string(),
        partition_count: 1,
        shard_strategy: ShardStrategy::Hash,
        retention: Retention::MaxLen(1000),
        wait_replicas: 0,
        wait_timeout: Duration::from_secs(1),
        dedup_window: Duration::from_secs(60),
    }
}

fn message(ns: &str, key: &str, body: &str) -> OutgoingMessage {
    OutgoingMessage {
        envelope: Envelope {
            v: ENVELOPE_VERSION,
            id: MessageId::generate(),
            namespace: ns.to_string(),
            payload: RawValue::from_string(body.to_string()).unwrap(),
            targets: vec![TargetRef::named("sink")],
            lifecycle: ResolvedLifecycle {
                retry_policy: RetryPolicy::default(),
                enable_dlq: true,
                expires_at_ms: None,
            },
            partition_key: None,
            partition: 0,
            request_id: "req".into(),
            trace: TraceContext::default(),
            created_at_ms: 1,
            due_at_ms: 1,
            attempt: 0,
            metadata: None,
            priority: None,
            tags: vec![],
            history: Vec::new(),
        },
        idempotency: Some(IdempotencyClaim {
            key: key.to_string(),
            fingerprint: format!("fp-{body}"),
        }),
    }
}

/// A producer whose publishes wait until the test releases them with the
/// outcome it chooses.
#[derive(Default)]
struct HeldProducer {
    started: Notify,
    release: Notify,
    outcome: Mutex<Option<PublishOutcome>>,
    published: Mutex<Vec<MessageId>>,
}

/// [`HeldProducer`] shared between the test and the wrapper under test.
struct Held(Arc<HeldProducer>);

#[async_trait]
impl LogProducer for Held {
    async fn publish(
        &self,
        settings: &LogSettings,
        batch: Vec<OutgoingMessage>,
    ) -> Vec<PublishOutcome> {
        self.0.publish(settings, batch).await
    }

    async fn ping(&self) -> Result<(), BackendError> {
        Ok(())
    }
}

#[async_trait]
impl LogProducer for HeldProducer {
    async fn publish(
        &self,
        _settings: &LogSettings,
        batch: Vec<OutgoingMessage>,
    ) -> Vec<PublishOutcome> {
        self.started.notify_one();
        self.release.notified().await;
        let outcome = self.outcome.lock().await.clone().expect("outcome set");
        if matches!(outcome, PublishOutcome::Appended { .. }) {
            self.published
                .lock()
                .await
                .extend(batch.iter().map(|m| m.envelope.id));
        }
        batch.iter().map(|_| outcome.clone()).collect()
    }

    async fn ping(&self) -> Result<(), BackendError> {
        Ok(())
    }
}

/// Publishes `msg` through `producer` in a task of its own.
fn publish_in_background(
    producer: &Arc<RedisIdempotency<Held>>,
    ns: &str,
    msg: OutgoingMessage,
) -> tokio::task::JoinHandle<PublishOutcome> {
    let producer = producer.clone();
    let s = settings(ns);
    tokio::spawn(async move { producer.publish(&s, vec![msg]).await.remove(0) })
}

async fn release(inner: &HeldProducer, outcome: PublishOutcome) {
    *inner.outcome.lock().await = Some(outcome);
    inner.release.notify_one();
}

fn appended() -> PublishOutcome {
    PublishOutcome::Appended {
        position: "0".into(),
        durability: Durability::True,
    }
}

#[tokio::test]
async fn a_duplicate_of_a_write_still_in_flight_is_unknown_and_one_that_failed_publishes_again() {
    let ns = random_ns("idem");
    let inner = Arc::new(HeldProducer::default());
    let producer = Arc::new(RedisIdempotency::new(connect().await, Held(inner.clone())));

    // Request 1 claims the key; its publish is held.
    let first = message(&ns, "order-1", "{\"a\":1}");
    let first_id = first.envelope.id;
    let request_1 = publish_in_background(&producer, &ns, first);
    inner.started.notified().await;

    // The client's retry, while request 1 is in flight: nothing is known yet.
    let retry = producer
        .publish(&settings(&ns), vec![message(&ns, "order-1", "{\"a\":1}")])
        .await
        .remove(0);
    assert_eq!(
        retry,
        PublishOutcome::Duplicate {
            original: first_id,
            durability: Durability::Unknown
        },
        "a duplicate may not claim more than is known of the original"
    );

    // Request 1 fails: its claim is withdrawn, and the next retry publishes.
    release(
        &inner,
        PublishOutcome::Failed(PublishError::Unavailable("broker down".into())),
    )
    .await;
    assert!(matches!(
        request_1.await.unwrap(),
        PublishOutcome::Failed(_)
    ));
    let again = message(&ns, "order-1", "{\"a\":1}");
    let again_id = again.envelope.id;
    let request_3 = publish_in_background(&producer, &ns, again);
    inner.started.notified().await;
    release(&inner, appended()).await;
    assert!(matches!(
        request_3.await.unwrap(),
        PublishOutcome::Appended { .. }
    ));
    assert_eq!(*inner.published.lock().await, vec![again_id]);

    // Once confirmed, a duplicate is TRUE.
    let confirmed = producer
        .publish(&settings(&ns), vec![message(&ns, "order-1", "{\"a\":1}")])
        .await
        .remove(0);
    assert_eq!(
        confirmed,
        PublishOutcome::Duplicate {
            original: again_id,
            durability: Durability::True
        }
    );
}

#[tokio::test]
async fn the_same_key_with_another_request_is_refused_as_reused() {
    let ns = random_ns("idem");
    let inner = Arc::new(HeldProducer::default());
    let producer = Arc::new(RedisIdempotency::new(connect().await, Held(inner.clone())));
    let first = message(&ns, "order-9", "{\"a\":1}");
    let first_id = first.envelope.id;
    let request_1 = publish_in_background(&producer, &ns, first);
    inner.started.notified().await;
    release(&inner, appended()).await;
    request_1.await.unwrap();

    let other = producer
        .publish(&settings(&ns), vec![message(&ns, "order-9", "{\"a\":2}")])
        .await
        .remove(0);
    assert_eq!(other, PublishOutcome::KeyReused { original: first_id });
    assert_eq!(inner.published.lock().await.len(), 1);
}

#[tokio::test]
async fn a_claim_left_pending_by_a_gateway_that_died_is_taken_over_once_stale() {
    let ns = random_ns("idem");
    let conn = connect().await;
    // What a gateway killed between its claim and its publish leaves behind:
    // a pending record, claimed long ago.
    let keys = wal_core::keys::NamespaceKeys::new(&ns);
    let orphan = MessageId::generate();
    let record = wal_core::idempotency::IdempotencyRecord {
        message_id: orphan,
        state: wal_core::idempotency::RecordState::Pending,
        fingerprint: "fp-{\"a\":1}".into(),
        since_ms: 1,
    };
    let _: () = fred::interfaces::KeysInterface::set(
        conn.pool(),
        keys.idempotency("order-5"),
        record.encode(),
        Some(fred::types::Expiration::PX(60_000)),
        None,
        false,
    )
    .await
    .unwrap();

    let inner = Arc::new(HeldProducer::default());
    let producer = Arc::new(RedisIdempotency::new(conn, Held(inner.clone())));
    let retry = message(&ns, "order-5", "{\"a\":1}");
    let retry_id = retry.envelope.id;
    let request = publish_in_background(&producer, &ns, retry);
    inner.started.notified().await;
    release(&inner, appended()).await;
    assert!(matches!(
        request.await.unwrap(),
        PublishOutcome::Appended { .. }
    ));
    assert_eq!(*inner.published.lock().await, vec![retry_id]);
}
