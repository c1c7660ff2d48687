//! The worker issue's end-to-end scenarios on every backend: the same
//! gateway and worker processes, a namespace on Redis Streams, on Kafka (a
//! private tansu broker) or on SQS (a private moto server), and an HTTP sink
//! in the test. `scenarios!` instantiates each scenario per backend.
//!
//! | scenario | asserts |
//! | --- | --- |
//! | `delivers_every_message_once` | 40 writes (single and batch) each reach the target once, with id and attempt 1 |
//! | `a_delay_is_never_delivered_early` | 10 messages delayed 2 s arrive after their due time and within a second of it |
//! | `failing_twice_then_succeeding_takes_three_attempts` | attempts 1, 2, 3 after the policy backoff |
//! | `exhausted_retries_go_to_the_dlq_and_a_requeue_delivers` | DLQ record with reason, attempts and history; requeue after the fix delivers once |
//! | `a_killed_worker_loses_nothing` | `kill -9` mid-batch of 300; a second worker delivers every message |
//! | `an_idempotency_key_publishes_once` | the same `Idempotency-Key` twice (and concurrently ×5): one message id, `duplicate: true` on the others, one delivery |
//! | `slow_deliveries_keep_their_entries_invisible` | entries waiting 6 s for a one-at-a-time target, with a 3 s visibility timeout, are each delivered once (the heartbeat extends their visibility) |
//!
//! And per backend: undecodable records written straight into a Kafka topic
//! or an SQS queue go to the DLQ as `malformed`, are acknowledged (not
//! looped), and the good messages around them are delivered.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fred::prelude::*;
use serde_json::{json, Value};
use wal_core::keys::NamespaceKeys;
use wal_tests::e2e::{http_target, namespace, Reply, Sink, Stack};
use wal_tests::gateway::{delete_namespace_keys, redis_client};
use wal_tests::moto::MotoServer;
use wal_tests::tansu::TansuBroker;
use wal_tests::{random_name, redis_url};

/// The broker a scenario's namespace lives on.
enum Broker {
    Redis,
    Kafka(TansuBroker),
    Sqs(MotoServer, tempfile_path::TempSecret),
}

mod tempfile_path {
    /// Files holding the static test credentials, referenced by the
    /// namespace (`accessKeyIdFile`, `secretAccessKeyFile`): secrets by
    /// reference, as in production.
    pub struct TempSecret {
        pub dir: std::path::PathBuf,
    }
    impl TempSecret {
        pub fn new() -> Self {
            let dir = std::env::temp_dir().join(wal_tests::random_name("wal-aws"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("key-id"), "testing\n").unwrap();
            std::fs::write(dir.join("secret"), "testing\n").unwrap();
            Self { dir }
        }
        pub fn path(&self, name: &str) -> String {
            self.dir.join(name).to_string_lossy().into_owned()
        }
    }
    impl Drop for TempSecret {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Broker {
    async fn start(kind: &str) -> Self {
        match kind {
            "redis" => Broker::Redis,
            "kafka" => Broker::Kafka(TansuBroker::start().await),
            "sqs" => Broker::Sqs(MotoServer::start().await, tempfile_path::TempSecret::new()),
            other => panic!("unknown backend {other}"),
        }
    }

    /// `namespace(…)` moved onto this broker.
    fn place(&self, mut ns: Value) -> Value {
        match self {
            Broker::Redis => {}
            Broker::Kafka(b) => {
                ns["backend"] = json!("kafka");
                // tansu 0.6 skips the rest of a record batch when a consumer
                // resumes inside it: one record per batch (a tansu bug; real
                // Kafka needs nothing).
                ns["backendConfig"] = json!({
                    "brokers": [b.brokers()],
                    "properties": wal_tests::tansu::TANSU_CLIENT_PROPERTIES
                        .iter()
                        .map(|(k, v)| (k.to_string(), json!(v)))
                        .collect::<serde_json::Map<String, Value>>(),
                });
            }
            Broker::Sqs(m, secret) => {
                ns["backend"] = json!("sqs");
                ns["backendConfig"] = json!({
                    "endpointUrl": m.endpoint(),
                    "region": "us-east-1",
                    "accessKeyIdFile": secret.path("key-id"),
                    "secretAccessKeyFile": secret.path("secret"),
                });
            }
        }
        ns
    }

    /// Worker settings for quick takeover in tests.
    fn worker_env(&self) -> Vec<(&'static str, &'static str)> {
        vec![
            ("WAL_KAFKA_SESSION_TIMEOUT_MS", "6000"),
            ("WAL_SQS_WAIT_SECS", "1"),
        ]
    }
}

async fn dlq_records(client: &Client, ns: &str) -> Vec<BTreeMap<String, String>> {
    let entries: Vec<(String, HashMap<String, String>)> = client
        .xrange(NamespaceKeys::new(ns).dlq(), "-", "+", None)
        .await
        .unwrap_or_default();
    entries
        .into_iter()
        .map(|(_, fields)| fields.into_iter().collect())
        .collect()
}

fn distinct(sink: &Sink, path: &str) -> HashSet<String> {
    sink.delivered_on(path)
        .iter()
        .map(|r| r.message_id())
        .collect()
}

async fn delivers_every_message_once(kind: &str) {
    let broker = Broker::start(kind).await;
    let sink = Sink::start().await;
    let stack = Stack::start(&redis_url()).await;
    let ns = random_name("be2e-now");
    stack
        .create_namespace(broker.place(namespace(
            &ns,
            2,
            3,
            json!([http_target("a", &sink.url("/a"))]),
        )))
        .await;
    let _worker = stack.spawn_worker(&broker.worker_env()).await;
    let mut ids: HashSet<String> = HashSet::new();
    for i in 0..10 {
        ids.insert(
            stack
                .write(
                    json!({"namespace": ns, "payload": {"i": i}, "partitionKey": format!("k{i}")}),
                )
                .await,
        );
    }
    ids.extend(
        stack
            .write_batch(
                (10..40)
                    .map(|i| json!({"namespace": ns, "payload": {"i": i}}))
                    .collect(),
            )
            .await,
    );
    assert_eq!(ids.len(), 40);
    assert!(
        sink.wait_until(Duration::from_secs(30), |r| r.len() >= 40)
            .await,
        "{kind}: only {} of 40 delivered",
        sink.received().len()
    );
    // Settle: nothing more may arrive.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got = sink.delivered_on("/a");
    assert_eq!(got.len(), 40, "{kind}: duplicates without any failure");
    assert_eq!(distinct(&sink, "/a"), ids);
    assert!(got.iter().all(|r| r.attempt() == 1));
    delete_namespace_keys(&redis_client(&redis_url()).await, &ns).await;
}

async fn a_delay_is_never_delivered_early(kind: &str) {
    let broker = Broker::start(kind).await;
    let sink = Sink::start().await;
    let stack = Stack::start(&redis_url()).await;
    let ns = random_name("be2e-delay");
    stack
        .create_namespace(broker.place(namespace(
            &ns,
            2,
            3,
            json!([{"identifier": "env", "type": "http",
                    "config": {"url": sink.url("/env"), "body": "envelope", "timeoutMs": 1000}}]),
        )))
        .await;
    let _worker = stack.spawn_worker(&broker.worker_env()).await;
    let ids = stack
        .write_batch(
            (0..10)
                .map(|i| json!({"namespace": ns, "payload": {"i": i}, "lifecycle": {"delay": 2}}))
                .collect(),
        )
        .await;
    assert!(
        sink.wait_until(Duration::from_secs(20), |r| r.len() >= ids.len())
            .await,
        "{kind}: only {} of {} delayed messages arrived",
        sink.received().len(),
        ids.len()
    );
    for r in sink.delivered_on("/env") {
        let due = r.json()["dueAtMs"].as_u64().unwrap();
        assert!(
            r.at_ms >= due,
            "{kind}: delivered {} ms early",
            due - r.at_ms
        );
        assert!(r.at_ms - due < 1_500, "{kind}: {} ms late", r.at_ms - due);
    }
    delete_namespace_keys(&redis_client(&redis_url()).await, &ns).await;
}

async fn failing_twice_then_succeeding_takes_three_attempts(kind: &str) {
    let broker = Broker::start(kind).await;
    let sink = Sink::start().await;
    sink.set_behaviour(|_, nth| {
        if nth < 2 {
            Reply::status(500)
        } else {
            Reply::ok()
        }
    });
    let stack = Stack::start(&redis_url()).await;
    let ns = random_name("be2e-retry");
    stack
        .create_namespace(broker.place(namespace(
            &ns,
            1,
            5,
            json!([http_target("a", &sink.url("/a"))]),
        )))
        .await;
    let _worker = stack.spawn_worker(&broker.worker_env()).await;
    let id = stack
        .write(json!({"namespace": ns, "payload": {"x": 1}}))
        .await;
    assert!(
        sink.wait_until(Duration::from_secs(20), |r| r
            .iter()
            .any(|r| r.status == 200))
            .await,
        "{kind}: never delivered"
    );
    let tries = sink.requests_on("/a");
    assert_eq!(tries.len(), 3, "{kind}: {tries:?}");
    assert!(tries.iter().all(|t| t.message_id() == id));
    assert_eq!(
        tries.iter().map(|t| t.attempt()).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    // Policy: 200 ms, then 400 ms (exponential, no jitter).
    let gap1 = tries[1].at_ms - tries[0].at_ms;
    let gap2 = tries[2].at_ms - tries[1].at_ms;
    assert!((200..1_200).contains(&gap1), "{kind}: first gap {gap1} ms");
    assert!((400..1_400).contains(&gap2), "{kind}: second gap {gap2} ms");
    delete_namespace_keys(&redis_client(&redis_url()).await, &ns).await;
}

async fn exhausted_retries_go_to_the_dlq_and_a_requeue_delivers(kind: &str) {
    let broker = Broker::start(kind).await;
    let sink = Sink::start().await;
    let healthy = Arc::new(AtomicBool::new(false));
    let h = healthy.clone();
    sink.set_behaviour(move |_, _| {
        if h.load(Ordering::SeqCst) {
            Reply::ok()
        } else {
            Reply::status(503)
        }
    });
    let stack = Stack::start(&redis_url()).await;
    let ns = random_name("be2e-dlq");
    stack
        .create_namespace(broker.place(namespace(
            &ns,
            1,
            2,
            json!([http_target("flaky", &sink.url("/flaky"))]),
        )))
        .await;
    let _worker = stack.spawn_worker(&broker.worker_env()).await;
    let redis = redis_client(&redis_url()).await;
    let id = stack
        .write(json!({"namespace": ns, "payload": {"k": 1}}))
        .await;
    let mut records = Vec::new();
    for _ in 0..200 {
        records = dlq_records(&redis, &ns).await;
        if !records.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(records.len(), 1, "{kind}: {records:?}");
    let r = &records[0];
    assert_eq!(r["id"], id);
    assert_eq!(r["reason"], "max_attempts");
    assert_eq!(r["attempts"], "2");
    let env: Value = serde_json::from_str(&r["env"]).unwrap();
    assert_eq!(env["history"].as_array().unwrap().len(), 2, "{env}");
    assert_eq!(sink.requests_on("/flaky").len(), 2);

    healthy.store(true, Ordering::SeqCst);
    let (code, body) = stack
        .admin_post(
            &format!("/api/v1/wal/namespace/{ns}/dlq/{id}/requeue"),
            json!({}),
        )
        .await;
    assert!((200..300).contains(&code), "{kind}: requeue {code}: {body}");
    assert!(
        sink.wait_until(Duration::from_secs(20), |r| r
            .iter()
            .any(|r| r.status == 200))
            .await,
        "{kind}: the requeued message was not delivered"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.delivered_on("/flaky").len(), 1);
    assert!(dlq_records(&redis, &ns).await.is_empty());
    delete_namespace_keys(&redis, &ns).await;
}

async fn a_killed_worker_loses_nothing(kind: &str) {
    const N: usize = 300;
    let broker = Broker::start(kind).await;
    let sink = Sink::start().await;
    sink.set_behaviour(|_, _| Reply::ok().after(Duration::from_millis(20)));
    let stack = Stack::start(&redis_url()).await;
    let ns = random_name("be2e-kill");
    stack
        .create_namespace(broker.place(namespace(
            &ns,
            2,
            5,
            json!([http_target("s", &sink.url("/s"))]),
        )))
        .await;
    let ids: HashSet<String> = stack
        .write_batch(
            (0..N)
                .map(|i| json!({"namespace": ns, "payload": {"i": i}}))
                .collect(),
        )
        .await
        .into_iter()
        .collect();
    let mut env = broker.worker_env();
    env.extend([
        ("WAL_WORKER_MAX_IN_FLIGHT", "16"),
        ("WAL_TARGET_CONCURRENCY", "8"),
    ]);
    let mut first = stack.spawn_worker(&env).await;
    assert!(
        sink.wait_until(Duration::from_secs(30), |r| r.len() >= 20)
            .await,
        "{kind}: the first worker delivered nothing"
    );
    first.kill9().await;
    let before = distinct(&sink, "/s").len();
    assert!(
        before < N,
        "{kind}: the kill came too late to test anything"
    );
    let _second = stack.spawn_worker(&env).await;
    assert!(
        sink.wait_until(Duration::from_secs(60), |r| {
            r.iter()
                .filter(|r| r.status == 200)
                .map(|r| r.message_id())
                .collect::<HashSet<_>>()
                .len()
                >= N
        })
        .await,
        "{kind}: {} of {N} delivered after the kill",
        distinct(&sink, "/s").len()
    );
    assert_eq!(distinct(&sink, "/s"), ids);
    let duplicates = sink.delivered_on("/s").len() - N;
    assert!(
        duplicates <= 16 + 8,
        "{kind}: {duplicates} duplicates, more than were in flight"
    );
    delete_namespace_keys(&redis_client(&redis_url()).await, &ns).await;
}

async fn an_idempotency_key_publishes_once(kind: &str) {
    let broker = Broker::start(kind).await;
    let sink = Sink::start().await;
    let stack = Stack::start(&redis_url()).await;
    let ns = random_name("be2e-idem");
    stack
        .create_namespace(broker.place(namespace(
            &ns,
            2,
            3,
            json!([http_target("a", &sink.url("/a"))]),
        )))
        .await;
    let _worker = stack.spawn_worker(&broker.worker_env()).await;
    let write = |key: &'static str| {
        let req = stack
            .client
            .post(stack.url("/api/v1/wal/write"))
            .header("x-api-key", wal_tests::gateway::WRITE_KEY)
            .header("idempotency-key", key)
            .json(&json!({"namespace": ns, "payload": {"key": key}}));
        async move {
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), 202);
            res.json::<Value>().await.unwrap()
        }
    };
    let first = write("order-1").await;
    let again = write("order-1").await;
    assert_eq!(first["duplicate"], false, "{first}");
    assert_eq!(again["duplicate"], true, "{again}");
    assert_eq!(again["messageId"], first["messageId"]);
    // Concurrent writes with one new key: exactly one is published.
    let answers = futures_util::future::join_all((0..5).map(|_| write("order-2"))).await;
    let published: Vec<&Value> = answers.iter().filter(|a| a["duplicate"] == false).collect();
    assert_eq!(published.len(), 1, "{kind}: {answers:?}");
    let ids: HashSet<&str> = answers
        .iter()
        .map(|a| a["messageId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "{kind}: every answer names the one message");
    assert!(
        sink.wait_until(Duration::from_secs(20), |r| r.len() >= 2)
            .await,
        "{kind}: not delivered"
    );
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        sink.delivered_on("/a").len(),
        2,
        "{kind}: one delivery per key"
    );
    delete_namespace_keys(&redis_client(&redis_url()).await, &ns).await;
}

async fn slow_deliveries_keep_their_entries_invisible(kind: &str) {
    let broker = Broker::start(kind).await;
    let sink = Sink::start().await;
    sink.set_behaviour(|_, _| Reply::ok().after(Duration::from_millis(1_500)));
    let stack = Stack::start(&redis_url()).await;
    let ns = random_name("be2e-slow");
    let mut target = http_target("slow", &sink.url("/slow"));
    target["config"]["timeoutMs"] = json!(2_500);
    stack
        .create_namespace(broker.place(namespace(&ns, 1, 3, json!([target]))))
        .await;
    // One delivery at a time: the 4th entry waits ~4.5 s in the worker,
    // longer than the 3 s visibility timeout.
    let mut env = broker.worker_env();
    env.extend([("WAL_TARGET_CONCURRENCY", "1")]);
    let _worker = stack.spawn_worker(&env).await;
    let ids: HashSet<String> = stack
        .write_batch(
            (0..4)
                .map(|i| json!({"namespace": ns, "payload": {"i": i}}))
                .collect(),
        )
        .await
        .into_iter()
        .collect();
    assert!(
        sink.wait_until(Duration::from_secs(30), |r| r.len() >= 4)
            .await,
        "{kind}: only {} of 4 delivered",
        sink.received().len()
    );
    // Were visibility not extended, another read would hand them out again.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(distinct(&sink, "/slow"), ids);
    assert_eq!(
        sink.requests_on("/slow").len(),
        4,
        "{kind}: an entry was handed out again while it waited"
    );
    delete_namespace_keys(&redis_client(&redis_url()).await, &ns).await;
}

/// Waits for `n` DLQ records of `ns`.
async fn wait_dlq(redis: &Client, ns: &str, n: usize) -> Vec<BTreeMap<String, String>> {
    let mut records = Vec::new();
    for _ in 0..200 {
        records = dlq_records(redis, ns).await;
        if records.len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_undecodable_messages_go_to_the_dlq_once_and_leave_the_queue() {
    let broker = Broker::start("sqs").await;
    let Broker::Sqs(moto, _) = &broker else {
        unreachable!()
    };
    let sink = Sink::start().await;
    let stack = Stack::start(&redis_url()).await;
    let ns = random_name("be2e-sqsbad");
    stack
        .create_namespace(broker.place(namespace(
            &ns,
            1,
            3,
            json!([http_target("a", &sink.url("/a"))]),
        )))
        .await;
    let url = moto
        .sqs("GetQueueUrl", json!({"QueueName": ns}))
        .await
        .unwrap()["QueueUrl"]
        .as_str()
        .unwrap()
        .to_string();
    for body in ["not json at all", "{\"v\": 99}"] {
        moto.sqs("SendMessage", json!({"QueueUrl": url, "MessageBody": body}))
            .await
            .unwrap();
    }
    let _worker = stack.spawn_worker(&broker.worker_env()).await;
    let good = stack
        .write(json!({"namespace": ns, "payload": {"ok": true}}))
        .await;
    let redis = redis_client(&redis_url()).await;
    let records = wait_dlq(&redis, &ns, 2).await;
    assert_eq!(records.len(), 2, "{records:?}");
    assert!(
        records.iter().all(|r| r["reason"] == "malformed"),
        "{records:?}"
    );
    assert!(
        sink.wait_until(Duration::from_secs(20), |r| !r.is_empty())
            .await
    );
    assert_eq!(sink.delivered_on("/a")[0].message_id(), good);
    // Deleted from the queue, not looped: nothing is left or in flight,
    // and no third record appears after a visibility timeout.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let attrs = moto
        .sqs(
            "GetQueueAttributes",
            json!({"QueueUrl": url, "AttributeNames": ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]}),
        )
        .await
        .unwrap();
    assert_eq!(
        attrs["Attributes"]["ApproximateNumberOfMessages"], "0",
        "{attrs}"
    );
    assert_eq!(
        attrs["Attributes"]["ApproximateNumberOfMessagesNotVisible"], "0",
        "{attrs}"
    );
    assert_eq!(dlq_records(&redis, &ns).await.len(), 2);
    delete_namespace_keys(&redis, &ns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_undecodable_records_go_to_the_dlq_and_the_partition_keeps_flowing() {
    use wal_backends::kafka::rdkafka::producer::{FutureProducer, FutureRecord};
    use wal_backends::kafka::rdkafka::ClientConfig;
    let broker = Broker::start("kafka").await;
    let Broker::Kafka(tansu) = &broker else {
        unreachable!()
    };
    let sink = Sink::start().await;
    let stack = Stack::start(&redis_url()).await;
    let ns = random_name("be2e-kbad");
    stack
        .create_namespace(broker.place(namespace(
            &ns,
            1,
            3,
            json!([http_target("a", &sink.url("/a"))]),
        )))
        .await;
    let raw: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", tansu.brokers())
        .set("batch.num.messages", "1")
        .create()
        .unwrap();
    for body in [&b"garbage"[..], &b"{\"v\":1}"[..]] {
        raw.send(
            FutureRecord::<str, [u8]>::to(&ns)
                .partition(0)
                .payload(body),
            Duration::from_secs(3),
        )
        .await
        .expect("raw send");
    }
    let _worker = stack.spawn_worker(&broker.worker_env()).await;
    let good = stack
        .write(json!({"namespace": ns, "payload": {"ok": true}}))
        .await;
    let redis = redis_client(&redis_url()).await;
    let records = wait_dlq(&redis, &ns, 2).await;
    assert_eq!(records.len(), 2, "{records:?}");
    assert!(
        records.iter().all(|r| r["reason"] == "malformed"),
        "{records:?}"
    );
    assert!(
        sink.wait_until(Duration::from_secs(20), |r| !r.is_empty())
            .await,
        "the message after the undecodable records was not delivered"
    );
    assert_eq!(sink.delivered_on("/a")[0].message_id(), good);
    delete_namespace_keys(&redis, &ns).await;
}

macro_rules! scenarios {
    ($module:ident, $kind:literal) => {
        mod $module {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn delivers_every_message_once() {
                super::delivers_every_message_once($kind).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_delay_is_never_delivered_early() {
                super::a_delay_is_never_delivered_early($kind).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn failing_twice_then_succeeding_takes_three_attempts() {
                super::failing_twice_then_succeeding_takes_three_attempts($kind).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn exhausted_retries_go_to_the_dlq_and_a_requeue_delivers() {
                super::exhausted_retries_go_to_the_dlq_and_a_requeue_delivers($kind).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_killed_worker_loses_nothing() {
                super::a_killed_worker_loses_nothing($kind).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn an_idempotency_key_publishes_once() {
                super::an_idempotency_key_publishes_once($kind).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn slow_deliveries_keep_their_entries_invisible() {
                super::slow_deliveries_keep_their_entries_invisible($kind).await
            }
        }
    };
}

scenarios!(redis_streams, "redis");
scenarios!(kafka, "kafka");
scenarios!(sqs, "sqs");
