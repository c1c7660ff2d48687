//! An entry handed out again after an earlier handling settled it (a Kafka
//! rebalance, an SQS visibility expiry, a Redis entry reclaimed from a
//! consumer that stalled): what the earlier handling recorded is final.
//!
//! The copy is made the way the backends make one: the entry appended again
//! and read by a consumer that then goes silent, so the worker reclaims it
//! with a delivery count of 2.

use std::collections::HashMap;
use std::time::Duration;

use fred::prelude::*;
use fred::types::Value;
use serde_json::json;
use wal_core::delivery::{status_field, TargetState, TargetStatus};
use wal_core::keys::{NamespaceKeys, CONSUMER_GROUP};
use wal_tests::e2e::{Reply, Sink, Stack};
use wal_tests::gateway::{delete_namespace_keys, redis_client};
use wal_tests::{random_name, redis_url};

/// The status of `target` of message `id`, waiting (up to 10 s) until a
/// worker recorded one: the sink sees a request before its outcome is settled.
async fn status_of(redis: &Client, ns: &str, id: &str, target: &str) -> TargetStatus {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let json: Option<String> = redis
            .hget(NamespaceKeys::new(ns).status(id), status_field(target))
            .await
            .unwrap();
        if let Some(json) = json {
            return serde_json::from_str(&json).unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no status recorded for {id}/{target}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_entry_never_overwrites_what_an_earlier_handling_settled() {
    let sink = Sink::start().await;
    sink.set_behaviour(|r, _| {
        if r.path == "/fail" {
            Reply::status(500)
        } else {
            Reply::ok()
        }
    });
    let stack = Stack::start(&redis_url()).await;
    let ns = random_name("redeliver");
    stack
        .create_namespace(json!({
            "name": ns,
            "shardConfig": {"partitionCount": 1},
            "retryPolicy": {"maxAttempts": 5, "initialDelayMs": 60000, "maxDelayMs": 60000, "jitterMs": 0},
            "targetConfigs": [
                {"identifier": "ok", "type": "http", "config": {"url": sink.url("/ok"), "timeoutMs": 1000}},
                {"identifier": "flaky", "type": "http", "config": {"url": sink.url("/fail"), "timeoutMs": 1000}}
            ]
        }))
        .await;
    // A copy handed out a second time counts as poison for this worker.
    let _worker = stack.spawn_worker(&[("WAL_POISON_THRESHOLD", "1")]).await;
    let delivered = stack
        .write(json!({"namespace": ns, "payload": {"n": 1}, "target": {"identifier": "ok"}}))
        .await;
    let retrying = stack
        .write(json!({"namespace": ns, "payload": {"n": 2}, "target": {"identifier": "flaky"}}))
        .await;
    let short_lived = stack
        .write(
            json!({"namespace": ns, "payload": {"n": 3}, "target": {"identifier": "ok"},
                      "lifecycle": {"ttl": 2}}),
        )
        .await;
    assert!(
        sink.wait_until(Duration::from_secs(15), |r| r.len() >= 3)
            .await,
        "first deliveries"
    );
    let redis = redis_client(&redis_url()).await;
    let keys = NamespaceKeys::new(&ns);
    assert_eq!(
        status_of(&redis, &ns, &retrying, "flaky").await.state,
        TargetState::Retrying
    );
    for id in [&delivered, &short_lived] {
        assert_eq!(
            status_of(&redis, &ns, id, "ok").await.state,
            TargetState::Delivered
        );
    }
    // Let the short-lived message expire, then hand every entry out again.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let entries: Vec<(String, HashMap<String, String>)> =
        redis.xrange(keys.stream(0), "-", "+", None).await.unwrap();
    assert_eq!(entries.len(), 3, "{entries:?}");
    // Append the copies and hand them to a consumer that stalls, in one
    // atomic step (the worker's blocked read cannot take them first).
    let script = "for i = 1, #ARGV, 2 do redis.call('XADD', KEYS[1], '*', 'id', ARGV[i], 'env', ARGV[i + 1]) end \
                  return redis.call('XREADGROUP', 'GROUP', KEYS[2], 'stalled-consumer', 'COUNT', 100, 'STREAMS', KEYS[1], '>')";
    let args: Vec<String> = entries
        .iter()
        .flat_map(|(_, f)| [f["id"].clone(), f["env"].clone()])
        .collect();
    let _: Value = redis
        .eval(
            script,
            vec![keys.stream(0), CONSUMER_GROUP.to_string()],
            args,
        )
        .await
        .unwrap();
    // The worker reclaims the copies after the visibility timeout (3 s here).
    let pending = || async {
        let summary: Value = redis
            .custom(
                fred::cmd!("XPENDING"),
                vec![keys.stream(0), CONSUMER_GROUP.to_string()],
            )
            .await
            .unwrap_or(Value::Null);
        summary
            .into_array()
            .first()
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while pending().await > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        pending().await,
        0,
        "the copies were handled and acknowledged"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;

    assert_eq!(
        status_of(&redis, &ns, &delivered, "ok").await.state,
        TargetState::Delivered
    );
    assert_eq!(
        status_of(&redis, &ns, &short_lived, "ok").await.state,
        TargetState::Delivered,
        "expiry judged a copy of a delivered message"
    );
    assert_eq!(
        status_of(&redis, &ns, &retrying, "flaky").await.state,
        TargetState::Retrying
    );
    let dlq: u64 = redis.xlen(keys.dlq()).await.unwrap();
    assert_eq!(dlq, 0, "nothing settled may be dead-lettered by a copy");
    let retry_members: u64 = redis.zcard(keys.retry()).await.unwrap();
    assert_eq!(retry_members, 1, "one retry chain per target");
    assert_eq!(sink.received().len(), 3, "no target was called again");
    delete_namespace_keys(&redis, &ns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconfigured_namespace_never_runs_two_handlers_of_one_entry() {
    // A slow target that fails: each attempt takes 3 s and answers 500.
    let sink = Sink::start().await;
    sink.set_behaviour(|_, _| Reply::status(500).after(Duration::from_secs(3)));
    let stack = Stack::start(&redis_url()).await;
    let ns = random_name("handback");
    let spec = |partitions: u32| {
        json!({
            "name": ns,
            "shardConfig": {"partitionCount": partitions},
            "retryPolicy": {"maxAttempts": 5, "initialDelayMs": 60000, "maxDelayMs": 60000, "jitterMs": 0},
            "targetConfigs": [
                {"identifier": "slow", "type": "http", "config": {"url": sink.url("/slow"), "timeoutMs": 5000}}
            ]
        })
    };
    stack.create_namespace(spec(2)).await;
    // The drain deadline of a stopping runner is shorter than the delivery.
    let _worker = stack
        .spawn_worker(&[
            ("WAL_SHUTDOWN_GRACE_SECS", "1"),
            ("WAL_VISIBILITY_TIMEOUT_MS", "10000"),
        ])
        .await;
    let id = stack
        .write(json!({"namespace": ns, "payload": {"n": 1}}))
        .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    // A change the runner cannot take in place: it is stopped and rebuilt
    // while the delivery is under way.
    let res = stack
        .client
        .put(stack.url(&format!("/api/v1/namespaces/{ns}")))
        .header("x-api-key", wal_tests::gateway::ADMIN_KEY)
        .json(&spec(3))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    tokio::time::sleep(Duration::from_secs(9)).await;

    let redis = redis_client(&redis_url()).await;
    let keys = NamespaceKeys::new(&ns);
    let members: Vec<String> = redis
        .zrange(keys.retry(), 0, -1, None, false, None, false)
        .await
        .unwrap();
    assert_eq!(
        members.len(),
        1,
        "one retry chain for message {id}, got {} members",
        members.len()
    );
    let status = status_of(&redis, &ns, &id, "slow").await;
    assert_eq!(status.state, TargetState::Retrying);
    assert_eq!(status.attempt, 1, "one attempt recorded, not two");
    delete_namespace_keys(&redis, &ns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_of_another_namespace_is_dead_lettered_as_foreign_never_delivered() {
    let sink = Sink::start().await;
    let stack = Stack::start(&redis_url()).await;
    let mine = random_name("mine");
    stack
        .create_namespace(json!({
            "name": mine, "shardConfig": {"partitionCount": 1},
            "targetConfigs": [{"identifier": "a", "type": "http", "config": {"url": sink.url("/a"), "timeoutMs": 1000}}]
        }))
        .await;
    let _worker = stack.spawn_worker(&[]).await;
    // An entry in this namespace's log whose envelope belongs to another one
    // (a shared topic, a copy by hand): its targets have the same names.
    let redis = redis_client(&redis_url()).await;
    let keys = NamespaceKeys::new(&mine);
    let foreign_id = wal_core::MessageId::generate().to_string();
    let envelope = json!({
        "v": 1, "id": foreign_id, "namespace": "someone-else",
        "payload": {"secret": 1}, "targets": [{"identifier": "a"}],
        "lifecycle": {"retryPolicy": {}, "enableDlq": true}, "partition": 0,
        "requestId": "r", "createdAtMs": 1, "dueAtMs": 1, "attempt": 0
    });
    let _: String = redis
        .xadd(
            keys.stream(0),
            false,
            None,
            "*",
            vec![("id", foreign_id.clone()), ("env", envelope.to_string())],
        )
        .await
        .unwrap();
    let own = stack
        .write(json!({"namespace": mine, "payload": {"n": 1}}))
        .await;
    assert!(
        sink.wait_until(Duration::from_secs(10), |r| r
            .iter()
            .any(|x| x.message_id() == own))
            .await
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let records: Vec<(String, std::collections::HashMap<String, String>)> = loop {
        let r: Vec<(String, std::collections::HashMap<String, String>)> =
            redis.xrange(keys.dlq(), "-", "+", None).await.unwrap();
        if !r.is_empty() || std::time::Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].1["reason"], "foreign");
    assert_eq!(records[0].1["id"], foreign_id);
    assert!(
        sink.received().iter().all(|r| r.message_id() != foreign_id),
        "another namespace's message reached this namespace's target"
    );
    delete_namespace_keys(&redis, &mine).await;
}
