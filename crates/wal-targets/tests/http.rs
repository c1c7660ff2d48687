//! HTTP and webhook targets against an axum server running in the test.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use common::*;
use serde_json::json;
use wal_core::request::TargetRef;
use wal_targets::{verify_signature, DeliveryOutcome, TargetBuildError, TargetFactory};

/// One request the server saw.
#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
}

impl Seen {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no header {name}"))
            .to_str()
            .unwrap()
    }
}

/// A server on 127.0.0.1:0 recording every request. The last path segment
/// chooses the answer: a status code (`/status/503`), `slow` (sleeps 3 s)
/// or anything else (200).
struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    async fn start() -> Self {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let rec = seen.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let rec = rec.clone();
                async move {
                    rec.lock().unwrap().push(Seen {
                        method,
                        path: uri.path().to_string(),
                        query: uri.query().map(str::to_string),
                        headers,
                        body,
                    });
                    answer(uri.path()).await
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, seen }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn answer(path: &str) -> Response {
    let last = path.rsplit('/').next().unwrap_or("");
    if last == "slow" {
        tokio::time::sleep(Duration::from_secs(3)).await;
        return StatusCode::OK.into_response();
    }
    match last
        .parse::<u16>()
        .ok()
        .and_then(|c| StatusCode::from_u16(c).ok())
    {
        Some(StatusCode::TOO_MANY_REQUESTS) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "3")],
            "slow down",
        )
            .into_response(),
        Some(StatusCode::FOUND) => {
            (StatusCode::FOUND, [("location", "http://127.0.0.1:1/")], "").into_response()
        }
        Some(code) => (code, format!("answer {code}")).into_response(),
        None => (StatusCode::OK, "ok").into_response(),
    }
}

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// Odd spacing and a number JSON parsers round: must arrive byte for byte.
const PAYLOAD: &str = r#"{ "order":7,  "amount": 1.000000000000000001, "note":"é" }"#;

fn webhook(url: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut config = json!({
        "url": url,
        "headers": {"X-Source": "wal", "X-Tenant": "configured"},
        "timeoutMs": 1000,
        "allowedOverrideHeaders": ["x-tenant"],
        "signingSecretEnv": secret_env(SECRET),
    });
    config
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({"identifier": "hook", "type": "webhook", "config": config})
}

fn http(url: &str, timeout_ms: u64) -> serde_json::Value {
    json!({"identifier": "api", "type": "http",
           "config": {"url": url, "method": "PUT", "timeoutMs": timeout_ms}})
}

#[tokio::test]
async fn webhook_delivers_the_payload_signed_with_wal_headers_and_overrides() {
    let server = Server::start().await;
    let target = build("orders", webhook(&server.url("/hooks?v=1"), json!({}))).await;
    let env = envelope("orders", PAYLOAD);
    let tref = TargetRef {
        path_suffix: Some("/orders/7".into()),
        headers: Some(BTreeMap::from([("X-Tenant".into(), "acme".into())])),
        ..TargetRef::named("hook")
    };

    assert_eq!(
        deliver(&*target, &env, &tref, 2).await,
        DeliveryOutcome::Delivered
    );

    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    let req = &seen[0];
    let id = env.id.to_string();
    assert_eq!(req.method, Method::POST);
    assert_eq!(req.path, "/hooks/orders/7");
    assert_eq!(req.query.as_deref(), Some("v=1"));
    assert_eq!(req.body.as_ref(), PAYLOAD.as_bytes());
    assert_eq!(req.header("content-type"), "application/json");
    assert_eq!(req.header("idempotency-key"), id);
    assert_eq!(req.header("x-wal-message-id"), id);
    assert_eq!(req.header("x-wal-attempt"), "2");
    assert_eq!(req.header("x-wal-namespace"), "orders");
    assert_eq!(req.header("traceparent"), TRACEPARENT);
    assert_eq!(req.header("tracestate"), "wal=1");
    assert_eq!(req.header("x-source"), "wal");
    assert_eq!(req.header("x-tenant"), "acme");
    assert_eq!(req.header("webhook-id"), id);
    let ts: u64 = req.header("webhook-timestamp").parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(ts.abs_diff(now) < 60);
    let sig = req.header("webhook-signature");
    assert!(sig.starts_with("v1,"));
    assert!(verify_signature(SECRET, &id, ts, &req.body, sig));
    assert!(!verify_signature(SECRET, &id, ts + 1, &req.body, sig));
}

#[tokio::test]
async fn envelope_body_mode_sends_the_message_and_its_context() {
    let server = Server::start().await;
    let target = build(
        "orders",
        webhook(&server.url("/hooks"), json!({"body": "envelope"})),
    )
    .await;
    let env = envelope("orders", PAYLOAD);
    let outcome = deliver(&*target, &env, &TargetRef::named("hook"), 1).await;
    assert_eq!(outcome, DeliveryOutcome::Delivered);
    let req = &server.seen()[0];
    let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(body["id"], env.id.to_string());
    assert_eq!(body["namespace"], "orders");
    assert_eq!(body["target"], "hook");
    assert_eq!(body["attempt"], 1);
    assert_eq!(body["payload"]["order"], 7);
    assert_eq!(body["requestId"], "req-test");
    assert!(body.get("lifecycle").is_none());
    let raw = std::str::from_utf8(&req.body).unwrap();
    assert!(raw.contains(r#""payload":{ "order":7,  "amount": 1.000000000000000001"#));
    let ts: u64 = req.header("webhook-timestamp").parse().unwrap();
    assert!(verify_signature(
        SECRET,
        &env.id.to_string(),
        ts,
        &req.body,
        req.header("webhook-signature")
    ));
}

#[tokio::test]
async fn plain_http_targets_are_not_signed() {
    let server = Server::start().await;
    let target = build("orders", http(&server.url("/api/"), 1000)).await;
    let env = envelope("orders", PAYLOAD);
    let tref = TargetRef {
        path_suffix: Some("/x".into()),
        ..TargetRef::named("api")
    };
    assert_eq!(
        deliver(&*target, &env, &tref, 1).await,
        DeliveryOutcome::Delivered
    );
    let req = &server.seen()[0];
    assert_eq!(req.method, Method::PUT);
    assert_eq!(req.path, "/api/x");
    assert!(req.headers.get("webhook-signature").is_none());
    assert_eq!(req.header("idempotency-key"), env.id.to_string());
}

#[tokio::test]
async fn a_path_suffix_never_leaves_the_configured_base_path() {
    let server = Server::start().await;
    let target = build("orders", http(&server.url("/api/hooks/"), 1000)).await;
    let env = envelope("orders", PAYLOAD);
    for escape in [
        "/%2e%2e/admin",
        "/%2E%2E/%2e%2e/admin",
        "/x/%2e%2e/%2e%2e/admin",
        "/.%2e/admin",
        "/%2e./admin",
    ] {
        let tref = TargetRef {
            path_suffix: Some(escape.into()),
            ..TargetRef::named("api")
        };
        let reason = assert_permanent(&deliver(&*target, &env, &tref, 1).await);
        assert!(reason.contains("pathSuffix"), "{escape}: {reason}");
    }
    assert!(
        server.seen().is_empty(),
        "nothing may be sent outside /api/hooks/: {:?}",
        server
            .seen()
            .iter()
            .map(|s| s.path.clone())
            .collect::<Vec<_>>()
    );
    // A suffix that stays below the base still works, dots inside names too.
    let tref = TargetRef {
        path_suffix: Some("/orders/v1.2/%2e%2enot-a-dot-segment".into()),
        ..TargetRef::named("api")
    };
    assert_eq!(
        deliver(&*target, &env, &tref, 1).await,
        DeliveryOutcome::Delivered
    );
    assert!(server.seen()[0].path.starts_with("/api/hooks/orders/v1.2/"));
}

#[tokio::test]
async fn statuses_are_classified() {
    let server = Server::start().await;
    let factory = TargetFactory::new().with_secret_policy(wal_namespace::SecretPolicy::new(
        "WAL_TEST_",
        std::env::temp_dir(),
    ));
    let env = envelope("orders", PAYLOAD);
    for (code, want) in [
        (500, "retry"),
        (503, "retry"),
        (408, "retry"),
        (404, "permanent"),
        (400, "permanent"),
        (302, "permanent"),
        (201, "delivered"),
    ] {
        let config = target_config(http(&server.url(&format!("/status/{code}")), 1000));
        let target = factory.build("orders", &config).await.unwrap();
        let outcome = deliver(&*target, &env, &TargetRef::named("api"), 1).await;
        assert_eq!(outcome.label(), want, "{code}: {outcome:?}");
        if want != "delivered" {
            let reason = match &outcome {
                DeliveryOutcome::Retry { reason, .. } | DeliveryOutcome::Permanent { reason } => {
                    reason
                }
                DeliveryOutcome::Delivered => unreachable!(),
            };
            assert!(reason.contains(&code.to_string()), "{reason}");
            if code != 302 {
                assert!(reason.contains(&format!("answer {code}")), "{reason}");
            }
        }
    }
    // The redirect was not followed.
    assert!(server.seen().iter().all(|s| s.path.starts_with("/status/")));
}

#[tokio::test]
async fn too_many_requests_honours_retry_after() {
    let server = Server::start().await;
    let target = build("orders", http(&server.url("/status/429"), 1000)).await;
    let env = envelope("orders", PAYLOAD);
    match deliver(&*target, &env, &TargetRef::named("api"), 1).await {
        DeliveryOutcome::Retry { after, reason } => {
            assert_eq!(after, Some(Duration::from_secs(3)));
            assert!(
                reason.contains("429") && reason.contains("slow down"),
                "{reason}"
            );
        }
        other => panic!("expected Retry, got {other:?}"),
    }
}

#[tokio::test]
async fn a_slow_server_is_retried_after_the_timeout() {
    let server = Server::start().await;
    let target = build("orders", http(&server.url("/slow"), 300)).await;
    assert_eq!(target.timeout(), Duration::from_millis(300));
    let env = envelope("orders", PAYLOAD);
    let start = Instant::now();
    let outcome = deliver(&*target, &env, &TargetRef::named("api"), 1).await;
    let took = start.elapsed();
    let reason = assert_retry(&outcome);
    assert!(reason.contains("timed out"), "{reason}");
    assert!(took < Duration::from_millis(1500), "took {took:?}");
}

#[tokio::test]
async fn a_closed_port_is_retried() {
    let url = format!("http://127.0.0.1:{}/hooks", closed_port());
    let target = build("orders", http(&url, 1000)).await;
    let env = envelope("orders", PAYLOAD);
    let start = Instant::now();
    let reason = assert_retry(&deliver(&*target, &env, &TargetRef::named("api"), 1).await);
    assert!(reason.contains("connect"), "{reason}");
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn headers_not_allowed_to_be_overridden_are_refused() {
    let server = Server::start().await;
    let target = build("orders", webhook(&server.url("/hooks"), json!({}))).await;
    let env = envelope("orders", PAYLOAD);
    let tref = TargetRef {
        headers: Some(BTreeMap::from([("X-Source".into(), "evil".into())])),
        ..TargetRef::named("hook")
    };
    let reason = assert_permanent(&deliver(&*target, &env, &tref, 1).await);
    assert!(reason.contains("X-Source"), "{reason}");
    assert!(server.seen().is_empty());
}

#[tokio::test]
async fn missing_or_bad_signing_secrets_fail_the_build_without_showing_them() {
    let factory = TargetFactory::new().with_secret_policy(wal_namespace::SecretPolicy::new(
        "WAL_TEST_",
        std::env::temp_dir(),
    ));
    let mut spec = webhook("http://127.0.0.1:1/", json!({}));
    spec["config"]["signingSecretEnv"] = json!("WAL_TEST_NOT_SET_ANYWHERE");
    let err = factory
        .build("orders", &target_config(spec.clone()))
        .await
        .err()
        .expect("a build error");
    assert!(
        matches!(err, TargetBuildError::MissingEnv { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("WAL_TEST_NOT_SET_ANYWHERE"),
        "{err}"
    );

    spec["config"]["signingSecretEnv"] = json!(secret_env("whsec_!!not-base64!!"));
    let err = factory
        .build("orders", &target_config(spec))
        .await
        .err()
        .expect("a build error");
    assert!(
        matches!(err, TargetBuildError::InvalidSecret { .. }),
        "{err:?}"
    );
    assert!(!err.to_string().contains("not-base64"), "{err}");
}
