//! Settling an entry is all or nothing: a Redis out of memory never leaves
//! an entry acknowledged without its status.

use std::time::Duration;

use fred::prelude::*;
use serde_json::json;
use wal_core::delivery::{status_field, TargetState, TargetStatus};
use wal_core::keys::{NamespaceKeys, CONSUMER_GROUP};
use wal_tests::e2e::{http_target, namespace, Reply, Sink, Stack};
use wal_tests::gateway::redis_client;
use wal_tests::random_name;
use wal_tests::redis_server::PrivateRedis;

async fn pending(redis: &Client, stream: &str) -> u64 {
    let summary: fred::types::Value = redis
        .custom(
            fred::cmd!("XPENDING"),
            vec![stream.to_string(), CONSUMER_GROUP.to_string()],
        )
        .await
        .unwrap_or(fred::types::Value::Null);
    summary
        .into_array()
        .first()
        .and_then(fred::types::Value::as_u64)
        .unwrap_or(0)
}

async fn set_maxmemory(redis: &Client, bytes: u64) {
    let _: String = redis
        .custom(
            fred::cmd!("CONFIG"),
            vec![
                "SET".to_string(),
                "maxmemory".to_string(),
                bytes.to_string(),
            ],
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_is_never_acknowledged_without_its_status_when_redis_is_out_of_memory() {
    let server =
        PrivateRedis::start_with(vec!["--maxmemory-policy".into(), "noeviction".into()]).await;
    let redis = redis_client(&server.url()).await;
    let sink = Sink::start().await;
    // Redis runs out of memory while the delivery is under way: the limit is
    // set below what it already holds, so every write that needs memory is
    // refused (reads, PEXPIRE and XACK still work).
    let squeezer = redis.clone();
    sink.set_behaviour(move |_, nth| {
        if nth > 0 {
            return Reply::ok();
        }
        let redis = squeezer.clone();
        tokio::spawn(async move {
            let info: String = redis
                .custom(fred::cmd!("INFO"), vec!["memory"])
                .await
                .unwrap();
            let used: u64 = info
                .lines()
                .find_map(|l| l.strip_prefix("used_memory:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap();
            set_maxmemory(&redis, used / 2).await;
        });
        Reply::ok().after(Duration::from_millis(500))
    });
    let stack = Stack::start(&server.url()).await;
    let ns = random_name("oom");
    stack
        .create_namespace(namespace(
            &ns,
            1,
            3,
            json!([http_target("a", &sink.url("/a"))]),
        ))
        .await;
    let _worker = stack
        .spawn_worker(&[("WAL_VISIBILITY_TIMEOUT_MS", "2000")])
        .await;
    let id = stack
        .write(json!({"namespace": ns, "payload": {"n": 1}}))
        .await;
    assert!(
        sink.wait_until(Duration::from_secs(15), |r| !r.is_empty())
            .await,
        "delivered"
    );
    let refused: Result<i64, _> = redis.hset("probe", ("f", "v")).await;
    assert!(refused.is_err(), "Redis still takes writes");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let keys = NamespaceKeys::new(&ns);
    let status: Option<String> = redis
        .hget(keys.status(&id), status_field("a"))
        .await
        .unwrap();
    assert!(status.is_none(), "a status was written while out of memory");
    assert_eq!(
        pending(&redis, &keys.stream(0)).await,
        1,
        "acknowledged although its status could not be written"
    );
    // Memory back: the entry is settled with its status.
    set_maxmemory(&redis, 0).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let status: Option<String> = redis
            .hget(keys.status(&id), status_field("a"))
            .await
            .unwrap();
        let acked = pending(&redis, &keys.stream(0)).await == 0;
        if let (Some(s), true) = (status, acked) {
            let s: TargetStatus = serde_json::from_str(&s).unwrap();
            assert_eq!(s.state, TargetState::Delivered);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never settled after memory came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
