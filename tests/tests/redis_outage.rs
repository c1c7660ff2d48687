//! Redis stopped under the gateway (a private Redis this test owns): writes
//! answer 503 PRODUCER_UNAVAILABLE and never `durable: TRUE`; readiness goes
//! down; when Redis returns, the gateway recovers by itself.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wal_tests::gateway::{namespace_body, sqlite_store, TestGateway};
use wal_tests::random_name;
use wal_tests::redis_server::PrivateRedis;

async fn write(gw: &TestGateway, ns: &str) -> (u16, Value) {
    let r = gw
        .write(&json!({"namespace": ns, "payload": {"x": 1}}))
        .await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn redis_down_means_503_never_true_and_recovery_is_automatic() {
    let mut redis = PrivateRedis::start().await;
    let (db, _) = sqlite_store();
    let gw = TestGateway::spawn_with(&redis.url(), &db, |_| {}).await;
    let ns = random_name("outage");
    gw.create_namespace(&namespace_body(&ns, 2)).await;
    let (s, v) = write(&gw, &ns).await;
    assert_eq!((s, v["durable"].as_str().unwrap()), (202, "TRUE"));

    redis.stop().await;
    let mut saw_false = false;
    for _ in 0..20 {
        let (s, v) = write(&gw, &ns).await;
        assert_eq!(s, 503, "{v}");
        assert_eq!(v["error"]["code"], "PRODUCER_UNAVAILABLE");
        let durable = v["durable"].as_str().unwrap();
        assert_ne!(durable, "TRUE");
        saw_false |= durable == "FALSE";
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        saw_false,
        "once the disconnect is known the answer is FALSE"
    );
    let ready = gw
        .client
        .get(gw.url("/api/v1/health/readiness"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["redis"]["status"], "down");

    redis.restart().await;
    let started = Instant::now();
    loop {
        let (s, v) = write(&gw, &ns).await;
        if s == 202 {
            assert_eq!(v["durable"], "TRUE");
            break;
        }
        assert_ne!(v["durable"], "TRUE");
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "gateway did not recover: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        gw.client
            .get(gw.url("/api/v1/health/readiness"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
}

#[tokio::test]
async fn gateway_starts_while_redis_is_down_and_serves_once_it_is_up() {
    let mut redis = PrivateRedis::start().await;
    let url = redis.url();
    redis.stop().await;
    let (db, _) = sqlite_store();
    let gw = TestGateway::spawn_with(&url, &db, |_| {}).await;
    let ns = random_name("late");
    gw.create_namespace(&namespace_body(&ns, 1)).await;
    let (s, v) = write(&gw, &ns).await;
    assert_eq!(s, 503);
    assert_eq!(v["durable"], "FALSE");

    redis.restart().await;
    let started = Instant::now();
    while write(&gw, &ns).await.0 != 202 {
        assert!(started.elapsed() < Duration::from_secs(15), "no recovery");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
