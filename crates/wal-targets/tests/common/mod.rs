//! Helpers shared by the integration tests: envelopes, validated target
//! configurations, random names, secrets in per-test environment variables,
//! and the endpoints of the shared PostgreSQL and Redis
//! (`WAL_TEST_POSTGRES_URL`, `WAL_TEST_REDIS_URL`, localhost defaults).

#![allow(dead_code)]

use std::sync::Arc;

use rand::Rng;
use serde_json::value::RawValue;
use wal_core::request::TargetRef;
use wal_core::Envelope;
use wal_namespace::targets::{TargetConfig, TargetConfigSpec};
use wal_namespace::FieldErrors;
use wal_targets::{Delivery, DeliveryOutcome, Target, TargetFactory};

/// A W3C trace context carried by every test envelope.
pub const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// The shared PostgreSQL.
pub fn postgres_url() -> String {
    std::env::var("WAL_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// The shared Redis.
pub fn redis_url() -> String {
    std::env::var("WAL_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// `prefix_<10 random lowercase letters and digits>` (a valid SQL identifier
/// and environment variable name when `prefix` is).
pub fn random_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let suffix: String = (0..10)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{prefix}_{suffix}")
}

/// A loopback port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Puts `value` in a new environment variable and returns its name.
/// (nextest runs each test in its own process.)
pub fn secret_env(value: &str) -> String {
    let name = random_name("WAL_TEST_SECRET").to_uppercase();
    std::env::set_var(&name, value);
    name
}

/// A validated target configuration from its wire JSON.
pub fn target_config(spec: serde_json::Value) -> TargetConfig {
    let spec: TargetConfigSpec = serde_json::from_value(spec).expect("a target spec");
    let mut errors = FieldErrors::default();
    spec.validate("target", &mut errors)
        .unwrap_or_else(|| panic!("invalid target config: {errors:?}"))
}

/// An envelope of namespace `namespace` carrying `payload` byte for byte.
pub fn envelope(namespace: &str, payload: &str) -> Envelope {
    let mut env: Envelope = serde_json::from_value(serde_json::json!({
        "v": wal_core::envelope::ENVELOPE_VERSION,
        "id": wal_core::MessageId::generate(),
        "namespace": namespace,
        "payload": {},
        "targets": [{"identifier": "t"}],
        "lifecycle": {"retryPolicy": {}, "enableDlq": true},
        "partition": 0,
        "requestId": "req-test",
        "trace": {"traceparent": TRACEPARENT, "tracestate": "wal=1"},
        "createdAtMs": 1,
        "dueAtMs": 2,
        "attempt": 0
    }))
    .expect("a test envelope");
    env.payload = RawValue::from_string(payload.to_string()).expect("valid JSON payload");
    env
}

/// Builds `spec` in `namespace` with a fresh factory.
pub async fn build(namespace: &str, spec: serde_json::Value) -> Arc<dyn Target> {
    TargetFactory::new()
        .with_secret_policy(wal_namespace::SecretPolicy::new(
            "WAL_TEST_",
            std::env::temp_dir(),
        ))
        .build(namespace, &target_config(spec))
        .await
        .expect("target builds")
}

/// Delivers `env` to `target` (attempt `attempt`) with the reference `tref`.
pub async fn deliver(
    target: &dyn Target,
    env: &Envelope,
    tref: &TargetRef,
    attempt: u32,
) -> DeliveryOutcome {
    target
        .deliver(Delivery {
            envelope: env,
            target: tref,
            attempt,
        })
        .await
}

/// Runs `cleanup` on a fresh runtime in another thread: usable from `Drop`,
/// also while a failed test unwinds.
pub fn run_cleanup<F>(cleanup: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let _ = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(cleanup)
    })
    .join();
}

/// Asserts `outcome` is `Retry` and returns its reason.
#[track_caller]
pub fn assert_retry(outcome: &DeliveryOutcome) -> String {
    match outcome {
        DeliveryOutcome::Retry { reason, .. } => reason.clone(),
        other => panic!("expected Retry, got {other:?}"),
    }
}

/// Asserts `outcome` is `Permanent` and returns its reason.
#[track_caller]
pub fn assert_permanent(outcome: &DeliveryOutcome) -> String {
    match outcome {
        DeliveryOutcome::Permanent { reason } => reason.clone(),
        other => panic!("expected Permanent, got {other:?}"),
    }
}
