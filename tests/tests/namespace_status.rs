//! `GET /api/v1/wal/namespace/{ns}/status` against the shared Redis: writes
//! go through the gateway, the "worker" side (consumer group, pending
//! entries, delayed / retry sets, DLQ) is played by raw Redis commands.

use std::time::Duration;

use fred::prelude::*;
use fred::types::Value as RedisValue;
use reqwest::Method;
use serde_json::{json, Value};
use wal_core::delivery::DlqReason;
use wal_core::keys::{NamespaceKeys, CONSUMER_GROUP};
use wal_tests::gateway::{
    delete_namespace_keys, namespace_body, redis_client, TestGateway, ADMIN_KEY, WRITE_KEY,
};
use wal_tests::seed::{dlq_record, failed_envelope, now_ms, seed_dlq};
use wal_tests::{random_name, redis_url};

async fn status(gw: &TestGateway, ns: &str, key: &str) -> (u16, Value) {
    gw.call(
        Method::GET,
        &format!("/api/v1/wal/namespace/{ns}/status"),
        Some(key),
        None,
    )
    .await
}

#[tokio::test]
async fn status_reports_live_stream_group_schedule_and_dlq_data() {
    let gw = TestGateway::spawn().await;
    let redis = redis_client(&redis_url()).await;
    let ns = random_name("st");
    gw.create_namespace(&namespace_body(&ns, 2)).await;
    let keys = NamespaceKeys::new(&ns);

    for i in 0..8 {
        let resp = gw
            .write(&json!({"namespace": ns, "payload": {"n": i}, "partitionKey": format!("k{i}")}))
            .await;
        assert_eq!(resp.status().as_u16(), 202);
    }
    let lengths: Vec<u64> = {
        let mut v = Vec::new();
        for p in 0..2 {
            v.push(redis.xlen(keys.stream(p)).await.unwrap());
        }
        v
    };
    assert_eq!(lengths.iter().sum::<u64>(), 8);
    // The busier partition gets a group and two delivered-but-unacked entries.
    let busy: u32 = if lengths[0] >= lengths[1] { 0 } else { 1 };
    let idle = 1 - busy;
    assert!(lengths[busy as usize] >= 2);
    let _: RedisValue = redis
        .custom(
            fred::cmd!("XGROUP"),
            vec!["CREATE", &keys.stream(busy), CONSUMER_GROUP, "0"],
        )
        .await
        .unwrap();
    let _: RedisValue = redis
        .custom(
            fred::cmd!("XREADGROUP"),
            vec![
                "GROUP",
                CONSUMER_GROUP,
                "test-worker",
                "COUNT",
                "2",
                "STREAMS",
                &keys.stream(busy),
                ">",
            ],
        )
        .await
        .unwrap();

    let now = now_ms();
    let _: () = redis
        .zadd(
            keys.delayed(),
            None,
            None,
            false,
            false,
            vec![
                ((now + 60_000) as f64, "0:{\"a\":1}".to_string()),
                ((now + 120_000) as f64, "1:{\"a\":2}".to_string()),
            ],
        )
        .await
        .unwrap();
    let _: () = redis
        .zadd(
            keys.retry(),
            None,
            None,
            false,
            false,
            ((now - 1_000) as f64, "0:{\"r\":1}".to_string()),
        )
        .await
        .unwrap();
    let env = failed_envelope(&ns, 0, &["sink", "cache"], 2);
    seed_dlq(
        &redis,
        &ns,
        &dlq_record(&env, DlqReason::MaxAttempts, "sink"),
    )
    .await;
    seed_dlq(
        &redis,
        &ns,
        &dlq_record(&env, DlqReason::Permanent, "cache"),
    )
    .await;
    let other = failed_envelope(&ns, 1, &["sink"], 1);
    seed_dlq(&redis, &ns, &dlq_record(&other, DlqReason::Expired, "sink")).await;
    tokio::time::sleep(Duration::from_millis(20)).await;

    let (s, b) = status(&gw, &ns, WRITE_KEY).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["namespace"], json!(ns));

    // Config summary.
    let config = &b["config"];
    assert_eq!(config["backend"], json!("redis_streams"));
    assert_eq!(config["partitions"], json!(2));
    assert_eq!(config["shardStrategy"], json!("hash"));
    assert_eq!(
        config["targets"],
        json!([{"identifier": "sink", "type": "http", "enabled": true},
               {"identifier": "cache", "type": "cache", "enabled": true}])
    );
    assert_eq!(config["dlq"]["enabled"], json!(true));
    assert!(
        config["retryPolicy"]["maxAttempts"].as_u64().is_some(),
        "{config}"
    );

    // Partitions.
    let parts = b["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 2);
    let busy_view = &parts[busy as usize];
    assert_eq!(busy_view["partition"], json!(busy));
    assert_eq!(busy_view["stream"], json!(keys.stream(busy)));
    assert_eq!(busy_view["length"], json!(lengths[busy as usize]));
    let group = &busy_view["consumerGroup"];
    assert_eq!(group["name"], json!(CONSUMER_GROUP));
    assert_eq!(group["consumers"], json!(1));
    assert_eq!(group["pending"], json!(2));
    assert_eq!(group["lag"], json!(lengths[busy as usize] - 2), "{group}");
    assert!(group["oldestPendingId"].is_string(), "{group}");
    assert!(group["oldestPendingAgeMs"].as_u64().unwrap() > 0, "{group}");
    let idle_view = &parts[idle as usize];
    assert_eq!(idle_view["length"], json!(lengths[idle as usize]));
    assert!(idle_view["consumerGroup"].is_null(), "{idle_view}");
    let warnings = b["warnings"].as_array().unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap().contains(&format!("partition {idle}"))),
        "{warnings:?}"
    );

    // Totals.
    let totals = &b["totals"];
    assert_eq!(totals["length"], json!(8));
    assert_eq!(totals["pending"], json!(2));
    assert_eq!(totals["lag"], json!(8 - 2), "{totals}");
    assert_eq!(totals["partitionsWithoutGroup"], json!(1));
    assert!(totals["oldestPendingAgeMs"].as_u64().unwrap() > 0);

    // Schedules and DLQ.
    assert_eq!(b["delayed"]["size"], json!(2));
    assert_eq!(b["delayed"]["earliestDueAtMs"], json!(now + 60_000));
    assert_eq!(b["delayed"]["overdueMs"], json!(0));
    assert_eq!(b["retry"]["size"], json!(1));
    assert_eq!(b["retry"]["earliestDueAtMs"], json!(now - 1_000));
    assert!(b["retry"]["overdueMs"].as_u64().unwrap() >= 1_000);
    assert_eq!(b["dlq"], json!({"size": 3, "messages": 2}));

    // The admin key reads it too.
    assert_eq!(status(&gw, &ns, ADMIN_KEY).await.0, 200);

    delete_namespace_keys(&redis, &ns).await;
}

#[tokio::test]
async fn a_namespace_with_no_data_yet_reports_empty_queues() {
    let gw = TestGateway::spawn().await;
    let ns = random_name("st");
    gw.create_namespace(&namespace_body(&ns, 3)).await;

    let (s, b) = status(&gw, &ns, WRITE_KEY).await;
    assert_eq!(s, 200, "{b}");
    let parts = b["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 3);
    for p in parts {
        assert_eq!(p["length"], json!(0));
        assert!(p["consumerGroup"].is_null());
    }
    assert_eq!(b["totals"]["length"], json!(0));
    assert_eq!(b["totals"]["partitionsWithoutGroup"], json!(3));
    assert_eq!(b["delayed"], json!({"size": 0}));
    assert_eq!(b["retry"], json!({"size": 0}));
    assert_eq!(b["dlq"], json!({"size": 0, "messages": 0}));
}

#[tokio::test]
async fn unknown_namespaces_and_foreign_keys_are_refused() {
    let gw = TestGateway::spawn().await;
    let ns = random_name("st");
    let mut body = namespace_body(&ns, 1);
    body["accessControl"] = json!({"allowedApiKeys": ["status-reader-key-000001"]});
    gw.create_namespace(&body).await;

    let (s, b) = status(&gw, &format!("missing-{ns}"), WRITE_KEY).await;
    assert_eq!(
        (s, b["error"]["code"].clone()),
        (404, json!("NAMESPACE_NOT_FOUND"))
    );
    let (s, b) = status(&gw, "Not_Valid!", WRITE_KEY).await;
    assert_eq!(
        (s, b["error"]["code"].clone()),
        (400, json!("VALIDATION_FAILED"))
    );
    // The global write key is not on this namespace's allow-list.
    let (s, b) = status(&gw, &ns, WRITE_KEY).await;
    assert_eq!((s, b["error"]["code"].clone()), (403, json!("FORBIDDEN")));
    assert_eq!(status(&gw, &ns, "status-reader-key-000001").await.0, 200);
    assert_eq!(status(&gw, &ns, "no-such-key").await.0, 401);
}

#[tokio::test]
async fn an_unreachable_redis_answers_503_without_a_durable_field() {
    let (db, _) = wal_tests::gateway::sqlite_store();
    let dead = format!("redis://127.0.0.1:{}", wal_tests::free_port());
    let gw = TestGateway::spawn_with(&dead, &db, |_| {}).await;
    let ns = random_name("st");
    gw.create_namespace(&namespace_body(&ns, 1)).await;

    for (method, path) in [
        (Method::GET, format!("/api/v1/wal/namespace/{ns}/status")),
        (Method::GET, format!("/api/v1/wal/namespace/{ns}/dlq")),
        (
            Method::GET,
            format!("/api/v1/wal/message/{}", wal_core::MessageId::generate()),
        ),
    ] {
        let (s, b) = gw.call(method, &path, Some(ADMIN_KEY), None).await;
        assert_eq!(s, 503, "{path}: {b}");
        assert_eq!(b["error"]["code"], json!("PRODUCER_UNAVAILABLE"), "{b}");
        assert!(b.get("durable").is_none(), "{b}");
    }
}
