//! End to end through both programs: gateway and worker as processes, real
//! Redis, an HTTP sink in the test. Delivery, delays, retries, the DLQ,
//! several targets with a circuit breaker, the PostgreSQL target's
//! exactly-once ledger, and the ack invariant.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fred::prelude::*;
use fred::types::Value as RedisValue;
use serde_json::{json, Value};
use wal_core::keys::{NamespaceKeys, CONSUMER_GROUP};
use wal_tests::e2e::{
    delivered, distinct_delivered, http_target, metric_sum, namespace, Reply, Sink, Stack,
};
use wal_tests::gateway::{delete_namespace_keys, redis_client, WRITE_KEY};
use wal_tests::{postgres_url, random_name, redis_url};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

async fn dlq_records(client: &Client, ns: &str) -> Vec<std::collections::BTreeMap<String, String>> {
    let entries: Vec<(String, std::collections::HashMap<String, String>)> = client
        .xrange(NamespaceKeys::new(ns).dlq(), "-", "+", None)
        .await
        .unwrap_or_default();
    entries
        .into_iter()
        .map(|(_, fields)| fields.into_iter().collect())
        .collect()
}

#[tokio::test]
async fn delivers_at_once_with_id_attempt_traceparent_and_a_valid_signature() {
    let sink = Sink::start().await;
    let stack = Stack::start(&redis_url()).await;
    let ns = random_name("e2e-now");
    stack
        .create_namespace(namespace(
            &ns,
            2,
            3,
            json!([{"identifier": "hook", "type": "webhook",
                    "config": {"url": sink.url("/hook"), "signingSecretEnv": "WAL_TEST_E2E_SECRET", "timeoutMs": 1000}}]),
        ))
        .await;
    let _worker = stack.spawn_worker(&[("WAL_TEST_E2E_SECRET", SECRET)]).await;

    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let res = stack
        .client
        .post(stack.url("/api/v1/wal/write"))
        .header("x-api-key", WRITE_KEY)
        .header("traceparent", traceparent)
        .json(&json!({"namespace": ns, "payload": {"order": 42, "note": "héllo"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let id = res.json::<Value>().await.unwrap()["messageId"]
        .as_str()
        .unwrap()
        .to_string();

    assert!(
        sink.wait_until(Duration::from_secs(10), |r| !r.is_empty())
            .await,
        "nothing delivered"
    );
    let got = &sink.delivered_on("/hook")[0];
    assert_eq!(got.message_id(), id);
    assert_eq!(got.headers["idempotency-key"], id);
    assert_eq!(got.attempt(), 1);
    assert!(
        got.headers["traceparent"].contains("0af7651916cd43dd8448eb211c80319c"),
        "trace continues: {}",
        got.headers["traceparent"]
    );
    assert_eq!(got.json(), json!({"order": 42, "note": "héllo"}));
    let ts: u64 = got.headers["webhook-timestamp"].parse().unwrap();
    assert!(wal_targets::verify_signature(
        SECRET,
        &got.headers["webhook-id"],
        ts,
        &got.body,
        &got.headers["webhook-signature"],
    ));
    assert!(!wal_targets::verify_signature(
        SECRET,
        &got.headers["webhook-id"],
        ts,
        b"{\"tampered\":1}",
        &got.headers["webhook-signature"],
    ));

    // The status record says delivered.
    let mut state = Value::Null;
    for _ in 0..50 {
        let (code, body) = stack.admin_get(&format!("/api/v1/wal/message/{id}")).await;
        if code == 200 {
            state = body;
            if state.to_string().contains("delivered") {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(state.to_string().contains("delivered"), "status: {state}");
    delete_namespace_keys(&redis_client(&redis_url()).await, &ns).await;
}

#[tokio::test]
async fn a_delayed_message_never_arrives_before_its_due_time_and_jitter_stays_in_bounds() {
    let sink = Sink::start().await;
    let stack = Stack::start(&redis_url()).await;
    let ns = random_name("e2e-delay");
    stack
        .create_namespace(namespace(
            &ns,
            2,
            3,
            json!([{"identifier": "env", "type": "http",
                    "config": {"url": sink.url("/env"), "body": "envelope", "timeoutMs": 1000}}]),
        ))
        .await;
    let _worker = stack.spawn_worker(&[]).await;
    let messages: Vec<Value> = (0..30)
        .map(|i| json!({"namespace": ns, "payload": {"i": i}, "lifecycle": {"delay": 1, "jitterMs": 400}}))
        .collect();
    let ids = stack.write_batch(messages).await;
    assert!(
        sink.wait_until(Duration::from_secs(15), |r| r.len() >= ids.len())
            .await,
        "only {} of {} delayed messages arrived",
        sink.received().len(),
        ids.len()
    );
    for r in sink.delivered_on("/env") {
        let env = r.json();
        let created = env["createdAtMs"].as_u64().unwrap();
        let due = env["dueAtMs"].as_u64().unwrap();
        assert!(r.at_ms >= due, "delivered {} ms early", due - r.at_ms);
        let planned = due - created;
        assert!(
            (1_000..=1_400).contains(&planned),
            "delay + jitter = {planned} ms"
        );
        assert!(r.at_ms - due < 1_000, "{} ms late", r.at_ms - due);
    }
    delete_namespace_keys(&redis_client(&redis_url()).await, &ns).await;
}

#[tokio::test]
async fn a_target_failing_twice_gets_the_message_on_the_third_attempt_after_the_policy_backoff() {
    let sink = Sink::start().await;
    sink.set_behaviour(|_, nth| {
        if nth < 2 {
            Reply::status(500)
        } else {
            Reply::ok()
        }
    });
    let stack = Stack::start(&redis_url()).await;
    let ns = random_name("e2e-retry");
    stack
        .create_namespace(namespace(
            &ns,
            1,
            5,
            json!([http_target("a", &sink.url("/a"))]),
        ))
        .await;
    let _worker = stack.spawn_worker(&[]).await;
    let id = stack
        .write(json!({"namespace": ns, "payload": {"x": 1}}))
        .await;
    assert!(
        sink.wait_until(Duration::from_secs(10), |r| r
            .iter()
            .any(|r| r.status == 200))
            .await
    );
    let tries = sink.requests_on("/a");
    assert_eq!(tries.len(), 3, "{tries:?}");
    assert!(tries.iter().all(|t| t.message_id() == id));
    assert_eq!(
        tries.iter().map(|t| t.attempt()).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    // Policy: 200 ms, then 400 ms (exponential, no jitter).
    let gap1 = tries[1].at_ms - tries[0].at_ms;
    let gap2 = tries[2].at_ms - tries[1].at_ms;
    assert!((200..700).contains(&gap1), "first gap {gap1} ms");
    assert!((400..900).contains(&gap2), "second gap {gap2} ms");
    delete_namespace_keys(&redis_client(&redis_url()).await, &ns).await;
}

#[tokio::test]
async fn exhausted_retries_go_to_the_dlq_with_history_and_a_requeue_delivers_them() {
    let sink = Sink::start().await;
    let healthy = Arc::new(AtomicBool::new(false));
    let h = healthy.clone();
    sink.set_behaviour(move |r, _| match r.path.as_str() {
        "/gone" => Reply::status(404),
        _ if h.load(Ordering::SeqCst) => Reply::ok(),
        _ => Reply::status(503),
    });
    let stack = Stack::start(&redis_url()).await;
    let ns = random_name("e2e-dlq");
    stack
        .create_namespace(namespace(
            &ns,
            1,
            2,
            json!([
                http_target("flaky", &sink.url("/flaky")),
                http_target("gone", &sink.url("/gone"))
            ]),
        ))
        .await;
    let _worker = stack.spawn_worker(&[]).await;
    let redis = redis_client(&redis_url()).await;

    let flaky_id = stack
        .write(json!({"namespace": ns, "payload": {"k": 1}, "target": {"identifier": "flaky"}}))
        .await;
    let gone_id = stack
        .write(json!({"namespace": ns, "payload": {"k": 2}, "target": {"identifier": "gone"}}))
        .await;

    let mut records = Vec::new();
    for _ in 0..100 {
        records = dlq_records(&redis, &ns).await;
        if records.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(records.len(), 2, "{records:?}");
    let flaky = records
        .iter()
        .find(|r| r["id"] == flaky_id)
        .expect("flaky record");
    assert_eq!(flaky["reason"], "max_attempts");
    assert_eq!(flaky["target"], "flaky");
    assert_eq!(flaky["attempts"], "2");
    assert!(flaky["error"].contains("503"), "{}", flaky["error"]);
    let env: Value = serde_json::from_str(&flaky["env"]).unwrap();
    assert_eq!(env["history"].as_array().unwrap().len(), 2, "{env}");
    let gone = records
        .iter()
        .find(|r| r["id"] == gone_id)
        .expect("gone record");
    assert_eq!(gone["reason"], "permanent");
    assert_eq!(gone["attempts"], "1");
    assert_eq!(sink.requests_on("/gone").len(), 1, "a 404 is never retried");
    assert_eq!(sink.requests_on("/flaky").len(), 2);

    // The operator fixes the target and requeues.
    healthy.store(true, Ordering::SeqCst);
    let (code, body) = stack
        .admin_post(
            &format!("/api/v1/wal/namespace/{ns}/dlq/{flaky_id}/requeue"),
            json!({}),
        )
        .await;
    assert!(
        (200..300).contains(&code),
        "requeue answered {code}: {body}"
    );
    assert!(
        sink.wait_until(Duration::from_secs(10), |r| r
            .iter()
            .any(|r| r.path == "/flaky" && r.status == 200))
            .await
    );
    let flaky_deliveries = sink.delivered_on("/flaky");
    assert_eq!(flaky_deliveries.len(), 1);
    assert_eq!(flaky_deliveries[0].message_id(), flaky_id);
    assert_eq!(
        dlq_records(&redis, &ns).await.len(),
        1,
        "only the 404 is left"
    );
    delete_namespace_keys(&redis, &ns).await;
}

#[tokio::test]
async fn a_failing_target_is_retried_alone_while_the_healthy_one_gets_each_message_once() {
    let sink = Sink::start().await;
    let bad_ok = Arc::new(AtomicBool::new(false));
    let b = bad_ok.clone();
    sink.set_behaviour(move |r, _| {
        if r.path == "/bad" && !b.load(Ordering::SeqCst) {
            Reply::status(500)
        } else {
            Reply::ok()
        }
    });
    let stack = Stack::start(&redis_url()).await;
    let ns = random_name("e2e-two");
    stack
        .create_namespace(namespace(
            &ns,
            2,
            10,
            json!([
                http_target("good", &sink.url("/good")),
                http_target("bad", &sink.url("/bad"))
            ]),
        ))
        .await;
    let worker = stack
        .spawn_worker(&[
            ("WAL_BREAKER_MIN_CALLS", "3"),
            ("WAL_BREAKER_COOLDOWN_MS", "500"),
        ])
        .await;
    let n = 40;
    let ids = stack
        .write_batch(
            (0..n)
                .map(|i| json!({"namespace": ns, "payload": {"i": i}}))
                .collect(),
        )
        .await;
    assert!(
        sink.wait_until(Duration::from_secs(10), |r| delivered(r, "/good") >= n)
            .await
    );
    // The breaker opened: deliveries to `bad` were held back without attempts.
    let mut paused = 0.0;
    for _ in 0..50 {
        let m = worker.metrics().await;
        paused = metric_sum(
            &m,
            "wal_delivery_attempts_total",
            &[("target", "bad"), ("outcome", "paused")],
        );
        if paused > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(paused > 0.0, "the breaker never paused `bad`");
    bad_ok.store(true, Ordering::SeqCst);
    assert!(
        sink.wait_until(Duration::from_secs(20), |r| distinct_delivered(r, "/bad")
            .len()
            >= n)
            .await,
        "bad caught up with only {}",
        sink.delivered_on("/bad").len()
    );
    let good = sink.delivered_on("/good");
    assert_eq!(good.len(), n, "healthy target got duplicates");
    let mut good_ids: Vec<String> = good.iter().map(|r| r.message_id()).collect();
    good_ids.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(good_ids, want);
    let mut bad_ids: Vec<String> = sink
        .delivered_on("/bad")
        .iter()
        .map(|r| r.message_id())
        .collect();
    bad_ids.sort();
    bad_ids.dedup();
    assert_eq!(bad_ids, want);
    // Closed again.
    let m = worker.metrics().await;
    assert_eq!(
        metric_sum(&m, "wal_circuit_open", &[("target", "bad")]),
        0.0,
        "{m}"
    );
    delete_namespace_keys(&redis_client(&redis_url()).await, &ns).await;
}

#[tokio::test]
async fn the_postgres_target_applies_a_redelivered_entry_once() {
    use sea_orm::{ConnectionTrait, Database, Statement};
    let pg = Database::connect(postgres_url()).await.unwrap();
    let table = random_name("e2e_orders").replace('-', "_");
    pg.execute_unprepared(&format!(
        "CREATE TABLE {table} (id text primary key, amount int not null)"
    ))
    .await
    .unwrap();
    let stack = Stack::start(&redis_url()).await;
    let ns = random_name("e2e-pg");
    stack
        .create_namespace(namespace(
            &ns,
            1,
            3,
            json!([{"identifier": "db", "type": "database",
                    "config": {"dsnEnv": "WAL_TEST_E2E_PG_DSN", "table": table, "operation": "insert", "timeoutMs": 2000}}]),
        ))
        .await;
    let worker = stack
        .spawn_worker(&[("WAL_TEST_E2E_PG_DSN", &postgres_url())])
        .await;
    stack
        .write(json!({"namespace": ns, "payload": {"id": "o-1", "amount": 5}}))
        .await;

    let delivered_count =
        |m: &str| metric_sum(m, "wal_messages_delivered_total", &[("target", "db")]);
    let mut ok = false;
    for _ in 0..100 {
        if delivered_count(&worker.metrics().await) >= 1.0 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "first delivery never happened");

    // Force a redelivery of the very same entry: append it again.
    let redis = redis_client(&redis_url()).await;
    let stream = NamespaceKeys::new(&ns).stream(0);
    let entries: Vec<(String, std::collections::HashMap<String, String>)> =
        redis.xrange(&stream, "-", "+", None).await.unwrap();
    let (_, fields) = entries.into_iter().next().expect("the entry");
    let _: String = redis
        .xadd(
            &stream,
            false,
            None,
            "*",
            vec![("id", fields["id"].clone()), ("env", fields["env"].clone())],
        )
        .await
        .unwrap();
    let mut twice = false;
    for _ in 0..100 {
        if delivered_count(&worker.metrics().await) >= 2.0 {
            twice = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(twice, "the redelivered entry was not handled");
    let rows = pg
        .query_one(Statement::from_string(
            pg.get_database_backend(),
            format!("SELECT count(*) AS n FROM {table}"),
        ))
        .await
        .unwrap()
        .unwrap();
    let n: i64 = rows.try_get("", "n").unwrap();
    assert_eq!(n, 1, "the mutation was applied twice");
    assert!(dlq_records(&redis, &ns).await.is_empty());
    pg.execute_unprepared(&format!("DROP TABLE {table}"))
        .await
        .unwrap();
    delete_namespace_keys(&redis, &ns).await;
}

#[tokio::test]
async fn an_entry_is_acknowledged_only_once_its_outcome_is_recorded() {
    let sink = Sink::start().await;
    // First attempt: held for 1.5 s, then 500; then 200.
    sink.set_behaviour(|_, nth| {
        if nth == 0 {
            Reply::status(500).after(Duration::from_millis(1_500))
        } else {
            Reply::ok()
        }
    });
    let stack = Stack::start(&redis_url()).await;
    let ns = random_name("e2e-ack");
    let mut body = namespace(&ns, 1, 3, json!([http_target("slow", &sink.url("/slow"))]));
    body["retryPolicy"]["initialDelayMs"] = json!(1_500);
    body["retryPolicy"]["maxDelayMs"] = json!(5_000);
    body["targetConfigs"][0]["config"]["timeoutMs"] = json!(2_500);
    stack.create_namespace(body).await;
    let _worker = stack.spawn_worker(&[]).await;
    let redis = redis_client(&redis_url()).await;
    let keys = NamespaceKeys::new(&ns);
    stack.write(json!({"namespace": ns, "payload": {}})).await;

    let pending = |redis: Client, stream: String| async move {
        let v: RedisValue = redis
            .xpending(stream, CONSUMER_GROUP, ())
            .await
            .unwrap_or(RedisValue::Null);
        match v {
            RedisValue::Array(items) => items.first().and_then(RedisValue::as_i64).unwrap_or(0),
            _ => 0,
        }
    };
    // While the delivery is in flight: pending, nothing scheduled.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        pending(redis.clone(), keys.stream(0)).await,
        1,
        "acked before its outcome"
    );
    let retries: i64 = redis.zcard(keys.retry()).await.unwrap();
    assert_eq!(retries, 0);
    // After the 500: acknowledged together with the retry member.
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    assert_eq!(pending(redis.clone(), keys.stream(0)).await, 0);
    let retries: i64 = redis.zcard(keys.retry()).await.unwrap();
    assert_eq!(retries, 1, "acknowledged without the retry being recorded");
    assert!(
        sink.wait_until(Duration::from_secs(10), |r| r
            .iter()
            .any(|r| r.status == 200))
            .await
    );
    delete_namespace_keys(&redis, &ns).await;
}

#[tokio::test]
async fn dead_letters_past_their_retention_are_swept_with_their_index() {
    let sink = Sink::start().await;
    sink.set_behaviour(|_, _| Reply::status(400));
    let stack = Stack::start(&redis_url()).await;
    let ns = random_name("e2e-dlq-ttl");
    let mut body = namespace(&ns, 1, 3, json!([http_target("bad", &sink.url("/bad"))]));
    body["dlqConfig"] = json!({"enabled": true, "retentionSeconds": 1});
    stack.create_namespace(body).await;
    let _worker = stack.spawn_worker(&[("WAL_DLQ_SWEEP_MS", "300")]).await;
    let redis = redis_client(&redis_url()).await;
    let keys = NamespaceKeys::new(&ns);
    stack.write(json!({"namespace": ns, "payload": {}})).await;
    let mut seen = false;
    for _ in 0..50 {
        let n: u64 = redis.xlen(keys.dlq()).await.unwrap_or(0);
        if n == 1 {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen, "the 400 was never dead-lettered");
    let mut swept = false;
    for _ in 0..60 {
        let n: u64 = redis.xlen(keys.dlq()).await.unwrap_or(1);
        let idx: u64 = redis.hlen(keys.dlq_index()).await.unwrap_or(1);
        if n == 0 && idx == 0 {
            swept = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(swept, "the dead letter outlived its retention");
    delete_namespace_keys(&redis, &ns).await;
}
