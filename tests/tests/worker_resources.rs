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

/// Consumer names in the worker group of `stream`.
async fn consumers(redis: &Client, stream: &str) -> Vec<String> {
    let reply: fred::types::Value = redis
        .custom(
            fred::cmd!("XINFO"),
            vec!["CONSUMERS", stream, wal_core::keys::CONSUMER_GROUP],
        )
        .await
        .unwrap();
    reply
        .into_array()
        .into_iter()
        .filter_map(|c| {
            let fields = c.into_array();
            fields
                .chunks(2)
                .find(|kv| kv[0].as_str().as_deref() == Some("name"))
                .and_then(|kv| kv[1].as_string())
        })
        .collect()
}

#[tokio::test]
async fn consumers_of_workers_gone_for_good_are_removed_once_they_own_nothing() {
    let sink = wal_tests::e2e::Sink::start().await;
    let stack = Stack::start(&wal_tests::redis_url()).await;
    let ns = random_name("ghosts");
    stack
        .create_namespace(namespace(
            &ns,
            1,
            3,
            json!([http_target("a", &sink.url("/a"))]),
        ))
        .await;
    let redis = redis_client(&wal_tests::redis_url()).await;
    let stream = wal_core::keys::NamespaceKeys::new(&ns).stream(0);
    // Workers of past rollouts: consumers in the group that read once and
    // never came back (one still owns an entry).
    let _: fred::types::Value = redis
        .custom(
            fred::cmd!("XGROUP"),
            vec![
                "CREATE",
                &stream,
                wal_core::keys::CONSUMER_GROUP,
                "0",
                "MKSTREAM",
            ],
        )
        .await
        .unwrap();
    // (Redis creates a consumer when it first gets an entry: each ghost
    // handled one, long ago.)
    for ghost in ["ghost-1", "ghost-2", "ghost-3"] {
        let _: String = redis
            .xadd(
                &stream,
                false,
                None,
                "*",
                vec![("id", "old"), ("env", "{}")],
            )
            .await
            .unwrap();
        let read: fred::types::Value = redis
            .custom(
                fred::cmd!("XREADGROUP"),
                vec![
                    "GROUP",
                    wal_core::keys::CONSUMER_GROUP,
                    ghost,
                    "COUNT",
                    "1",
                    "STREAMS",
                    &stream,
                    ">",
                ],
            )
            .await
            .unwrap();
        // [[stream, [[id, fields]]]]
        let entry_id = read.into_array()[0].clone().into_array()[1]
            .clone()
            .into_array()[0]
            .clone()
            .into_array()[0]
            .as_string()
            .unwrap();
        let _: i64 = redis
            .xack(&stream, wal_core::keys::CONSUMER_GROUP, entry_id)
            .await
            .unwrap();
    }
    let id = stack
        .write(json!({"namespace": ns, "payload": {"n": 1}}))
        .await;
    let _: fred::types::Value = redis
        .custom(
            fred::cmd!("XREADGROUP"),
            vec![
                "GROUP",
                wal_core::keys::CONSUMER_GROUP,
                "ghost-holding",
                "COUNT",
                "1",
                "STREAMS",
                &stream,
                ">",
            ],
        )
        .await
        .unwrap();
    assert_eq!(consumers(&redis, &stream).await.len(), 4);
    let _worker = stack
        .spawn_worker(&[
            ("WAL_CONSUMER_IDLE_REMOVE_MS", "1500"),
            ("WAL_VISIBILITY_TIMEOUT_MS", "2000"),
        ])
        .await;
    // The held entry is reclaimed and delivered, then its ghost goes too.
    assert!(
        sink.wait_until(Duration::from_secs(15), |r| r
            .iter()
            .any(|x| x.message_id() == id))
            .await
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let names = consumers(&redis, &stream).await;
        if names.iter().all(|n| !n.starts_with("ghost")) {
            assert_eq!(names.len(), 1, "only the running worker is left: {names:?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "ghost consumers stay: {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    wal_tests::gateway::delete_namespace_keys(&redis, &ns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_that_cannot_start_hold_up_neither_the_others_nor_liveness() {
    let sink = wal_tests::e2e::Sink::start().await;
    let stack = Stack::start(&wal_tests::redis_url()).await;
    let worker = stack.spawn_worker(&[]).await;
    // Seven Kafka namespaces whose brokers cannot be reached: every start
    // attempt waits for the broker in vain.
    // (Stored directly: the gateway would try to create each topic first.)
    let dead_broker = format!("127.0.0.1:{}", wal_tests::free_port());
    let store = wal_namespace::NamespaceStore::connect(&stack.db_url)
        .await
        .unwrap();
    let mut broken = Vec::new();
    for _ in 0..7 {
        let name = random_name("nobroker");
        let mut body = namespace(&name, 1, 3, json!([http_target("a", &sink.url("/broken"))]));
        body["backend"] = json!("kafka");
        body["backendConfig"] = json!({"brokers": [dead_broker]});
        let spec = wal_namespace::parse_spec(body.to_string().as_bytes()).unwrap();
        store.create(spec, "test").await.unwrap();
        broken.push(name);
    }
    // What already sits in one of their Redis streams (a due retry, a
    // requeue) is still delivered: its Redis side runs without the broker.
    let redis = redis_client(&wal_tests::redis_url()).await;
    let envelope = json!({
        "v": 1, "id": wal_core::MessageId::generate().to_string(), "namespace": broken[0],
        "payload": {"from": "retry"}, "targets": [{"identifier": "a"}],
        "lifecycle": {"retryPolicy": {}, "enableDlq": true}, "partition": 0,
        "requestId": "r", "createdAtMs": 1, "dueAtMs": 1, "attempt": 1
    });
    let _: String = redis
        .xadd(
            wal_core::keys::NamespaceKeys::new(&broken[0]).stream(0),
            false,
            None,
            "*",
            vec![
                ("id", envelope["id"].as_str().unwrap().to_string()),
                ("env", envelope.to_string()),
            ],
        )
        .await
        .unwrap();
    // A namespace created now starts at once, and liveness stays green the
    // whole time (a supervisor pass is not held up by the failing starts).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let healthy = random_name("healthy");
    stack
        .create_namespace(namespace(
            &healthy,
            1,
            3,
            json!([http_target("a", &sink.url("/healthy"))]),
        ))
        .await;
    let id = stack
        .write(json!({"namespace": healthy, "payload": {"n": 1}}))
        .await;
    assert!(
        sink.wait_until(Duration::from_secs(5), |r| r
            .iter()
            .any(|x| x.message_id() == id))
            .await,
        "a new namespace waited for the failing ones"
    );
    assert!(
        sink.wait_until(Duration::from_secs(15), |r| r
            .iter()
            .any(|x| x.path == "/broken"))
            .await,
        "the Redis side of a namespace whose broker is down stopped too"
    );
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(40) {
        let live = reqwest::get(format!("http://127.0.0.1:{}/health/liveness", worker.port))
            .await
            .unwrap();
        assert_eq!(
            live.status().as_u16(),
            200,
            "liveness failed after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    for name in broken.iter().chain([&healthy]) {
        wal_tests::gateway::delete_namespace_keys(&redis, name).await;
    }
}
