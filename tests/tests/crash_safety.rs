//! Failures tested as failures, end to end (gateway and workers as
//! processes): `kill -9` mid-batch, two workers racing for delayed entries,
//! Redis losing the consumer group or restarting, malformed and poison
//! entries, and SIGTERM.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use fred::prelude::*;
use fred::types::Value as RedisValue;
use rand::Rng;
use serde_json::{json, Value};
use wal_core::keys::{NamespaceKeys, CONSUMER_GROUP};
use wal_tests::e2e::{distinct_delivered, http_target, namespace, Reply, Sink, Stack};
use wal_tests::gateway::{delete_namespace_keys, redis_client, WRITE_KEY};
use wal_tests::redis_server::PrivateRedis;
use wal_tests::{random_name, redis_url};

fn distinct(sink: &Sink, path: &str) -> HashSet<String> {
    sink.delivered_on(path)
        .iter()
        .map(|r| r.message_id())
        .collect()
}

async fn dlq_reasons(client: &Client, ns: &str) -> Vec<(String, String)> {
    let entries: Vec<(String, HashMap<String, String>)> = client
        .xrange(NamespaceKeys::new(ns).dlq(), "-", "+", None)
        .await
        .unwrap_or_default();
    entries
        .into_iter()
        .map(|(_, f)| (f["id"].clone(), f["reason"].clone()))
        .collect()
}

#[tokio::test]
async fn kill_9_at_random_moments_loses_nothing_and_duplicates_only_in_flight_entries() {
    const N: usize = 2_000;
    const IN_FLIGHT: usize = 64;
    let sink = Sink::start().await;
    // Slow enough that a batch of 2,000 takes seconds, so kills land mid-batch.
    sink.set_behaviour(|_, _| Reply::ok().after(Duration::from_millis(15)));
    let stack = Stack::start(&redis_url()).await;
    let ns = random_name("e2e-kill");
    stack
        .create_namespace(namespace(
            &ns,
            4,
            5,
            json!([http_target("sink", &sink.url("/s"))]),
        ))
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
    assert_eq!(ids.len(), N);

    let env = [
        ("WAL_WORKER_MAX_IN_FLIGHT", "64"),
        ("WAL_WORKER_BATCH", "32"),
        ("WAL_TARGET_CONCURRENCY", "32"),
    ];
    let mut kills = 0;
    for _ in 0..3 {
        let mut worker = stack.spawn_worker(&env).await;
        let wait = rand::rng().random_range(300..1_200);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        worker.kill9().await;
        kills += 1;
        if distinct(&sink, "/s").len() == N {
            break;
        }
    }
    let _survivor = stack.spawn_worker(&env).await;
    assert!(
        sink.wait_until(Duration::from_secs(60), |r| distinct_delivered(r, "/s")
            .len()
            == N)
            .await,
        "delivered {} of {N}",
        distinct(&sink, "/s").len()
    );
    let delivered = sink.delivered_on("/s");
    let got: HashSet<String> = delivered.iter().map(|r| r.message_id()).collect();
    assert_eq!(got, ids, "every accepted message delivered");
    let duplicates = delivered.len() - N;
    eprintln!("kill -9 ×{kills}: {N} delivered, {duplicates} duplicates");
    assert!(
        duplicates <= kills * IN_FLIGHT,
        "{duplicates} duplicates: more than the killed workers had in flight"
    );
    delete_namespace_keys(&redis_client(&redis_url()).await, &ns).await;
}

#[tokio::test]
async fn two_workers_activate_and_deliver_5000_delayed_messages_exactly_once() {
    const N: usize = 5_000;
    let sink = Sink::start().await;
    let stack = Stack::start(&redis_url()).await;
    let ns = random_name("e2e-two-workers");
    stack
        .create_namespace(namespace(
            &ns,
            4,
            5,
            json!([{"identifier": "env", "type": "http",
                    "config": {"url": sink.url("/env"), "body": "envelope", "timeoutMs": 1000}}]),
        ))
        .await;
    let _a = stack.spawn_worker(&[]).await;
    let _b = stack.spawn_worker(&[]).await;
    let ids = stack
        .write_batch(
            (0..N)
                .map(|i| json!({"namespace": ns, "payload": {"i": i}, "lifecycle": {"delay": 2}}))
                .collect(),
        )
        .await;
    assert_eq!(ids.len(), N);
    assert!(
        sink.wait_until(Duration::from_secs(60), |r| r.len() >= N)
            .await,
        "delivered {} of {N}",
        sink.received().len()
    );
    // Settle: anything activated twice would show up now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let delivered = sink.delivered_on("/env");
    assert_eq!(delivered.len(), N, "duplicates among delayed deliveries");
    let distinct: HashSet<String> = delivered.iter().map(|r| r.message_id()).collect();
    assert_eq!(distinct.len(), N);
    for r in &delivered {
        let due = r.json()["dueAtMs"].as_u64().unwrap();
        assert!(r.at_ms >= due, "delivered {} ms early", due - r.at_ms);
    }
    delete_namespace_keys(&redis_client(&redis_url()).await, &ns).await;
}

async fn write_until_accepted(stack: &Stack, body: Value) -> String {
    for _ in 0..100 {
        let res = stack
            .client
            .post(stack.url("/api/v1/wal/write"))
            .header("x-api-key", WRITE_KEY)
            .json(&body)
            .send()
            .await;
        if let Ok(res) = res {
            if res.status() == 202 {
                let v: Value = res.json().await.unwrap();
                return v["messageId"].as_str().unwrap().to_string();
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the gateway never accepted the write");
}

#[tokio::test]
async fn the_worker_recovers_by_itself_when_redis_loses_the_group_or_restarts() {
    let mut redis = PrivateRedis::start().await;
    let sink = Sink::start().await;
    let stack = Stack::start(&redis.url()).await;
    let ns = random_name("e2e-nogroup");
    stack
        .create_namespace(namespace(
            &ns,
            2,
            5,
            json!([http_target("sink", &sink.url("/s"))]),
        ))
        .await;
    let _worker = stack.spawn_worker(&[]).await;
    let first = write_until_accepted(&stack, json!({"namespace": ns, "payload": {"n": 1}})).await;
    assert!(
        sink.wait_until(Duration::from_secs(10), |r| distinct_delivered(r, "/s")
            .contains(&first))
            .await
    );

    // FLUSHALL: streams and groups are gone (NOGROUP on the next read).
    let client = redis_client(&redis.url()).await;
    let _: () = client.flushall(false).await.unwrap();
    let second = write_until_accepted(&stack, json!({"namespace": ns, "payload": {"n": 2}})).await;
    assert!(
        sink.wait_until(Duration::from_secs(15), |r| distinct_delivered(r, "/s")
            .contains(&second))
            .await,
        "not delivered after FLUSHALL"
    );

    // Restart without persistence: everything is gone again, connections drop.
    redis.restart().await;
    let third = write_until_accepted(&stack, json!({"namespace": ns, "payload": {"n": 3}})).await;
    assert!(
        sink.wait_until(Duration::from_secs(20), |r| distinct_delivered(r, "/s")
            .contains(&third))
            .await,
        "not delivered after a Redis restart"
    );
    redis.stop().await;
}

#[tokio::test]
async fn malformed_and_poison_entries_go_to_the_dlq_and_the_partition_keeps_flowing() {
    let sink = Sink::start().await;
    let stack = Stack::start(&redis_url()).await;
    let ns = random_name("e2e-poison");
    stack
        .create_namespace(namespace(
            &ns,
            1,
            5,
            json!([http_target("sink", &sink.url("/s"))]),
        ))
        .await;
    let redis = redis_client(&redis_url()).await;
    let keys = NamespaceKeys::new(&ns);
    let stream = keys.stream(0);

    // A poison entry: handed out 4 times by a worker that never acked it.
    let poison = stack
        .write(json!({"namespace": ns, "payload": {"poison": true}}))
        .await;
    let _: RedisValue = redis
        .xgroup_create(&stream, CONSUMER_GROUP, "0", true)
        .await
        .unwrap();
    let read: RedisValue = redis
        .xreadgroup(
            CONSUMER_GROUP,
            "crashed-worker",
            Some(10),
            None,
            false,
            &stream,
            ">",
        )
        .await
        .unwrap();
    assert!(!matches!(read, RedisValue::Null));
    let entries: Vec<(String, HashMap<String, String>)> =
        redis.xrange(&stream, "-", "+", None).await.unwrap();
    let poison_entry = entries[0].0.clone();
    for _ in 0..3 {
        let _: RedisValue = redis
            .xclaim(
                &stream,
                CONSUMER_GROUP,
                "crashed-worker",
                0,
                &poison_entry,
                None,
                None,
                None,
                false,
                false,
            )
            .await
            .unwrap();
    }
    // A malformed entry, then good messages behind both.
    let _: String = redis
        .xadd(
            &stream,
            false,
            None,
            "*",
            vec![("id", "junk"), ("env", "{not an envelope")],
        )
        .await
        .unwrap();
    let good = stack
        .write_batch(
            (0..20)
                .map(|i| json!({"namespace": ns, "payload": {"i": i}}))
                .collect(),
        )
        .await;

    let _worker = stack.spawn_worker(&[("WAL_POISON_THRESHOLD", "3")]).await;
    assert!(
        sink.wait_until(Duration::from_secs(15), |r| distinct_delivered(r, "/s")
            .len()
            >= good.len())
            .await,
        "the partition stalled behind a bad entry"
    );
    let mut reasons = Vec::new();
    for _ in 0..100 {
        reasons = dlq_reasons(&redis, &ns).await;
        if reasons.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        reasons.iter().any(|(_, r)| r == "malformed"),
        "no malformed record: {reasons:?}"
    );
    assert!(
        reasons.iter().any(|(id, r)| id == &poison && r == "poison"),
        "no poison record: {reasons:?}"
    );
    assert!(
        !distinct(&sink, "/s").contains(&poison),
        "the poison entry was delivered"
    );
    delete_namespace_keys(&redis, &ns).await;
}

#[tokio::test]
async fn sigterm_exits_cleanly_and_hands_unfinished_work_to_the_next_worker() {
    const N: usize = 200;
    let sink = Sink::start().await;
    sink.set_behaviour(|_, _| Reply::ok().after(Duration::from_millis(50)));
    let stack = Stack::start(&redis_url()).await;
    let ns = random_name("e2e-sigterm");
    stack
        .create_namespace(namespace(
            &ns,
            2,
            5,
            json!([http_target("sink", &sink.url("/s"))]),
        ))
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
    let mut first = stack
        .spawn_worker(&[
            ("WAL_TARGET_CONCURRENCY", "4"),
            ("WAL_SHUTDOWN_GRACE_SECS", "1"),
        ])
        .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let status = first
        .terminate(Duration::from_secs(10))
        .await
        .expect("the worker exits after SIGTERM");
    assert!(status.success(), "exit status {status:?}");
    let before = distinct(&sink, "/s").len();
    assert!(before < N, "the test needs work left over at shutdown");

    let _second = stack.spawn_worker(&[]).await;
    assert!(
        sink.wait_until(Duration::from_secs(30), |r| distinct_delivered(r, "/s")
            .len()
            == N)
            .await,
        "delivered {} of {N}",
        distinct(&sink, "/s").len()
    );
    assert_eq!(distinct(&sink, "/s"), ids);
    delete_namespace_keys(&redis_client(&redis_url()).await, &ns).await;
}

#[tokio::test]
async fn entries_abandoned_by_a_killed_worker_are_taken_over() {
    const N: usize = 100;
    let sink = Sink::start().await;
    sink.set_behaviour(|_, _| Reply::ok().after(Duration::from_millis(100)));
    let stack = Stack::start(&redis_url()).await;
    let ns = random_name("e2e-reclaim");
    stack
        .create_namespace(namespace(
            &ns,
            2,
            5,
            json!([http_target("sink", &sink.url("/s"))]),
        ))
        .await;
    stack
        .write_batch(
            (0..N)
                .map(|i| json!({"namespace": ns, "payload": {"i": i}}))
                .collect(),
        )
        .await;
    let mut first = stack.spawn_worker(&[("WAL_TARGET_CONCURRENCY", "4")]).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    first.kill9().await;
    let _second = stack.spawn_worker(&[]).await;
    assert!(
        sink.wait_until(Duration::from_secs(30), |r| distinct_delivered(r, "/s")
            .len()
            == N)
            .await,
        "delivered {} of {N}",
        distinct(&sink, "/s").len()
    );
    delete_namespace_keys(&redis_client(&redis_url()).await, &ns).await;
}
