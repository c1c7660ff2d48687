//! Circuit breakers seen from outside: a flaky target that answers on retry
//! is not held back, and a dead target's backlog is parked once — not
//! cycled through Redis every few seconds — until the target answers again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fred::prelude::*;
use serde_json::json;
use wal_tests::e2e::{distinct_delivered, http_target, metric_sum, namespace, Reply, Sink, Stack};
use wal_tests::gateway::{delete_namespace_keys, redis_client};
use wal_tests::{random_name, redis_url};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flaky_target_that_answers_on_retry_is_not_held_back() {
    let sink = Sink::start().await;
    // Every message fails twice, then succeeds.
    let seen: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let s = seen.clone();
    sink.set_behaviour(move |r, _| {
        let mut seen = s.lock().unwrap();
        let n = seen.entry(r.message_id()).or_default();
        *n += 1;
        if *n <= 2 {
            Reply::status(500)
        } else {
            Reply::ok()
        }
    });
    let stack = Stack::start(&redis_url()).await;
    let ns = random_name("flaky");
    let mut body = namespace(&ns, 2, 5, json!([http_target("flaky", &sink.url("/f"))]));
    body["retryPolicy"] = json!({"maxAttempts": 5, "backoffStrategy": "exponential",
                                 "initialDelayMs": 20, "maxDelayMs": 100, "jitterMs": 0});
    stack.create_namespace(body).await;
    // The breaker as configured in production, except the harness's 1 s cooldown.
    let worker = stack.spawn_worker(&[]).await;
    // Let the worker settle in before the clock starts.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let started = Instant::now();
    stack
        .write_batch(
            (0..10)
                .map(|i| json!({"namespace": ns, "payload": {"i": i}}))
                .collect(),
        )
        .await;
    assert!(
        sink.wait_until(Duration::from_secs(30), |r| distinct_delivered(r, "/f")
            .len()
            >= 10)
            .await,
        "not all delivered"
    );
    let took = started.elapsed();
    eprintln!("10 messages failing twice each delivered in {took:?}");
    assert!(
        took < Duration::from_secs(3),
        "a flaky target was held back: {took:?}"
    );
    let m = worker.metrics().await;
    assert_eq!(
        metric_sum(
            &m,
            "wal_delivery_attempts_total",
            &[("target", "flaky"), ("outcome", "paused")]
        ),
        0.0,
        "{m}"
    );
    delete_namespace_keys(&redis_client(&redis_url()).await, &ns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_target_s_backlog_is_parked_once_until_it_answers_again() {
    let sink = Sink::start().await;
    let alive = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let a = alive.clone();
    sink.set_behaviour(move |_, _| {
        if a.load(std::sync::atomic::Ordering::SeqCst) {
            Reply::ok()
        } else {
            Reply::status(500)
        }
    });
    let stack = Stack::start(&redis_url()).await;
    let ns = random_name("dead");
    let mut body = namespace(&ns, 2, 20, json!([http_target("dead", &sink.url("/d"))]));
    body["retryPolicy"] = json!({"maxAttempts": 20, "backoffStrategy": "constant",
                                 "initialDelayMs": 200, "maxDelayMs": 200, "jitterMs": 0});
    stack.create_namespace(body).await;
    let worker = stack
        .spawn_worker(&[
            ("WAL_BREAKER_MIN_CALLS", "5"),
            ("WAL_BREAKER_COOLDOWN_MS", "2000"),
            ("WAL_BREAKER_PROBES", "2"),
        ])
        .await;
    let n = 300;
    stack
        .write_batch(
            (0..n)
                .map(|i| json!({"namespace": ns, "payload": {"i": i}}))
                .collect(),
        )
        .await;
    let paused = || async {
        metric_sum(
            &worker.metrics().await,
            "wal_delivery_attempts_total",
            &[("target", "dead"), ("outcome", "paused")],
        )
    };
    // The breaker opens and the backlog is set aside.
    let raw = redis_client(&redis_url()).await;
    let parked_key = format!("wal:{{{ns}}}:parked");
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut parked = 0u64;
    while Instant::now() < deadline {
        parked = raw.zcard(&parked_key).await.unwrap();
        if parked as usize >= n - 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(parked as usize >= n - 20, "only {parked} of {n} parked");
    // The namespace status shows the breaker and the parked messages.
    let mut status = serde_json::Value::Null;
    // Workers rewrite their reports every 5 s.
    for _ in 0..60 {
        status = stack
            .admin_get(&format!("/api/v1/wal/namespace/{ns}/status"))
            .await
            .1;
        let state = status["workers"][0]["breakers"]["dead"]["state"].as_str();
        if matches!(state, Some("open" | "half_open")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let breaker = status["workers"][0]["breakers"]["dead"]["state"].as_str();
    assert!(matches!(breaker, Some("open" | "half_open")), "{status}");
    assert!(status["parked"].as_u64().unwrap_or(0) > 0, "{status}");

    // For several cooldowns, the parked messages cost nothing: each was
    // paused once, only probes come back.
    let before = paused().await;
    let attempts_before = sink.requests_on("/d").len();
    tokio::time::sleep(Duration::from_secs(7)).await;
    let during = paused().await - before;
    assert!(
        during < 30.0,
        "{during} pauses in 7 s: the backlog of {n} is cycling"
    );
    // (The first wave, admitted before any failure came back, is tried.)
    let attempts = sink.requests_on("/d").len() - attempts_before;
    assert!(
        attempts < 30,
        "{attempts} attempts in 7 s at a dead target with a backlog of {n}"
    );

    // The target answers again: probes succeed, everything is delivered once.
    alive.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(
        sink.wait_until(Duration::from_secs(30), |r| distinct_delivered(r, "/d")
            .len()
            >= n)
            .await,
        "only {} delivered after recovery",
        distinct_delivered(&sink.received(), "/d").len()
    );
    assert_eq!(raw.zcard::<u64, _>(&parked_key).await.unwrap(), 0);
    delete_namespace_keys(&raw, &ns).await;
}
