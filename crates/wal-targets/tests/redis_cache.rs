//! Cache targets against the shared Redis: each test writes under its own
//! random key prefix and deletes its keys at the end, also when it fails.

mod common;

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use fred::prelude::*;
use serde_json::json;
use wal_core::request::TargetRef;
use wal_targets::{DeliveryOutcome, Target, TargetFactory};

async fn connect() -> Client {
    let client = Builder::from_config(Config::from_url(&redis_url()).unwrap())
        .build()
        .unwrap();
    client.init().await.expect("the test Redis");
    client
}

/// A random key prefix; its keys are deleted when the fixture is dropped.
struct Fixture {
    prefix: String,
    redis: Client,
}

impl Fixture {
    async fn new() -> Self {
        Self {
            prefix: format!("{}:", random_name("wal-test")),
            redis: connect().await,
        }
    }

    async fn target(&self, config: serde_json::Value) -> Arc<dyn Target> {
        let mut c = json!({"urlEnv": secret_env(&redis_url()), "keyPrefix": self.prefix});
        c.as_object_mut()
            .unwrap()
            .extend(config.as_object().unwrap().clone());
        build(
            "ns",
            json!({"identifier": "cache", "type": "cache", "config": c}),
        )
        .await
    }

    fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let pattern = format!("{}*", self.prefix);
        let prefix = self.prefix.clone();
        run_cleanup(async move {
            let redis = connect().await;
            let keys: Vec<String> = redis
                .custom(fred::cmd!("KEYS"), vec![pattern])
                .await
                .unwrap_or_default();
            let mine: Vec<String> = keys
                .into_iter()
                .filter(|k| k.starts_with(&prefix))
                .collect();
            if !mine.is_empty() {
                let _: Result<(), _> = redis.del(mine).await;
            }
        });
    }
}

const PAYLOAD: &str = r#"{"key": "u1", "name": "Ann", "age": 41, "tags": ["a"]}"#;

#[tokio::test]
async fn set_writes_the_payload_with_a_ttl() {
    let fx = Fixture::new().await;
    let target = fx.target(json!({"ttlSeconds": 60})).await;
    let env = envelope("ns", PAYLOAD);
    assert_eq!(
        deliver(&*target, &env, &TargetRef::named("cache"), 1).await,
        DeliveryOutcome::Delivered
    );
    let value: String = fx.redis.get(fx.key("u1")).await.unwrap();
    assert_eq!(value, PAYLOAD);
    let ttl: i64 = fx.redis.ttl(fx.key("u1")).await.unwrap();
    assert!(ttl > 0 && ttl <= 60, "{ttl}");
}

#[tokio::test]
async fn key_fields_prefix_overrides_and_the_message_id_fallback() {
    let fx = Fixture::new().await;
    let target = fx.target(json!({"keyField": "id"})).await;
    let tref = TargetRef::named("cache");

    let numbered = envelope("ns", r#"{"id": 42}"#);
    assert_eq!(
        deliver(&*target, &numbered, &tref, 1).await,
        DeliveryOutcome::Delivered
    );
    let ttl: i64 = fx.redis.ttl(fx.key("42")).await.unwrap();
    assert_eq!(ttl, -1, "no ttlSeconds, no expiry");

    let overridden = TargetRef {
        key_prefix: Some(fx.key("other:")),
        ..TargetRef::named("cache")
    };
    let env = envelope("ns", r#"{"id": "x"}"#);
    assert_eq!(
        deliver(&*target, &env, &overridden, 1).await,
        DeliveryOutcome::Delivered
    );
    let exists: bool = fx.redis.exists(fx.key("other:x")).await.unwrap();
    assert!(exists);

    let keyless = envelope("ns", r#"{"name": "n"}"#);
    assert_eq!(
        deliver(&*target, &keyless, &tref, 1).await,
        DeliveryOutcome::Delivered
    );
    let value: String = fx.redis.get(fx.key(&keyless.id.to_string())).await.unwrap();
    assert_eq!(value, r#"{"name": "n"}"#);

    let bad_key = envelope("ns", r#"{"id": {"no": 1}}"#);
    assert_permanent(&deliver(&*target, &bad_key, &tref, 1).await);
}

#[tokio::test]
async fn a_request_key_prefix_may_only_extend_the_configured_one() {
    let fx = Fixture::new().await;
    // The victim: a key outside the configured prefix (e.g. the WAL's own state).
    let victim = format!("{}-victim:x", fx.prefix.trim_end_matches(':'));
    let _: () = fx
        .redis
        .set(&victim, "untouched", None, None, false)
        .await
        .unwrap();
    for op in ["set", "del"] {
        let target = fx.target(json!({"operation": op, "keyField": "id"})).await;
        let escaping = TargetRef {
            key_prefix: Some(format!("{}-victim:", fx.prefix.trim_end_matches(':'))),
            ..TargetRef::named("cache")
        };
        let env = envelope("ns", r#"{"id": "x"}"#);
        let reason = assert_permanent(&deliver(&*target, &env, &escaping, 1).await);
        assert!(reason.contains("keyPrefix"), "{op}: {reason}");
        let value: Option<String> = fx.redis.get(&victim).await.unwrap();
        assert_eq!(
            value.as_deref(),
            Some("untouched"),
            "{op} reached outside its prefix"
        );
    }
    let _: () = fx.redis.del(&victim).await.unwrap();
}

#[tokio::test]
async fn hset_writes_fields_and_del_removes() {
    let fx = Fixture::new().await;
    let hset = fx
        .target(json!({"operation": "hset", "ttlSeconds": 120}))
        .await;
    let hset_no_ttl = fx.target(json!({"operation": "hset"})).await;
    let del = fx.target(json!({"operation": "del"})).await;
    let tref = TargetRef::named("cache");

    let env = envelope("ns", PAYLOAD);
    assert_eq!(
        deliver(&*hset, &env, &tref, 1).await,
        DeliveryOutcome::Delivered
    );
    let fields: HashMap<String, String> = fx.redis.hgetall(fx.key("u1")).await.unwrap();
    let want: HashMap<String, String> = [
        ("key", "u1"),
        ("name", "Ann"),
        ("age", "41"),
        ("tags", r#"["a"]"#),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(fields, want);
    let ttl: i64 = fx.redis.ttl(fx.key("u1")).await.unwrap();
    assert!(ttl > 0 && ttl <= 120, "{ttl}");

    let more = envelope("ns", r#"{"key": "u2", "a": "1"}"#);
    assert_eq!(
        deliver(&*hset_no_ttl, &more, &tref, 1).await,
        DeliveryOutcome::Delivered
    );
    let ttl: i64 = fx.redis.ttl(fx.key("u2")).await.unwrap();
    assert_eq!(ttl, -1);

    let gone = envelope("ns", r#"{"key": "u1"}"#);
    assert_eq!(
        deliver(&*del, &gone, &tref, 1).await,
        DeliveryOutcome::Delivered
    );
    let exists: bool = fx.redis.exists(fx.key("u1")).await.unwrap();
    assert!(!exists);
    // Deleting a missing key is fine.
    assert_eq!(
        deliver(&*del, &gone, &tref, 2).await,
        DeliveryOutcome::Delivered
    );
}

#[tokio::test]
async fn wrong_types_and_unusable_payloads_are_permanent() {
    let fx = Fixture::new().await;
    let set = fx.target(json!({})).await;
    let hset = fx
        .target(json!({"operation": "hset", "ttlSeconds": 5}))
        .await;
    let hset_no_ttl = fx.target(json!({"operation": "hset"})).await;
    let tref = TargetRef::named("cache");

    let env = envelope("ns", r#"{"key": "s", "v": 1}"#);
    assert_eq!(
        deliver(&*set, &env, &tref, 1).await,
        DeliveryOutcome::Delivered
    );
    for target in [&hset, &hset_no_ttl] {
        let reason = assert_permanent(&deliver(&**target, &env, &tref, 1).await);
        assert!(reason.contains("WRONGTYPE"), "{reason}");
    }

    let array = envelope("ns", "[1, 2]");
    assert_permanent(&deliver(&*hset, &array, &tref, 1).await);
    // SET takes any payload, keyed by the message id.
    assert_eq!(
        deliver(&*set, &array, &tref, 1).await,
        DeliveryOutcome::Delivered
    );
}

#[tokio::test]
async fn an_unreachable_redis_is_retried_within_the_timeout() {
    let url = format!("redis://127.0.0.1:{}", closed_port());
    let spec = json!({"identifier": "cache", "type": "cache",
                      "config": {"urlEnv": secret_env(&url), "timeoutMs": 500}});
    let factory = TargetFactory::new().with_secret_policy(wal_namespace::SecretPolicy::new(
        "WAL_TEST_",
        std::env::temp_dir(),
    ));
    let target = factory.build("ns", &target_config(spec)).await.unwrap();
    assert_eq!(target.timeout(), Duration::from_millis(500));
    let env = Arc::new(envelope("ns", PAYLOAD));
    // Concurrent first deliveries all give up within the timeout.
    let start = Instant::now();
    let tasks: Vec<_> = (1..=5)
        .map(|attempt| {
            let (target, env) = (target.clone(), env.clone());
            tokio::spawn(async move {
                deliver(&*target, &env, &TargetRef::named("cache"), attempt).await
            })
        })
        .collect();
    for t in tasks {
        assert_retry(&t.await.unwrap());
    }
    assert!(start.elapsed() < Duration::from_millis(900));
    for attempt in 1..=3 {
        let start = Instant::now();
        assert_retry(&deliver(&*target, &env, &TargetRef::named("cache"), attempt).await);
        assert!(
            start.elapsed() < Duration::from_millis(900),
            "attempt {attempt} took {:?}",
            start.elapsed()
        );
    }
    factory.shutdown().await;
}

/// A `redis-server` of this test on `port` (no persistence), killed on drop.
struct PrivateRedis(tokio::process::Child);

impl PrivateRedis {
    async fn start(port: u16) -> Self {
        let child = tokio::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server must be installed");
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self(child)
    }

    async fn stop(mut self) {
        self.0.kill().await.expect("kill redis-server");
    }
}

/// Delivers until `Delivered` (at most 5 s), returning how many attempts it took.
async fn deliver_eventually(target: &dyn Target, payload: &str) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(5);
    for attempt in 1.. {
        let env = envelope("ns", payload);
        match deliver(target, &env, &TargetRef::named("cache"), attempt).await {
            DeliveryOutcome::Delivered => return attempt,
            other => assert!(Instant::now() < deadline, "still {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    unreachable!()
}

#[tokio::test]
async fn a_redis_that_comes_back_is_used_again() {
    let port = closed_port();
    let url = format!("redis://127.0.0.1:{port}");
    let spec = json!({"identifier": "cache", "type": "cache",
                      "config": {"urlEnv": secret_env(&url), "timeoutMs": 1000}});
    let target = build("ns", spec).await;
    let payload = r#"{"key": "k", "v": 1}"#;

    // Down when the worker starts.
    let env = envelope("ns", payload);
    assert_retry(&deliver(&*target, &env, &TargetRef::named("cache"), 1).await);

    let redis = PrivateRedis::start(port).await;
    deliver_eventually(&*target, payload).await;

    // Lost after having been up: retried at once, not after the timeout.
    redis.stop().await;
    let start = Instant::now();
    assert_retry(&deliver(&*target, &env, &TargetRef::named("cache"), 2).await);
    assert!(start.elapsed() < Duration::from_millis(1500));

    let _redis = PrivateRedis::start(port).await;
    deliver_eventually(&*target, payload).await;
}
