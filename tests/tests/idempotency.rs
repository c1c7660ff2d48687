//! `Idempotency-Key` answers through the gateway: a duplicate never claims
//! more than is known of the original, and a key sent again with another
//! request is refused.

use fred::prelude::*;
use serde_json::{json, Value};
use wal_tests::gateway::{delete_namespace_keys, namespace_body, redis_client, TestGateway};
use wal_tests::redis_server::PrivateRedis;
use wal_tests::{random_name, redis_url};

async fn keyed_write(gw: &TestGateway, key: &str, body: &Value) -> (u16, Option<String>, Value) {
    let resp = gw
        .client
        .post(gw.url("/api/v1/wal/write"))
        .header("x-api-key", wal_tests::gateway::WRITE_KEY)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (
        status,
        retry_after,
        resp.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_of_a_write_its_replicas_never_confirmed_stays_unknown_until_they_do() {
    let primary = PrivateRedis::start().await;
    let (db, _) = wal_tests::gateway::sqlite_store();
    let gw = TestGateway::spawn_with(&primary.url(), &db, |_| {}).await;
    let ns = random_name("idem-wait");
    let mut body = namespace_body(&ns, 1);
    body["backendConfig"] = json!({"waitReplicas": 1, "waitTimeoutMs": 1000});
    gw.create_namespace(&body).await;
    let write = json!({"namespace": ns, "payload": {"order": 1}});

    // No replica: the write is recorded on the primary only.
    let (status, _, first) = keyed_write(&gw, "order-1", &write).await;
    assert_eq!(
        (status, first["durable"].as_str()),
        (202, Some("UNKNOWN")),
        "{first}"
    );

    // The client retries as told: still nothing confirms the original.
    let (status, retry_after, again) = keyed_write(&gw, "order-1", &write).await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(again["duplicate"], true, "{again}");
    assert_eq!(again["messageId"], first["messageId"]);
    assert_eq!(
        again["durable"], "UNKNOWN",
        "a duplicate may not answer more than is known of the original: {again}"
    );
    assert!(retry_after.is_some(), "UNKNOWN comes with Retry-After");

    // A replica catches up: the retry waits for it again and can say TRUE.
    let _replica = PrivateRedis::start_with(vec![
        "--replicaof".into(),
        "127.0.0.1".into(),
        primary.port().to_string(),
    ])
    .await;
    primary.wait_for_replica().await;
    let (status, _, confirmed) = keyed_write(&gw, "order-1", &write).await;
    assert_eq!(
        (
            status,
            confirmed["durable"].as_str(),
            confirmed["duplicate"].as_bool()
        ),
        (202, Some("TRUE"), Some(true)),
        "{confirmed}"
    );
    assert_eq!(confirmed["messageId"], first["messageId"]);
    // One entry in the log, whatever the retries.
    let raw = redis_client(&primary.url()).await;
    let len: u64 = raw.xlen(format!("wal:{{{ns}}}:p:0")).await.unwrap();
    assert_eq!(len, 1);
}

#[tokio::test]
async fn the_same_key_with_another_request_is_refused_and_nothing_is_published() {
    let gw = TestGateway::spawn().await;
    let ns = random_name("idem-reuse");
    gw.create_namespace(&namespace_body(&ns, 1)).await;
    let original = json!({"namespace": ns, "payload": {"order": 1}});
    let (status, _, first) = keyed_write(&gw, "order-7", &original).await;
    assert_eq!(
        (status, first["durable"].as_str()),
        (202, Some("TRUE")),
        "{first}"
    );

    let changed = json!({"namespace": ns, "payload": {"order": 2}});
    let (status, _, refused) = keyed_write(&gw, "order-7", &changed).await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(
        refused["error"]["code"], "IDEMPOTENCY_KEY_REUSED",
        "{refused}"
    );

    // The same request again is a plain duplicate, however its JSON is laid out.
    let reordered: Value = serde_json::from_str(&format!(
        r#"{{ "payload": {{"order": 1}}, "namespace": "{ns}" }}"#
    ))
    .unwrap();
    let (status, _, again) = keyed_write(&gw, "order-7", &reordered).await;
    assert_eq!(
        (status, again["duplicate"].as_bool()),
        (202, Some(true)),
        "{again}"
    );
    assert_eq!(again["messageId"], first["messageId"]);

    // Batch items are fingerprinted one by one under `<key>:<i>`.
    let batch = |second: i64| {
        json!({"messages": [
            {"namespace": ns, "payload": {"item": 0}},
            {"namespace": ns, "payload": {"item": second}},
        ]})
    };
    let send_batch = |body: Value| {
        gw.client
            .post(gw.url("/api/v1/wal/write/batch"))
            .header("x-api-key", wal_tests::gateway::WRITE_KEY)
            .header("idempotency-key", "batch-1")
            .json(&body)
            .send()
    };
    let resp = send_batch(batch(1)).await.unwrap();
    assert_eq!(resp.status(), 202);
    let resp = send_batch(batch(99)).await.unwrap();
    assert_eq!(resp.status(), 207);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["results"][0]["duplicate"], true, "{answer}");
    assert_eq!(
        answer["results"][1]["error"]["code"], "IDEMPOTENCY_KEY_REUSED",
        "{answer}"
    );

    let raw = redis_client(&redis_url()).await;
    let len: u64 = raw.xlen(format!("wal:{{{ns}}}:p:0")).await.unwrap();
    assert_eq!(len, 3, "the original write and the first batch only");
    delete_namespace_keys(&raw, &ns).await;
}
