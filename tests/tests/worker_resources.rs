//! What a long-running worker holds must not grow with what happens to its
//! namespaces: Redis connections across namespace changes and failed
//! starts.

use std::time::Duration;

use fred::prelude::*;
use serde_json::{json, Value};
use wal_tests::e2e::{http_target, namespace, Stack};
use wal_tests::gateway::{redis_client, ADMIN_KEY};
use wal_tests::random_name;
use wal_tests::redis_server::PrivateRedis;

/// Connections the Redis server has, not counting the one asking.
async fn clients(redis: &Client) -> usize {
    let list: String = redis
        .custom(fred::cmd!("CLIENT"), vec!["LIST"])
        .await
        .unwrap();
    list.lines().filter(|l| !l.trim().is_empty()).count() - 1
}

async fn put(stack: &Stack, name: &str, body: &Value) {
    let res = stack
        .client
        .put(stack.url(&format!("/api/v1/namespaces/{name}")))
        .header("x-api-key", ADMIN_KEY)
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200, "{}", res.text().await.unwrap());
}

#[tokio::test]
async fn namespace_changes_and_failed_starts_leak_no_redis_connection() {
    let server = PrivateRedis::start().await;
    let stack = Stack::start(&server.url()).await;
    let _worker = stack.spawn_worker(&[]).await;
    let redis = redis_client(&server.url()).await;
    let ns = random_name("leak");
    stack
        .create_namespace(namespace(
            &ns,
            2,
            3,
            json!([http_target("sink", "http://127.0.0.1:9/")]),
        ))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = clients(&redis).await;

    // Every partition-count change restarts the namespace's runner.
    for partitions in [3, 4, 5, 6, 7, 8, 2, 3, 4, 5] {
        put(
            &stack,
            &ns,
            &namespace(
                &ns,
                partitions,
                3,
                json!([http_target("sink", "http://127.0.0.1:9/")]),
            ),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    // A Kafka namespace whose brokers cannot be reached fails to start on
    // every supervisor pass.
    let broken = random_name("leak-kafka");
    let mut body = namespace(
        &broken,
        1,
        3,
        json!([http_target("sink", "http://127.0.0.1:9/")]),
    );
    body["backend"] = json!("kafka");
    body["backendConfig"] = json!({"brokers": [format!("127.0.0.1:{}", wal_tests::free_port())]});
    stack.create_namespace(body).await;
    tokio::time::sleep(Duration::from_secs(15)).await;

    let after = clients(&redis).await;
    assert!(
        after <= before + 1,
        "Redis connections grew from {before} to {after} over 10 restarts and failed starts"
    );
}
