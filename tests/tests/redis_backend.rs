//! The Redis Streams backend on its own: producer and consumer against real
//! Redis servers — ack, reclaim of abandoned entries with delivery counts,
//! recovery from a lost consumer group (NOGROUP), undecodable entries,
//! retention, and `WAIT` for replicas.

use std::time::Duration;

use fred::prelude::*;
use wal_backends::redis_streams::{RedisStreamConsumer, RedisStreamProducer};
use wal_core::backend::{
    LogConsumer, LogProducer, LogSettings, OutgoingMessage, PublishOutcome, Retention,
};
use wal_core::{Durability, Envelope, MessageId};
use wal_redis::{RedisConnection, RedisConnectionConfig};
use wal_tests::fixtures::{self, log_settings};
use wal_tests::gateway::{delete_namespace_keys, redis_client};
use wal_tests::redis_server::PrivateRedis;
use wal_tests::{random_name, redis_url};

fn settings(ns: &str, partitions: u32) -> LogSettings {
    log_settings(ns, ns, partitions)
}

fn envelope(ns: &str, partition: u32, n: u32) -> Envelope {
    let mut e = fixtures::envelope(ns, partition, n);
    e.request_id = "r".into();
    (e.created_at_ms, e.due_at_ms) = (0, 0);
    e
}

async fn connect(url: &str) -> RedisConnection {
    RedisConnection::connect(
        &RedisConnectionConfig {
            url: url.into(),
            pool_size: 2,
            command_timeout: Duration::from_secs(2),
        },
        Duration::from_secs(3),
    )
    .await
    .unwrap()
}

async fn publish_n(
    producer: &RedisStreamProducer,
    s: &LogSettings,
    partition: u32,
    n: u32,
) -> Vec<MessageId> {
    let batch: Vec<OutgoingMessage> = (0..n)
        .map(|i| OutgoingMessage {
            envelope: envelope(&s.namespace, partition, i),
            idempotency: None,
        })
        .collect();
    let ids = batch.iter().map(|m| m.envelope.id).collect();
    for o in producer.publish(s, batch).await {
        assert!(
            matches!(
                o,
                PublishOutcome::Appended {
                    durability: Durability::True,
                    ..
                }
            ),
            "{o:?}"
        );
    }
    ids
}

#[tokio::test]
async fn receive_ack_and_reclaim_abandoned_entries() {
    let ns = random_name("cons");
    let conn = connect(&redis_url()).await;
    let producer = RedisStreamProducer::new(conn.clone());
    let s = settings(&ns, 2);
    let ids = publish_n(&producer, &s, 1, 5).await;

    let a = RedisStreamConsumer::new(&conn, &ns, vec![0, 1], "worker-a")
        .await
        .unwrap();
    let got = a.receive(10, Duration::from_millis(200)).await.unwrap();
    assert_eq!(got.len(), 5);
    let decoded: Vec<MessageId> = got.iter().map(|e| e.decode().unwrap().id).collect();
    assert_eq!(decoded, ids, "stream order is write order");
    assert!(got
        .iter()
        .all(|e| e.delivery_count == 1 && e.token.partition == 1));
    a.ack(&got[..3].iter().map(|e| e.token.clone()).collect::<Vec<_>>())
        .await
        .unwrap();
    assert!(
        a.receive(10, Duration::from_millis(50))
            .await
            .unwrap()
            .is_empty(),
        "nothing new"
    );

    // worker-a "dies" holding two entries; worker-b takes them after the visibility timeout.
    let b = RedisStreamConsumer::new(&conn, &ns, vec![0, 1], "worker-b")
        .await
        .unwrap();
    let reclaimer = b.reclaimer().expect("redis can reclaim");
    assert!(
        reclaimer
            .reclaim(Duration::from_secs(10), 10)
            .await
            .unwrap()
            .is_empty(),
        "not idle long enough yet"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let taken = reclaimer
        .reclaim(Duration::from_millis(200), 10)
        .await
        .unwrap();
    assert_eq!(
        taken
            .iter()
            .map(|e| e.decode().unwrap().id)
            .collect::<Vec<_>>(),
        ids[3..].to_vec()
    );
    assert!(
        taken.iter().all(|e| e.delivery_count == 2),
        "{:?}",
        taken.iter().map(|e| e.delivery_count).collect::<Vec<_>>()
    );

    // extend_visibility keeps them from being reclaimed again.
    let tokens: Vec<_> = taken.iter().map(|e| e.token.clone()).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.extend_visibility(&tokens).await.unwrap();
    assert!(reclaimer
        .reclaim(Duration::from_millis(200), 10)
        .await
        .unwrap()
        .is_empty());
    b.ack(&tokens).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        reclaimer
            .reclaim(Duration::from_millis(200), 10)
            .await
            .unwrap()
            .is_empty(),
        "acked entries are gone"
    );
    delete_namespace_keys(&redis_client(&redis_url()).await, &ns).await;
}

#[tokio::test]
async fn reclaim_reaches_abandoned_entries_behind_many_live_ones() {
    let ns = random_name("cursor");
    let conn = connect(&redis_url()).await;
    let producer = RedisStreamProducer::new(conn.clone());
    let s = settings(&ns, 1);
    let ids = publish_n(&producer, &s, 0, 201).await;
    let dead = RedisStreamConsumer::new(&conn, &ns, vec![0], "dead")
        .await
        .unwrap();
    let got = dead.receive(500, Duration::from_millis(200)).await.unwrap();
    assert_eq!(got.len(), 201);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The first 200 are alive (another worker's heartbeat keeps them
    // visible); only the last one is abandoned.
    let live = RedisStreamConsumer::new(&conn, &ns, vec![0], "live")
        .await
        .unwrap();
    let redis = redis_client(&redis_url()).await;
    let mut args = vec![
        wal_core::keys::NamespaceKeys::new(&ns).stream(0),
        wal_core::keys::CONSUMER_GROUP.to_string(),
        "live".to_string(),
        "0".to_string(),
    ];
    args.extend(got[..200].iter().map(|e| match &e.token.position {
        wal_core::backend::Position::StreamEntry(id) => id.clone(),
        other => panic!("{other:?}"),
    }));
    args.push("JUSTID".into());
    let _: fred::types::Value = redis.custom(fred::cmd!("XCLAIM"), args).await.unwrap();
    drop(live);
    let taker = RedisStreamConsumer::new(&conn, &ns, vec![0], "taker")
        .await
        .unwrap();
    let reclaimer = taker.reclaimer().unwrap();
    let mut taken = Vec::new();
    for _ in 0..10 {
        taken.extend(
            reclaimer
                .reclaim(Duration::from_millis(250), 10)
                .await
                .unwrap(),
        );
        if !taken.is_empty() {
            break;
        }
    }
    assert_eq!(
        taken
            .iter()
            .map(|e| e.decode().unwrap().id)
            .collect::<Vec<_>>(),
        vec![ids[200]],
        "the abandoned entry behind 200 live ones is reclaimed within a few passes"
    );
    delete_namespace_keys(&redis, &ns).await;
}

#[tokio::test]
async fn consumer_recreates_a_lost_group_and_passes_undecodable_entries_up() {
    let ns = random_name("nogroup");
    let conn = connect(&redis_url()).await;
    let producer = RedisStreamProducer::new(conn.clone());
    let s = settings(&ns, 1);
    let consumer = RedisStreamConsumer::new(&conn, &ns, vec![0], "w")
        .await
        .unwrap();

    // Lose the stream and its group, as after a Redis restart without persistence.
    let raw = redis_client(&redis_url()).await;
    let _: i64 = raw.del(format!("wal:{{{ns}}}:p:0")).await.unwrap();
    let ids = publish_n(&producer, &s, 0, 2).await;
    let got = consumer
        .receive(10, Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(
        got.iter()
            .map(|e| e.decode().unwrap().id)
            .collect::<Vec<_>>(),
        ids
    );

    // A malformed entry is handed up (the worker dead-letters it), not dropped, not fatal.
    let _: String = raw
        .xadd(
            format!("wal:{{{ns}}}:p:0"),
            false,
            None,
            "*",
            vec![("env", "not json")],
        )
        .await
        .unwrap();
    let got = consumer
        .receive(10, Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert!(got[0].decode().is_err());
    delete_namespace_keys(&raw, &ns).await;
}

#[tokio::test]
async fn retention_trims_each_partition() {
    let ns = random_name("trim");
    let conn = connect(&redis_url()).await;
    let producer = RedisStreamProducer::new(conn.clone());
    let mut s = settings(&ns, 1);
    s.retention = Retention::MaxLen(100);
    for _ in 0..10 {
        publish_n(&producer, &s, 0, 100).await;
    }
    let raw = redis_client(&redis_url()).await;
    let len: u64 = raw.xlen(format!("wal:{{{ns}}}:p:0")).await.unwrap();
    assert!(
        (100..1000).contains(&len),
        "approximate MAXLEN keeps about 100, got {len}"
    );

    s.retention = Retention::MaxAge(Duration::from_millis(200));
    tokio::time::sleep(Duration::from_millis(300)).await;
    publish_n(&producer, &s, 0, 1).await;
    let len: u64 = raw.xlen(format!("wal:{{{ns}}}:p:0")).await.unwrap();
    assert!(len < 200, "MINID trimming dropped old entries, {len} left");
    delete_namespace_keys(&raw, &ns).await;
}

#[tokio::test]
async fn wait_for_replicas_answers_true_only_when_they_confirm() {
    let primary = PrivateRedis::start().await;
    let replica = PrivateRedis::start_with(vec![
        "--replicaof".into(),
        "127.0.0.1".into(),
        primary.port().to_string(),
    ])
    .await;
    let conn = connect(&primary.url()).await;
    primary.wait_for_replica().await;
    let producer = RedisStreamProducer::new(conn);
    let ns = random_name("repl");
    let mut s = settings(&ns, 1);
    s.wait_replicas = 1;
    s.wait_timeout = Duration::from_secs(5);
    let out = producer
        .publish(
            &s,
            vec![OutgoingMessage {
                envelope: envelope(&ns, 0, 1),
                idempotency: None,
            }],
        )
        .await;
    assert!(
        matches!(
            out[0],
            PublishOutcome::Appended {
                durability: Durability::True,
                ..
            }
        ),
        "{out:?}"
    );

    s.wait_replicas = 2;
    s.wait_timeout = Duration::from_millis(200);
    let out = producer
        .publish(
            &s,
            vec![OutgoingMessage {
                envelope: envelope(&ns, 0, 2),
                idempotency: None,
            }],
        )
        .await;
    assert!(
        matches!(
            out[0],
            PublishOutcome::Appended {
                durability: Durability::Unknown,
                ..
            }
        ),
        "{out:?}"
    );
    drop(replica);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_wait_delays_no_other_namespace_s_writes() {
    // No replica ever confirms: every write of the waiting namespace holds
    // a WAIT for its full timeout.
    let server = PrivateRedis::start().await;
    let (db, _) = wal_tests::gateway::sqlite_store();
    let gw = wal_tests::gateway::TestGateway::spawn_with(&server.url(), &db, |_| {}).await;
    let waiting = random_name("waits");
    let mut body = wal_tests::gateway::namespace_body(&waiting, 1);
    body["backendConfig"] = serde_json::json!({"waitReplicas": 1, "waitTimeoutMs": 3000});
    gw.create_namespace(&body).await;
    let other = random_name("quick");
    gw.create_namespace(&wal_tests::gateway::namespace_body(&other, 1))
        .await;

    let slow = {
        let client = gw.client.clone();
        let url = gw.url("/api/v1/wal/write");
        let waiting = waiting.clone();
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..4 {
                let r = client
                    .post(&url)
                    .header("x-api-key", wal_tests::gateway::WRITE_KEY)
                    .json(&serde_json::json!({"namespace": waiting, "payload": {}}))
                    .send()
                    .await
                    .unwrap();
                statuses.push(r.status().as_u16());
            }
            statuses
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Meanwhile the other namespace writes as fast as ever.
    for i in 0..40 {
        let started = std::time::Instant::now();
        let r = gw
            .write(&serde_json::json!({"namespace": other, "payload": {"i": i}}))
            .await;
        let status = r.status().as_u16();
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(
            (status, body["durable"].as_str()),
            (202, Some("TRUE")),
            "write {i}: {body}"
        );
        assert!(
            started.elapsed() < Duration::from_millis(800),
            "write {i} took {:?} behind another namespace's WAIT",
            started.elapsed()
        );
    }
    // The waiting namespace's writes themselves answer UNKNOWN (202).
    let statuses = slow.await.unwrap();
    assert!(statuses.iter().all(|s| *s == 202), "{statuses:?}");
}
