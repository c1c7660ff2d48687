//! The write API end to end: a gateway in-process, the shared Redis, a fresh
//! SQLite namespace store per test. Every error code of SPEC §2 is triggered
//! here except PRODUCER_UNAVAILABLE (redis_outage.rs) and
//! INTERNAL_SERVER_ERROR (postgres_store.rs).

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use fred::prelude::*;
use fred::types::Value as RedisValue;
use serde_json::{json, Value};
use wal_core::routing::fnv1a;
use wal_core::Envelope;
use wal_tests::gateway::{
    delete_namespace_keys, namespace_body, redis_client, TestGateway, ADMIN_KEY, WRITE_KEY,
};
use wal_tests::{random_name, redis_url};

/// All envelopes of a namespace, per partition.
async fn stream_entries(redis: &Client, ns: &str, partitions: u32) -> BTreeMap<u32, Vec<Envelope>> {
    let mut out = BTreeMap::new();
    for p in 0..partitions {
        let key = format!("wal:{{{ns}}}:p:{p}");
        let entries: Vec<(String, Vec<(String, RedisValue)>)> =
            redis.xrange(&key, "-", "+", None).await.unwrap_or_default();
        let envs = entries
            .into_iter()
            .map(|(_, fields)| {
                let env = fields
                    .iter()
                    .find(|(k, _)| k == "env")
                    .expect("env field")
                    .1
                    .clone();
                Envelope::decode(env.as_bytes().expect("bytes")).expect("valid envelope")
            })
            .collect();
        out.insert(p, envs);
    }
    out
}

async fn setup(partitions: u32) -> (TestGateway, String, Client) {
    let gw = TestGateway::spawn().await;
    let ns = random_name("w");
    gw.create_namespace(&namespace_body(&ns, partitions)).await;
    (gw, ns, redis_client(&redis_url()).await)
}

async fn error_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.expect("json error envelope");
    (status, body)
}

fn assert_envelope(body: &Value, code: &str, path: &str) {
    assert_eq!(body["success"], json!(false), "{body}");
    assert_eq!(body["error"]["code"], json!(code), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(body["error"]["details"].is_object(), "{body}");
    assert!(
        body["metadata"]["requestId"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{body}"
    );
    assert!(body["metadata"]["timestamp"].is_string(), "{body}");
    assert_eq!(body["metadata"]["path"], json!(path), "{body}");
    assert_eq!(body["metadata"]["method"], json!("POST"), "{body}");
}

#[tokio::test]
async fn accepted_write_lands_in_its_partition_with_every_envelope_field() {
    let (gw, ns, redis) = setup(4).await;
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let body = json!({
        "namespace": format!("  {}  ", ns.to_uppercase()),
        "payload": {"operation": "SET", "key": "user:123", "value": {"name": "Ada"}, "n": 1.50},
        "target": {"identifier": "sink", "headers": {"X-Tenant": "t1"}},
        "lifecycle": {"delay": 300, "delayUnit": "seconds", "jitterMs": 500, "ttl": 86400,
                      "retryPolicy": {"maxAttempts": 3, "backoffStrategy": "linear"}, "enableDLQ": true},
        "partitionKey": "user:123",
        "metadata": {"trace-id": "abc"}, "priority": 5, "tags": ["cache-update"]
    });
    let before = wal_core::MessageId::generate().timestamp_ms();
    let resp = gw
        .client
        .post(gw.url("/api/v1/wal/write"))
        .header("x-api-key", WRITE_KEY)
        .header("x-request-id", "req-abc-123")
        .header("traceparent", traceparent)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    assert_eq!(resp.headers()["x-request-id"], "req-abc-123");
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["durable"], "TRUE");
    assert_eq!(answer["duplicate"], false);
    assert_eq!(answer["transactionId"], Value::Null);
    assert_eq!(answer["message"], "Message accepted for processing");
    let eta = answer["estimatedProcessingTimeMs"].as_u64().unwrap();
    assert!((299_000..=300_600).contains(&eta), "eta {eta}");
    let id = answer["messageId"].as_str().unwrap().to_string();

    let expected_partition = (fnv1a(b"user:123") % 4) as u32;
    let all = stream_entries(&redis, &ns, 4).await;
    for (p, envs) in &all {
        assert_eq!(
            envs.len(),
            usize::from(*p == expected_partition),
            "partition {p}"
        );
    }
    let env = &all[&expected_partition][0];
    assert_eq!(env.id.to_string(), id);
    assert_eq!(env.namespace, ns);
    let payload: Value = serde_json::from_str(env.payload.get()).unwrap();
    assert_eq!(payload, body["payload"]);
    assert_eq!(env.targets.len(), 1);
    assert_eq!(env.targets[0].identifier, "sink");
    assert_eq!(env.targets[0].headers.as_ref().unwrap()["X-Tenant"], "t1");
    assert_eq!(env.lifecycle.retry_policy.max_attempts, 3);
    assert_eq!(
        env.lifecycle.retry_policy.backoff_strategy,
        wal_core::BackoffStrategy::Linear
    );
    assert_eq!(
        env.lifecycle.retry_policy.initial_delay_ms, 1000,
        "namespace default kept"
    );
    assert!(env.lifecycle.enable_dlq);
    assert_eq!(
        env.lifecycle.expires_at_ms,
        Some(env.created_at_ms + 86_400_000)
    );
    assert_eq!(env.partition_key.as_deref(), Some("user:123"));
    assert_eq!(env.partition, expected_partition);
    assert_eq!(env.request_id, "req-abc-123");
    assert_eq!(env.trace.traceparent.as_deref(), Some(traceparent));
    assert!(env.created_at_ms >= before);
    let delay = env.due_at_ms - env.created_at_ms;
    assert!((300_000..=300_500).contains(&delay), "delay {delay}");
    assert_eq!(env.attempt, 0);
    assert_eq!(env.metadata.as_ref().unwrap()["trace-id"], "abc");
    assert_eq!(env.priority, Some(5));
    assert_eq!(env.tags, vec!["cache-update".to_string()]);
    delete_namespace_keys(&redis, &ns).await;
}

#[tokio::test]
async fn request_id_is_generated_and_trace_started_when_absent() {
    let (gw, ns, redis) = setup(1).await;
    let resp = gw
        .write(&json!({"namespace": ns, "payload": {"a": 1}}))
        .await;
    assert_eq!(resp.status().as_u16(), 202);
    let rid = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(!rid.is_empty());
    let env = &stream_entries(&redis, &ns, 1).await[&0][0];
    assert_eq!(env.request_id, rid);
    assert!(env
        .trace
        .traceparent
        .as_deref()
        .is_some_and(|t| t.starts_with("00-") && t.len() == 55));
    let names: Vec<&str> = env.targets.iter().map(|t| t.identifier.as_str()).collect();
    assert_eq!(
        names,
        vec!["sink", "cache"],
        "absent target = every enabled target"
    );
    delete_namespace_keys(&redis, &ns).await;
}

#[tokio::test]
async fn same_partition_key_always_same_partition_and_strategies_spread() {
    let gw = TestGateway::spawn().await;
    let redis = redis_client(&redis_url()).await;

    // hash strategy with keys: one key → one partition; many keys → spread.
    let ns = random_name("route");
    gw.create_namespace(&namespace_body(&ns, 4)).await;
    for i in 0..20 {
        let r = gw
            .write(&json!({"namespace": ns, "payload": {"i": i}, "partitionKey": "user:42"}))
            .await;
        assert_eq!(r.status().as_u16(), 202);
    }
    let all = stream_entries(&redis, &ns, 4).await;
    let used: Vec<u32> = all
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(p, _)| *p)
        .collect();
    assert_eq!(used, vec![(fnv1a(b"user:42") % 4) as u32]);
    assert_eq!(all.values().map(Vec::len).sum::<usize>(), 20);
    // identical payloads without key land together (hash of payload)
    for _ in 0..5 {
        gw.write(&json!({"namespace": ns, "payload": {"same": true}}))
            .await;
    }
    let all = stream_entries(&redis, &ns, 4).await;
    let holders: Vec<u32> = all
        .iter()
        .filter(|(_, v)| v.iter().any(|e| e.payload.get().contains("same")))
        .map(|(p, _)| *p)
        .collect();
    assert_eq!(holders.len(), 1);
    delete_namespace_keys(&redis, &ns).await;

    // round robin: exactly even.
    let rr = random_name("rr");
    let mut body = namespace_body(&rr, 4);
    body["shardConfig"]["strategy"] = json!("round_robin");
    gw.create_namespace(&body).await;
    for i in 0..40 {
        gw.write(&json!({"namespace": rr, "payload": {"i": i}}))
            .await;
    }
    let counts: Vec<usize> = stream_entries(&redis, &rr, 4)
        .await
        .values()
        .map(Vec::len)
        .collect();
    assert_eq!(counts, vec![10, 10, 10, 10]);
    delete_namespace_keys(&redis, &rr).await;

    // random: every partition used, none starved.
    let rnd = random_name("rnd");
    let mut body = namespace_body(&rnd, 4);
    body["shardConfig"]["strategy"] = json!("random");
    gw.create_namespace(&body).await;
    for i in 0..200 {
        gw.write(&json!({"namespace": rnd, "payload": {"i": i}}))
            .await;
    }
    let counts: Vec<usize> = stream_entries(&redis, &rnd, 4)
        .await
        .values()
        .map(Vec::len)
        .collect();
    assert_eq!(counts.iter().sum::<usize>(), 200);
    assert!(counts.iter().all(|&c| c >= 20), "{counts:?}");
    delete_namespace_keys(&redis, &rnd).await;
}

#[tokio::test]
async fn idempotency_twenty_concurrent_writes_one_entry() {
    let (gw, ns, redis) = setup(4).await;
    let body = json!({"namespace": ns, "payload": {"order": 7}});
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let client = gw.client.clone();
        let url = gw.url("/api/v1/wal/write");
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .header("x-api-key", WRITE_KEY)
                .header("idempotency-key", "order-7")
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 202);
            r.json::<Value>().await.unwrap()
        }));
    }
    let mut ids = HashSet::new();
    let mut firsts = 0;
    for t in tasks {
        let v = t.await.unwrap();
        assert_eq!(v["durable"], "TRUE");
        ids.insert(v["messageId"].as_str().unwrap().to_string());
        if v["duplicate"] == json!(false) {
            firsts += 1;
        }
    }
    assert_eq!(ids.len(), 1, "one messageId for every repeat");
    assert_eq!(firsts, 1, "exactly one write was not a duplicate");
    let total: usize = stream_entries(&redis, &ns, 4)
        .await
        .values()
        .map(Vec::len)
        .sum();
    assert_eq!(total, 1, "exactly one stream entry");
    delete_namespace_keys(&redis, &ns).await;
}

#[tokio::test]
async fn five_thousand_writes_from_fifty_tasks_all_recorded_with_distinct_ids() {
    let (gw, ns, redis) = setup(4).await;
    let mut tasks = Vec::new();
    for t in 0..50 {
        let client = gw.client.clone();
        let url = gw.url("/api/v1/wal/write");
        let ns = ns.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::with_capacity(100);
            for i in 0..100 {
                let r = client
                    .post(&url)
                    .header("x-api-key", WRITE_KEY)
                    .json(&json!({"namespace": ns, "payload": {"t": t, "i": i}}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status().as_u16(), 202);
                let v: Value = r.json().await.unwrap();
                assert_eq!(v["durable"], "TRUE");
                ids.push(v["messageId"].as_str().unwrap().to_string());
            }
            ids
        }));
    }
    let mut answered = HashSet::new();
    for t in tasks {
        answered.extend(t.await.unwrap());
    }
    assert_eq!(answered.len(), 5000);
    let stored: HashSet<String> = stream_entries(&redis, &ns, 4)
        .await
        .into_values()
        .flatten()
        .map(|e| e.id.to_string())
        .collect();
    assert_eq!(stored, answered);
    delete_namespace_keys(&redis, &ns).await;
}

#[tokio::test]
async fn batch_answers_in_order_with_per_message_errors() {
    let (gw, ns, redis) = setup(2).await;
    let messages: Vec<Value> = (0..6)
        .map(|i| {
            if i == 3 {
                json!({"namespace": ns, "payload": {"i": i}, "priority": 11})
            } else if i == 4 {
                json!({"namespace": "no-such-namespace-xyz", "payload": {"i": i}})
            } else {
                json!({"namespace": ns, "payload": {"i": i}})
            }
        })
        .collect();
    let resp = gw
        .client
        .post(gw.url("/api/v1/wal/write/batch"))
        .header("x-api-key", WRITE_KEY)
        .header("idempotency-key", "batch-1")
        .json(&json!({"messages": messages}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 207);
    let v: Value = resp.json().await.unwrap();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 6);
    for (i, r) in results.iter().enumerate() {
        match i {
            3 => {
                assert_eq!(r["error"]["code"], "VALIDATION_FAILED");
                assert_eq!(r["error"]["details"]["field"], "messages[3].priority");
            }
            4 => assert_eq!(r["error"]["code"], "NAMESPACE_NOT_FOUND"),
            _ => assert_eq!(r["durable"], "TRUE", "{r}"),
        }
    }
    let total: usize = stream_entries(&redis, &ns, 2)
        .await
        .values()
        .map(Vec::len)
        .sum();
    assert_eq!(total, 4);

    // The same batch again with the same key: every message is a duplicate.
    let ok: Vec<Value> = (0..3)
        .map(|i| json!({"namespace": ns, "payload": {"again": i}}))
        .collect();
    for round in 0..2 {
        let resp = gw
            .client
            .post(gw.url("/api/v1/wal/write/batch"))
            .header("x-api-key", WRITE_KEY)
            .header("idempotency-key", "batch-2")
            .json(&json!({"messages": ok}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 202);
        let v: Value = resp.json().await.unwrap();
        for r in v["results"].as_array().unwrap() {
            assert_eq!(r["duplicate"], json!(round == 1));
        }
    }
    let total: usize = stream_entries(&redis, &ns, 2)
        .await
        .values()
        .map(Vec::len)
        .sum();
    assert_eq!(total, 7);

    // Batch-level validation.
    let resp = gw
        .client
        .post(gw.url("/api/v1/wal/write/batch"))
        .header("x-api-key", WRITE_KEY)
        .json(&json!({"messages": []}))
        .send()
        .await
        .unwrap();
    let (status, body) = error_of(resp).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["details"]["field"], "messages");
    delete_namespace_keys(&redis, &ns).await;
}

#[tokio::test]
async fn validation_failed_400_for_each_kind_of_bad_input() {
    let (gw, ns, redis) = setup(1).await;
    let post_raw = |body: &'static str| {
        gw.client
            .post(gw.url("/api/v1/wal/write"))
            .header("x-api-key", WRITE_KEY)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    // Malformed JSON.
    let (status, body) = error_of(post_raw("{\"namespace\": ").await.unwrap()).await;
    assert_eq!(status, 400);
    assert_envelope(&body, "VALIDATION_FAILED", "/api/v1/wal/write");

    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"namespace": ns, "payload": {}, "partitonKey": "x"}),
            "partitonKey",
        ),
        (json!({"namespace": ns}), "payload"),
        (json!({"namespace": ns, "payload": [1, 2]}), "payload"),
        (
            json!({"namespace": ns, "payload": {}, "priority": 11}),
            "priority",
        ),
        (
            json!({"namespace": ns, "payload": {}, "priority": "high"}),
            "priority",
        ),
        (
            json!({"namespace": "Bad Name!", "payload": {}}),
            "namespace",
        ),
        (
            json!({"namespace": ns, "payload": {}, "lifecycle": {"delay": 8, "delayUnit": "days"}}),
            "lifecycle.delay",
        ),
        (
            json!({"namespace": ns, "payload": {}, "lifecycle": {"retryPolicy": {"maxAttempts": 21}}}),
            "lifecycle.retryPolicy.maxAttempts",
        ),
        (
            json!({"namespace": ns, "payload": {}, "lifecycle": {"delayUnit": "weeks", "delay": 1}}),
            "lifecycle.delayUnit",
        ),
        (
            json!({"namespace": ns, "payload": {}, "target": {"identifier": "nope"}}),
            "target.identifier",
        ),
        (
            json!({"namespace": ns, "payload": {}, "target": {"identifier": "sink", "url": "http://169.254.169.254/"}}),
            "target.url",
        ),
        (
            json!({"namespace": ns, "payload": {}, "target": [{"identifier": "sink", "headers": {"Authorization": "x"}}]}),
            "target[0].headers.Authorization",
        ),
        (
            json!({"namespace": ns, "payload": {}, "target": [{"identifier": "sink", "keyPrefix": "k:"}]}),
            "target[0].keyPrefix",
        ),
        (
            json!({"namespace": ns, "payload": {}, "tags": [""]}),
            "tags[0]",
        ),
    ];
    for (body, field) in cases {
        let (status, err) = error_of(gw.write(&body).await).await;
        assert_eq!(status, 400, "{body} → {err}");
        assert_envelope(&err, "VALIDATION_FAILED", "/api/v1/wal/write");
        let got = err["error"]["details"]["field"].as_str().unwrap_or("");
        assert!(
            got == field || got.starts_with(field),
            "{body}: expected field {field}, got {err}"
        );
        assert!(err["error"]["details"]["reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty()));
    }
    // Invalid Idempotency-Key.
    let resp = gw
        .client
        .post(gw.url("/api/v1/wal/write"))
        .header("x-api-key", WRITE_KEY)
        .header("idempotency-key", "has space")
        .json(&json!({"namespace": ns, "payload": {}}))
        .send()
        .await
        .unwrap();
    let (status, err) = error_of(resp).await;
    assert_eq!(status, 400);
    assert_eq!(err["error"]["details"]["field"], "Idempotency-Key");
    // Nothing was written by any of these.
    let total: usize = stream_entries(&redis, &ns, 1)
        .await
        .values()
        .map(Vec::len)
        .sum();
    assert_eq!(total, 0);
}

#[tokio::test]
async fn unauthorized_forbidden_not_found_disabled_too_large_unsupported() {
    let (gw, ns, redis) = setup(1).await;
    let ok = json!({"namespace": ns, "payload": {"a": 1}});
    let url = gw.url("/api/v1/wal/write");

    // 401: missing key, unknown key.
    let (s, b) = error_of(gw.client.post(&url).json(&ok).send().await.unwrap()).await;
    assert_eq!(
        (s, b["error"]["code"].as_str().unwrap()),
        (401, "UNAUTHORIZED")
    );
    assert_envelope(&b, "UNAUTHORIZED", "/api/v1/wal/write");
    let (s, b) = error_of(
        gw.client
            .post(&url)
            .header("x-api-key", "nope-nope-nope-nope")
            .json(&ok)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str().unwrap()),
        (401, "UNAUTHORIZED")
    );

    // 403: namespace with its own allow-list refuses the global key; accepts its own.
    let locked = random_name("locked");
    let mut body = namespace_body(&locked, 1);
    body["accessControl"] = json!({"allowedApiKeys": ["ns-only-key-0123456789"]});
    gw.create_namespace(&body).await;
    let w = json!({"namespace": locked, "payload": {}});
    let (s, b) = error_of(gw.write(&w).await).await;
    assert_eq!(
        (s, b["error"]["code"].as_str().unwrap()),
        (403, "FORBIDDEN")
    );
    let r = gw
        .client
        .post(&url)
        .header("x-api-key", "ns-only-key-0123456789")
        .json(&w)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    // ... and that namespace key is not valid on other namespaces (403, it is a known key).
    let (s, _) = error_of(
        gw.client
            .post(&url)
            .header("x-api-key", "ns-only-key-0123456789")
            .json(&ok)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 403);

    // 403: IP allow-list that excludes loopback.
    let fenced = random_name("fenced");
    let mut body = namespace_body(&fenced, 1);
    body["accessControl"] = json!({"ipAllowList": ["10.0.0.0/8"]});
    gw.create_namespace(&body).await;
    let (s, b) = error_of(gw.write(&json!({"namespace": fenced, "payload": {}})).await).await;
    assert_eq!(
        (s, b["error"]["code"].as_str().unwrap()),
        (403, "FORBIDDEN")
    );

    // 404.
    let (s, b) = error_of(
        gw.write(&json!({"namespace": "does-not-exist-123", "payload": {}}))
            .await,
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str().unwrap()),
        (404, "NAMESPACE_NOT_FOUND")
    );

    // 409 disabled.
    let r = gw
        .client
        .post(gw.url(&format!("/api/v1/namespaces/{ns}/disable")))
        .header("x-api-key", ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (s, b) = error_of(gw.write(&ok).await).await;
    assert_eq!(
        (s, b["error"]["code"].as_str().unwrap()),
        (409, "NAMESPACE_DISABLED")
    );
    gw.client
        .post(gw.url(&format!("/api/v1/namespaces/{ns}/enable")))
        .header("x-api-key", ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(gw.write(&ok).await.status().as_u16(), 202);

    // 413: payload over the namespace's maxMessageSize.
    let small = random_name("small");
    let mut body = namespace_body(&small, 1);
    body["maxMessageSize"] = json!(1024);
    gw.create_namespace(&body).await;
    let big = "x".repeat(2000);
    let (s, b) = error_of(
        gw.write(&json!({"namespace": small, "payload": {"blob": big}}))
            .await,
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str().unwrap()),
        (413, "MESSAGE_SIZE_LIMIT_EXCEEDED")
    );
    assert_eq!(b["error"]["details"]["maxSize"], 1024);
    assert!(b["error"]["details"]["actualSize"].as_u64().unwrap() > 2000);

    // 415.
    let r = gw
        .client
        .post(&url)
        .header("x-api-key", WRITE_KEY)
        .header("content-type", "text/plain")
        .body(ok.to_string())
        .send()
        .await
        .unwrap();
    let (s, b) = error_of(r).await;
    assert_eq!(
        (s, b["error"]["code"].as_str().unwrap()),
        (415, "UNSUPPORTED_MEDIA_TYPE")
    );

    for n in [&ns, &locked, &fenced, &small] {
        delete_namespace_keys(&redis, n).await;
    }
}

#[tokio::test]
async fn body_over_the_process_limit_is_413() {
    let (db, _) = wal_tests::gateway::sqlite_store();
    let gw = TestGateway::spawn_with(&redis_url(), &db, |c| c.max_body_bytes = 4096).await;
    let ns = random_name("body");
    gw.create_namespace(&namespace_body(&ns, 1)).await;
    let (s, b) = error_of(
        gw.write(&json!({"namespace": ns, "payload": {"blob": "y".repeat(10_000)}}))
            .await,
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str().unwrap()),
        (413, "MESSAGE_SIZE_LIMIT_EXCEEDED")
    );
    assert_eq!(b["error"]["details"]["maxSize"], 4096);
}

#[tokio::test]
async fn rate_limited_429_with_retry_after() {
    let (gw, _, redis) = setup(1).await;
    let ns = random_name("rl");
    let mut body = namespace_body(&ns, 1);
    body["accessControl"] = json!({"rateLimits": {"requestsPerMinute": 60, "burstLimit": 3}});
    gw.create_namespace(&body).await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for i in 0..6 {
        let r = gw
            .write(&json!({"namespace": ns, "payload": {"i": i}}))
            .await;
        statuses.push(r.status().as_u16());
        if r.status().as_u16() == 429 {
            retry_after = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            let (_, b) = error_of(r).await;
            assert_envelope(&b, "RATE_LIMITED", "/api/v1/wal/write");
        }
    }
    assert_eq!(&statuses[..3], &[202, 202, 202]);
    assert!(statuses[3..].contains(&429), "{statuses:?}");
    assert!(retry_after.unwrap().parse::<u64>().unwrap() >= 1);
    delete_namespace_keys(&redis, &ns).await;
}

#[tokio::test]
async fn namespace_change_is_visible_to_another_instance_within_five_seconds() {
    let (db, _) = wal_tests::gateway::sqlite_store();
    let a =
        TestGateway::spawn_with(&redis_url(), &db, |c| c.store.namespace_refresh_ms = 1000).await;
    let b =
        TestGateway::spawn_with(&redis_url(), &db, |c| c.store.namespace_refresh_ms = 1000).await;
    let ns = random_name("shared");
    let w = json!({"namespace": ns, "payload": {}});
    assert_eq!(b.write(&w).await.status().as_u16(), 404);

    a.create_namespace(&namespace_body(&ns, 1)).await;
    let started = Instant::now();
    loop {
        let s = b.write(&w).await.status().as_u16();
        if s == 202 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "instance B did not see the new namespace in 5 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    a.client
        .post(a.url(&format!("/api/v1/namespaces/{ns}/disable")))
        .header("x-api-key", ADMIN_KEY)
        .send()
        .await
        .unwrap();
    let started = Instant::now();
    while b.write(&w).await.status().as_u16() != 409 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "instance B did not see the disable in 5 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    delete_namespace_keys(&redis_client(&redis_url()).await, &ns).await;
}

#[tokio::test]
async fn health_metrics_and_docs_are_served() {
    let (gw, ns, redis) = setup(1).await;
    gw.write(&json!({"namespace": ns, "payload": {}})).await;

    let h: Value = gw
        .client
        .get(gw.url("/api/v1/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h["status"], "ok");
    assert_eq!(h["redis"]["status"], "up");
    assert!(h["redis"]["latencyMs"].as_f64().unwrap() > 0.0);
    assert_eq!(h["database"]["status"], "up");
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
    assert_eq!(
        gw.client
            .get(gw.url("/api/v1/health/liveness"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );

    let metrics = gw
        .client
        .get(gw.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = format!(
        "wal_requests_total{{namespace=\"{ns}\",operation=\"write\",status=\"accepted\"}} 1"
    );
    assert!(metrics.contains(&line), "missing {line} in\n{metrics}");
    assert!(metrics.contains("wal_request_duration_seconds_bucket"));
    assert!(metrics.contains(
        "wal_http_requests_total{method=\"POST\",route=\"/api/v1/wal/write\",status=\"202\"}"
    ));

    let doc: Value = gw
        .client
        .get(gw.url("/api/docs/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/api/v1/wal/write",
        "/api/v1/wal/write/batch",
        "/api/v1/namespaces",
        "/api/v1/health",
    ] {
        assert!(doc["paths"][path].is_object(), "openapi lacks {path}");
    }
    let ui = gw.client.get(gw.url("/api/docs/")).send().await.unwrap();
    assert_eq!(ui.status().as_u16(), 200);
    assert!(ui.text().await.unwrap().to_lowercase().contains("swagger"));

    let (s, b) = error_of(gw.client.post(gw.url("/api/v1/nope")).send().await.unwrap()).await;
    assert_eq!(
        (s, b["error"]["code"].as_str().unwrap()),
        (404, "NOT_FOUND")
    );
    delete_namespace_keys(&redis, &ns).await;
}
