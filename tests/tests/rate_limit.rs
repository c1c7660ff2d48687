//! Rate limits hold across gateway instances: two gateways sharing one Redis
//! and one namespace store together admit no more than the limit.

use std::time::Instant;

use serde_json::json;
use wal_tests::gateway::{
    delete_namespace_keys, namespace_body, redis_client, sqlite_store, TestGateway,
};
use wal_tests::{random_name, redis_url};

#[tokio::test]
async fn two_gateways_together_admit_no_more_than_the_limit() {
    let (db, _) = sqlite_store();
    let a = TestGateway::spawn_with(&redis_url(), &db, |_| {}).await;
    let b = TestGateway::spawn_with(&redis_url(), &db, |_| {}).await;
    let ns = random_name("shared-rl");
    let mut body = namespace_body(&ns, 1);
    // 60 per minute = 1 per second sustained, at most 10 at once.
    body["accessControl"] = json!({"rateLimits": {"requestsPerMinute": 60, "burstLimit": 10}});
    a.create_namespace(&body).await;
    // Make sure B has the namespace too.
    b.state.namespaces.refresh().await.unwrap();

    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..60 {
        let gw_client = if i % 2 == 0 {
            a.client.clone()
        } else {
            b.client.clone()
        };
        let url = if i % 2 == 0 {
            a.url("/api/v1/wal/write")
        } else {
            b.url("/api/v1/wal/write")
        };
        let ns = ns.clone();
        tasks.push(tokio::spawn(async move {
            let r = gw_client
                .post(url)
                .header("x-api-key", wal_tests::gateway::WRITE_KEY)
                .json(&json!({"namespace": ns, "payload": {"i": i}}))
                .send()
                .await
                .unwrap();
            (
                i % 2,
                r.status().as_u16(),
                r.headers().get("retry-after").is_some(),
            )
        }));
    }
    let mut admitted = [0u32; 2];
    let mut refused = 0;
    for t in tasks {
        let (which, status, has_retry_after) = t.await.unwrap();
        match status {
            202 => admitted[which] += 1,
            429 => {
                assert!(has_retry_after);
                refused += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let total = admitted[0] + admitted[1];
    // Burst of 10 plus at most the refill during the run (1/s), rounded up.
    let ceiling = 10 + elapsed.ceil() as u32;
    assert!(total >= 10, "the burst is admitted: {total}");
    assert!(
        total <= ceiling,
        "admitted {total} > {ceiling} in {elapsed:.2}s"
    );
    assert_eq!(total + refused, 60);
    delete_namespace_keys(&redis_client(&redis_url()).await, &ns).await;
}

#[tokio::test]
async fn a_batch_the_limit_can_never_admit_is_refused_for_good_not_throttled() {
    let gw = TestGateway::spawn().await;
    let ns = random_name("big-batch");
    let mut body = namespace_body(&ns, 1);
    body["accessControl"] = json!({"rateLimits": {"requestsPerMinute": 60, "burstLimit": 3}});
    gw.create_namespace(&body).await;
    let messages: Vec<_> = (0..5)
        .map(|i| json!({"namespace": ns, "payload": {"i": i}}))
        .collect();
    let resp = gw
        .client
        .post(gw.url("/api/v1/wal/write/batch"))
        .header("x-api-key", wal_tests::gateway::WRITE_KEY)
        .json(&json!({"messages": messages}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let v: serde_json::Value = resp.json().await.unwrap();
    let item = &v["results"][0];
    assert_eq!(
        (status, item["error"]["code"].as_str()),
        (207, Some("BATCH_EXCEEDS_RATE_LIMIT")),
        "{v}"
    );
    assert_eq!(item["error"]["details"]["burst"], 3, "{v}");
    // Three at once are fine.
    let messages: Vec<_> = (0..3)
        .map(|i| json!({"namespace": ns, "payload": {"i": i}}))
        .collect();
    let resp = gw
        .client
        .post(gw.url("/api/v1/wal/write/batch"))
        .header("x-api-key", wal_tests::gateway::WRITE_KEY)
        .json(&json!({"messages": messages}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    delete_namespace_keys(&redis_client(&redis_url()).await, &ns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_is_enforced_or_the_write_refused_when_redis_is_down_on_kafka() {
    let Some(_) = wal_tests::tansu::tansu_binary() else {
        panic!("tansu is not installed (scripts/install-tools.sh installs it)");
    };
    let broker = wal_tests::tansu::TansuBroker::start().await;
    let mut redis = wal_tests::redis_server::PrivateRedis::start().await;
    let (db, _) = sqlite_store();
    let gw = TestGateway::spawn_with(&redis.url(), &db, |_| {}).await;
    let ns = random_name("kafka-rl");
    let mut body = namespace_body(&ns, 1);
    body["backend"] = json!("kafka");
    body["backendConfig"] = json!({
        "brokers": [broker.brokers()],
        "properties": wal_tests::tansu::TANSU_CLIENT_PROPERTIES
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect::<serde_json::Map<String, serde_json::Value>>(),
    });
    body["accessControl"] = json!({"rateLimits": {"requestsPerMinute": 2}});
    gw.create_namespace(&body).await;
    let one = json!({"namespace": ns, "payload": {}});
    let write = || gw.write(&one);
    assert_eq!(write().await.status().as_u16(), 202, "Kafka appends work");
    redis.stop().await;
    // The limit cannot be checked: no write passes unchecked.
    for _ in 0..3 {
        let status = write().await.status().as_u16();
        assert_eq!(
            status, 503,
            "a rate-limited Kafka namespace refuses writes it cannot count"
        );
    }
}
