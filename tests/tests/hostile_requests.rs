//! Requests written by an attacker: a writer must never reach outside what
//! the namespace's admin configured, nor pass an IP allow-list by forging a
//! header.

use serde_json::{json, Value};
use wal_tests::gateway::{TestGateway, ADMIN_KEY, WRITE_KEY};
use wal_tests::random_name;

fn namespace(name: &str, ip_allow_list: &[&str]) -> Value {
    json!({
        "name": name,
        "shardConfig": {"partitionCount": 1},
        "targetConfigs": [
            {"identifier": "sink", "type": "http", "config": {"url": "http://127.0.0.1:9/api/hooks/"}},
            {"identifier": "cache", "type": "cache",
             "config": {"urlEnv": "WAL_TEST_CACHE_URL", "keyPrefix": "tenant-a:"}}
        ],
        "accessControl": {"ipAllowList": ip_allow_list}
    })
}

async fn field_error(gw: &TestGateway, body: Value) -> (u16, String) {
    let resp = gw.write(&body).await;
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    (
        status,
        body["error"]["details"]["field"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

#[tokio::test]
async fn a_cache_key_prefix_may_only_extend_the_configured_one() {
    let gw = TestGateway::spawn().await;
    let ns = random_name("hostile");
    gw.create_namespace(&namespace(&ns, &[])).await;
    for escaping in ["wal:{other}:", "", "tenant-", "tenant-b:"] {
        let body = json!({"namespace": ns, "payload": {"id": "x"},
                          "target": {"identifier": "cache", "keyPrefix": escaping}});
        assert_eq!(
            field_error(&gw, body).await,
            (400, "target.keyPrefix".to_string()),
            "{escaping:?}"
        );
    }
    let body = json!({"namespace": ns, "payload": {"id": "x"},
                      "target": {"identifier": "cache", "keyPrefix": "tenant-a:orders:"}});
    assert_eq!(gw.write(&body).await.status().as_u16(), 202);
}

#[tokio::test]
async fn a_path_suffix_with_encoded_dot_segments_is_refused() {
    let gw = TestGateway::spawn().await;
    let ns = random_name("hostile");
    gw.create_namespace(&namespace(&ns, &[])).await;
    for escaping in ["/%2e%2e/admin", "/x/%2E%2e/%2e%2e/admin", "/.%2e/admin"] {
        let body = json!({"namespace": ns, "payload": {},
                          "target": {"identifier": "sink", "pathSuffix": escaping}});
        assert_eq!(
            field_error(&gw, body).await,
            (400, "target.pathSuffix".to_string()),
            "{escaping}"
        );
    }
}

async fn write_from(gw: &TestGateway, ns: &str, forwarded_for: &str) -> u16 {
    gw.client
        .post(gw.url("/api/v1/wal/write"))
        .header("x-api-key", WRITE_KEY)
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({"namespace": ns, "payload": {}, "target": {"identifier": "sink"}}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn the_client_ip_is_the_address_the_trusted_proxy_added() {
    // One proxy in front, which appends the address it saw.
    let (db, _) = wal_tests::gateway::sqlite_store();
    let gw = TestGateway::spawn_with(&wal_tests::redis_url(), &db, |c| {
        c.trust_forwarded_for = true;
    })
    .await;
    let ns = random_name("hostile");
    gw.create_namespace(&namespace(&ns, &["10.1.2.3"])).await;
    // The client forged 10.1.2.3; the proxy appended its real address.
    assert_eq!(write_from(&gw, &ns, "10.1.2.3, 203.0.113.9").await, 403);
    assert_eq!(write_from(&gw, &ns, "203.0.113.9,10.1.2.3").await, 202);
    assert_eq!(write_from(&gw, &ns, "10.1.2.3").await, 202);
    // An address that cannot be read is not a pass.
    assert_eq!(write_from(&gw, &ns, "10.1.2.3, garbage").await, 403);
    drop(gw);

    // A chain of trusted proxies: walk from the right past them.
    let (db, _) = wal_tests::gateway::sqlite_store();
    let gw = TestGateway::spawn_with(&wal_tests::redis_url(), &db, |c| {
        c.trust_forwarded_for = true;
        c.trusted_proxies = vec![
            "127.0.0.1/32".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ];
    })
    .await;
    let ns = random_name("hostile");
    gw.create_namespace(&namespace(&ns, &["198.51.100.7"]))
        .await;
    assert_eq!(
        write_from(&gw, &ns, "10.1.2.3, 198.51.100.7, 10.9.9.9").await,
        202
    );
    assert_eq!(
        write_from(&gw, &ns, "198.51.100.7, 203.0.113.1, 10.9.9.9").await,
        403
    );
    drop(gw);

    // A peer that is not a trusted proxy: its header is not believed.
    let (db, _) = wal_tests::gateway::sqlite_store();
    let gw = TestGateway::spawn_with(&wal_tests::redis_url(), &db, |c| {
        c.trust_forwarded_for = true;
        c.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()];
    })
    .await;
    let ns = random_name("hostile");
    gw.create_namespace(&namespace(&ns, &["198.51.100.7"]))
        .await;
    assert_eq!(write_from(&gw, &ns, "198.51.100.7").await, 403);
    let (status, _) = gw
        .call(
            reqwest::Method::GET,
            "/api/v1/namespaces",
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(status, 200);
}

/// Opens a raw connection to the gateway and sends `head` (request line and
/// headers, possibly unfinished) and `body` (possibly shorter than declared).
async fn raw(gw: &TestGateway, head: &str, body: &[u8]) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    s.flush().await.unwrap();
    s
}

/// What the gateway sends back within `within`: the response head, or
/// `None` if nothing came (the connection is still held open).
async fn answer_within(
    s: &mut tokio::net::TcpStream,
    within: std::time::Duration,
) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(within, s.read(&mut buf)).await {
        Ok(Ok(n)) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        Ok(Err(e)) => Some(format!("closed: {e}")),
        Err(_) => None,
    }
}

fn write_head(key: &str, content_length: usize) -> String {
    format!(
        "POST /api/v1/wal/write HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n\
         x-api-key: {key}\r\ncontent-length: {content_length}\r\n\r\n"
    )
}

#[tokio::test]
async fn an_unknown_key_is_refused_before_the_body_is_read() {
    let gw = TestGateway::spawn().await;
    // 16 MB announced, none sent: the answer must not wait for it.
    let mut s = raw(&gw, &write_head("not-a-key-0123456789", 16_000_000), b"").await;
    let answer = answer_within(&mut s, std::time::Duration::from_secs(3))
        .await
        .expect("answered without reading the body");
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
}

#[tokio::test]
async fn slow_headers_and_slow_bodies_are_cut_off() {
    let (db, _) = wal_tests::gateway::sqlite_store();
    let gw = TestGateway::spawn_with(&wal_tests::redis_url(), &db, |c| {
        c.header_read_timeout_ms = 500;
        c.body_read_timeout_ms = 500;
    })
    .await;
    // Headers that never end: the connection is closed.
    let mut s = raw(&gw, "POST /api/v1/wal/write HTTP/1.1\r\nhost: gw\r\n", b"").await;
    let answer = answer_within(&mut s, std::time::Duration::from_secs(5))
        .await
        .expect("a slowloris connection is not held open");
    assert!(
        answer.is_empty() || answer.starts_with("closed") || answer.starts_with("HTTP/1.1 408"),
        "{answer:?}"
    );
    // A body that stops half-way: 408.
    let mut s = raw(&gw, &write_head(WRITE_KEY, 100), b"{\"namespace\"").await;
    let answer = answer_within(&mut s, std::time::Duration::from_secs(5))
        .await
        .expect("a trickling body is not waited for");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("REQUEST_TIMEOUT"), "{answer}");
}

#[tokio::test]
async fn requests_beyond_the_concurrency_limit_are_refused_at_once() {
    let (db, _) = wal_tests::gateway::sqlite_store();
    let gw = TestGateway::spawn_with(&wal_tests::redis_url(), &db, |c| {
        c.max_concurrent_requests = 2;
        c.body_read_timeout_ms = 10_000;
    })
    .await;
    // Two requests hold their slots (their bodies never finish).
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(raw(&gw, &write_head(WRITE_KEY, 100), b"{").await);
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let resp = gw.write(&json!({"namespace": "any", "payload": {}})).await;
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "SERVICE_OVERLOADED", "{body}");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    // Probes still answer.
    let (status, _) = gw
        .call(reqwest::Method::GET, "/api/v1/health/liveness", None, None)
        .await;
    assert_eq!(status, 200);
    drop(held);
}

#[tokio::test]
async fn two_namespaces_cannot_share_a_kafka_topic_or_an_sqs_queue() {
    let gw = TestGateway::spawn().await;
    let topic = random_name("shared-topic");
    let kafka = |name: &str| {
        json!({"name": name, "backend": "kafka", "topicName": topic,
               "backendConfig": {"brokers": ["127.0.0.1:9"]},
               "targetConfigs": [{"identifier": "sink", "type": "http",
                                  "config": {"url": "http://127.0.0.1:9/"}}]})
    };
    let first = random_name("owner");
    gw.create_namespace(&kafka(&first)).await;
    let second = random_name("intruder");
    let (status, body) = gw
        .call(
            reqwest::Method::POST,
            "/api/v1/namespaces",
            Some(ADMIN_KEY),
            Some(&kafka(&second)),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["details"]["field"], "topicName", "{body}");
    // Nor by renaming an existing namespace's topic onto it.
    let mut other = kafka(&second);
    other["topicName"] = json!(random_name("own-topic"));
    gw.create_namespace(&other).await;
    let (status, body) = gw
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/namespaces/{second}"),
            Some(ADMIN_KEY),
            Some(&json!({"topicName": topic})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    // SQS: the same queue, named or by URL.
    let sqs = |name: &str, queue: &str| {
        json!({"name": name, "backend": "sqs", "topicName": queue,
               "backendConfig": {"endpointUrl": "http://127.0.0.1:9", "region": "us-east-1"},
               "targetConfigs": [{"identifier": "sink", "type": "http",
                                  "config": {"url": "http://127.0.0.1:9/"}}]})
    };
    let queue = random_name("q");
    gw.create_namespace(&sqs(&random_name("sqs-a"), &queue))
        .await;
    let (status, _) = gw
        .call(
            reqwest::Method::POST,
            "/api/v1/namespaces",
            Some(ADMIN_KEY),
            Some(&sqs(&random_name("sqs-b"), &queue)),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_namespace_may_name_only_the_secrets_the_policy_allows() {
    // Test gateways allow variables starting with WAL_TEST_ and files in
    // the temp directory (production: WAL_SECRET_ and /run/secrets/wal).
    let gw = TestGateway::spawn().await;
    let create = |config: Value, kind: &str| {
        json!({
            "name": random_name("secrets"),
            "targetConfigs": [{"identifier": "t", "type": kind, "config": config}]
        })
    };
    let refused = [
        (
            create(json!({"urlEnv": "WAL_DATABASE_URL"}), "cache"),
            "targetConfigs[0].config.urlEnv",
        ),
        (
            create(
                json!({"dsnFile": "/var/run/secrets/kubernetes.io/serviceaccount/token",
                       "table": "t", "operation": "insert"}),
                "database",
            ),
            "targetConfigs[0].config.dsnFile",
        ),
        (
            create(
                json!({"url": "https://example.com/hook",
                       "signingSecretFile": format!("{}/../etc/passwd", std::env::temp_dir().display())}),
                "webhook",
            ),
            "targetConfigs[0].config.signingSecretFile",
        ),
    ];
    for (body, field) in refused {
        let (status, answer) = gw
            .call(
                reqwest::Method::POST,
                "/api/v1/namespaces",
                Some(ADMIN_KEY),
                Some(&body),
            )
            .await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["error"]["details"]["field"], field, "{answer}");
    }
    let kafka = json!({"name": random_name("secrets"), "backend": "kafka",
        "backendConfig": {"brokersEnv": "HOME"}});
    let (status, answer) = gw
        .call(
            reqwest::Method::POST,
            "/api/v1/namespaces",
            Some(ADMIN_KEY),
            Some(&kafka),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        answer["error"]["details"]["field"],
        "backendConfig.brokersEnv"
    );
    // Allowed references are accepted (the variable need not exist yet).
    gw.create_namespace(&create(json!({"urlEnv": "WAL_TEST_ANY_CACHE"}), "cache"))
        .await;
}
