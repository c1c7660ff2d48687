//! Validation of the namespace wire model: every rule has a failing case
//! asserting the exact field path, plus defaults, access checks and the admin
//! view.

use std::net::IpAddr;
use std::time::Duration;

use serde_json::{json, Value};
use wal_core::backend::Retention;
use wal_core::routing::ShardStrategy;
use wal_namespace::{
    parse_spec, ApiKeyHash, FieldErrors, Namespace, NamespaceSpec, TargetKind, TargetType,
};

const KEY: &str = "orders-writer-key-0001";

fn parse(v: Value) -> Result<NamespaceSpec, FieldErrors> {
    parse_spec(v.to_string().as_bytes())
}

/// Parses and validates `v` (no previous namespace).
fn check(v: Value) -> Result<Namespace, FieldErrors> {
    parse(v)?.validate(None)
}

fn fields(e: &FieldErrors) -> Vec<String> {
    e.errors().iter().map(|e| e.field.clone()).collect()
}

/// Asserts that `v` fails with exactly one error, on `field`; returns its reason.
#[track_caller]
fn fails_on(v: Value, field: &str) -> String {
    let e = check(v).expect_err("should be invalid");
    assert_eq!(fields(&e), vec![field.to_string()], "{e}");
    e.errors()[0].reason.clone()
}

fn with_target(target: Value) -> Value {
    json!({"name": "ns", "targetConfigs": [target]})
}

fn spec_example() -> Value {
    json!({"name": "orders-webhooks", "backend": "redis_streams", "topicName": "orders-webhooks",
     "enabled": true, "maxMessageSize": 1048576, "messageTtlSeconds": 86400,
     "shardConfig": {"strategy": "hash", "partitionCount": 4},
     "retryPolicy": {"maxAttempts": 5, "backoffStrategy": "exponential", "initialDelayMs": 1000,
                     "maxDelayMs": 30000, "jitterMs": 500},
     "dlqConfig": {"enabled": true, "maxRetries": 5},
     "targetConfigs": [
       {"identifier": "orders-api", "type": "http", "enabled": true,
        "config": {"url": "https://orders.internal/hooks", "method": "POST",
                   "headers": {"X-Source": "wal"}, "timeoutMs": 5000}},
       {"identifier": "orders-db", "type": "database", "enabled": true,
        "config": {"dsnEnv": "ORDERS_PG_DSN", "table": "orders", "operation": "upsert", "key": ["id"]}},
       {"identifier": "orders-cache-eu", "type": "cache", "region": "eu-west-1", "enabled": true,
        "config": {"urlEnv": "CACHE_EU_URL", "keyPrefix": "order:", "ttlSeconds": 3600}}],
     "accessControl": {"allowedApiKeys": [KEY],
                       "rateLimits": {"requestsPerMinute": 6000, "burstLimit": 200}}})
}

#[test]
fn spec_example_validates() {
    let ns = check(spec_example()).unwrap();
    assert_eq!(ns.name, "orders-webhooks");
    assert_eq!(ns.targets.len(), 3);
    assert!(matches!(ns.targets[0].kind, TargetKind::Http(_)));
    assert!(matches!(ns.targets[1].kind, TargetKind::Database(_)));
    match &ns.target("orders-cache-eu").unwrap().kind {
        TargetKind::Cache(c) => {
            assert_eq!(c.key_prefix, "order:");
            assert_eq!(c.ttl_seconds, Some(3600));
            assert_eq!(c.key_field(), "key");
            assert_eq!(c.timeout_ms, 2000);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(ns.api_key_hashes, vec![ApiKeyHash::of(KEY)]);
    assert_eq!(ns.rate_limits.requests_per_minute, Some(6000));
    assert_eq!(ns.rate_limits.requests_per_hour, None);
}

#[test]
fn defaults() {
    let ns = check(json!({"name": "orders"})).unwrap();
    assert_eq!(ns.topic_name, "orders");
    assert!(ns.enabled);
    assert_eq!(ns.max_message_size, 1_048_576);
    assert_eq!(ns.message_ttl_seconds, 86_400);
    assert_eq!(ns.max_delay_seconds, 7 * 86_400);
    assert_eq!(ns.dedup_window_seconds, 86_400);
    assert_eq!(ns.shard_config.partition_count, 4);
    assert_eq!(ns.shard_config.strategy, ShardStrategy::Hash);
    assert!(ns.dlq_config.enabled);
    assert_eq!(ns.dlq_config.max_retries, 5);
    assert!(!ns.dlq_config.alert_on_dlq);
    assert_eq!(ns.dlq_config.retention_seconds, 7 * 86_400);
    assert!(ns.api_key_hashes.is_empty() && !ns.has_key_allow_list());
    let s = ns.log_settings();
    assert_eq!(s.namespace, "orders");
    assert_eq!(s.topic, "orders");
    assert_eq!(s.partition_count, 4);
    assert_eq!(s.retention, Retention::MaxLen(1_000_000));
    assert_eq!(s.wait_replicas, 0);
    assert_eq!(s.wait_timeout, Duration::from_millis(1000));
    assert_eq!(s.dedup_window, Duration::from_secs(86_400));
    // An empty object gives the same values as Default.
    assert_eq!(parse(json!({})).unwrap(), NamespaceSpec::default());
}

#[test]
fn log_settings_map_backend_config() {
    let ns = check(json!({"name": "n", "topicName": "n-topic",
        "shardConfig": {"strategy": "round_robin", "partitionCount": 16},
        "dedupWindowSeconds": 60,
        "backendConfig": {"retention": {"maxAgeSeconds": 3600}, "waitReplicas": 2, "waitTimeoutMs": 250}}))
    .unwrap();
    let s = ns.log_settings();
    assert_eq!(s.topic, "n-topic");
    assert_eq!(s.partition_count, 16);
    assert_eq!(s.shard_strategy, ShardStrategy::RoundRobin);
    assert_eq!(s.retention, Retention::MaxAge(Duration::from_secs(3600)));
    assert_eq!(s.wait_replicas, 2);
    assert_eq!(s.wait_timeout, Duration::from_millis(250));
    assert_eq!(s.dedup_window, Duration::from_secs(60));
    let ns = check(json!({"name": "n", "backendConfig": {"retention": {"maxLen": 5000}}})).unwrap();
    assert_eq!(ns.log_settings().retention, Retention::MaxLen(5000));
}

// ---- wire errors (serde, with paths) ----

#[test]
fn unknown_field_at_top_level() {
    let e = parse(json!({"name": "n", "bogus": 1})).unwrap_err();
    assert_eq!(fields(&e), ["bogus"]);
    assert!(e.errors()[0].reason.contains("unknown field"), "{e}");
}

#[test]
fn unknown_and_mistyped_nested_fields() {
    let e = parse(json!({"name": "n", "shardConfig": {"partitions": 3}})).unwrap_err();
    assert_eq!(fields(&e), ["shardConfig.partitions"]);
    let e = parse(json!({"name": "n", "shardConfig": {"partitionCount": "four"}})).unwrap_err();
    assert_eq!(fields(&e), ["shardConfig.partitionCount"]);
    let e = parse(json!({"name": "n", "shardConfig": {"strategy": "sticky"}})).unwrap_err();
    assert_eq!(fields(&e), ["shardConfig.strategy"]);
    let e = parse(json!({"name": "n", "retryPolicy": {"maxAttempt": 3}})).unwrap_err();
    assert_eq!(fields(&e), ["retryPolicy.maxAttempt"]);
    let e =
        parse(json!({"name": "n", "accessControl": {"rateLimits": {"perSecond": 3}}})).unwrap_err();
    assert_eq!(fields(&e), ["accessControl.rateLimits.perSecond"]);
    let e = parse(json!({"name": "n", "targetConfigs": [
        {"identifier": "a", "type": "http", "config": {"url": "http://a"}},
        {"identifier": "b", "type": "ftp"}]}))
    .unwrap_err();
    assert_eq!(fields(&e), ["targetConfigs[1].type"]);
    let e = parse(
        json!({"name": "n", "targetConfigs": [{"identifier": "b", "type": "http", "priority": 1}]}),
    )
    .unwrap_err();
    assert_eq!(fields(&e), ["targetConfigs[0].priority"]);
    let e = parse(json!({"name": "n", "targetConfigs": [{"type": "http"}]})).unwrap_err();
    assert_eq!(fields(&e), ["targetConfigs[0].identifier"]);
    assert!(e.errors()[0].reason.contains("missing field"), "{e}");
}

#[test]
fn bad_bodies() {
    assert_eq!(fields(&parse_spec(b"{").unwrap_err()), ["body"]);
    assert_eq!(fields(&parse_spec(b"[]").unwrap_err()), ["body"]);
    assert_eq!(fields(&parse_spec(b"{} x").unwrap_err()), ["body"]);
    let reason = &parse_spec(b"{\"name\": 5}").unwrap_err().errors()[0]
        .reason
        .clone();
    assert!(!reason.contains("line"), "{reason}");
}

// ---- validation rules ----

#[test]
fn name_rules() {
    assert!(fails_on(json!({}), "name").contains("required"));
    fails_on(json!({"name": "Orders"}), "name");
    fails_on(json!({"name": "-x"}), "name");
    fails_on(json!({"name": "n", "topicName": "a b"}), "topicName");
    fails_on(
        json!({"name": "n", "description": "x".repeat(1001)}),
        "description",
    );
}

#[test]
fn kafka_and_sqs_backends_need_their_settings() {
    let reason = fails_on(
        json!({"name": "n", "backend": "kafka"}),
        "backendConfig.brokers",
    );
    assert!(reason.contains("brokers"), "{reason}");
    let ns = check(json!({"name": "n", "backend": "kafka",
        "backendConfig": {"brokers": ["127.0.0.1:9092"]}}))
    .unwrap();
    assert_eq!(ns.backend_config.acks.as_deref(), Some("all"));
    let ns = check(json!({"name": "n", "backend": "sqs"})).unwrap();
    assert_eq!(ns.backend_config.region.as_deref(), Some("us-east-1"));
    fails_on(
        json!({"name": "n", "backend": "sqs", "backendConfig": {"brokers": ["k:1"]}}),
        "backendConfig.brokers",
    );
    let e = parse(json!({"name": "n", "backend": "rabbitmq"})).unwrap_err();
    assert_eq!(fields(&e), ["backend"]);
}

#[test]
fn numeric_bounds() {
    for pc in [0, 257] {
        fails_on(
            json!({"name": "n", "shardConfig": {"partitionCount": pc}}),
            "shardConfig.partitionCount",
        );
    }
    check(json!({"name": "n", "shardConfig": {"partitionCount": 256}})).unwrap();
    for size in [0, 10 * 1_048_576 + 1] {
        fails_on(
            json!({"name": "n", "maxMessageSize": size}),
            "maxMessageSize",
        );
    }
    check(json!({"name": "n", "maxMessageSize": 10 * 1_048_576})).unwrap();
    fails_on(
        json!({"name": "n", "maxDelaySeconds": 30 * 86_400 + 1}),
        "maxDelaySeconds",
    );
    fails_on(
        json!({"name": "n", "messageTtlSeconds": 0}),
        "messageTtlSeconds",
    );
    fails_on(
        json!({"name": "n", "dedupWindowSeconds": 0}),
        "dedupWindowSeconds",
    );
    fails_on(
        json!({"name": "n", "dedupWindowSeconds": 30 * 86_400 + 1}),
        "dedupWindowSeconds",
    );
    fails_on(
        json!({"name": "n", "dlqConfig": {"maxRetries": 21}}),
        "dlqConfig.maxRetries",
    );
    fails_on(
        json!({"name": "n", "dlqConfig": {"retentionSeconds": 0}}),
        "dlqConfig.retentionSeconds",
    );
    fails_on(
        json!({"name": "n", "retryPolicy": {"maxAttempts": 21}}),
        "retryPolicy.maxAttempts",
    );
    fails_on(
        json!({"name": "n", "backendConfig": {"waitReplicas": 17}}),
        "backendConfig.waitReplicas",
    );
    fails_on(
        json!({"name": "n", "backendConfig": {"waitTimeoutMs": 0}}),
        "backendConfig.waitTimeoutMs",
    );
    fails_on(
        json!({"name": "n", "accessControl": {"rateLimits": {"burstLimit": 0}}}),
        "accessControl.rateLimits.burstLimit",
    );
}

#[test]
fn retention_rules() {
    fails_on(
        json!({"name": "n", "backendConfig": {"retention": {"maxLen": 10, "maxAgeSeconds": 60}}}),
        "backendConfig.retention",
    );
    fails_on(
        json!({"name": "n", "backendConfig": {"retention": {}}}),
        "backendConfig.retention",
    );
    fails_on(
        json!({"name": "n", "backendConfig": {"retention": {"maxLen": 0}}}),
        "backendConfig.retention.maxLen",
    );
    let e = parse(json!({"name": "n", "backendConfig": {"brokerz": ["k:9092"]}})).unwrap_err();
    assert_eq!(fields(&e), ["backendConfig.brokerz"]);
    fails_on(
        json!({"name": "n", "backendConfig": {"brokers": ["k:9092"]}}),
        "backendConfig.brokers",
    );
}

#[test]
fn all_errors_are_collected() {
    let e = check(json!({"name": "n", "backend": "kafka",
        "shardConfig": {"partitionCount": 0},
        "accessControl": {"allowedApiKeys": ["short"], "ipAllowList": ["10.0.0.0/8", "nope"]}}))
    .unwrap_err();
    assert_eq!(
        fields(&e),
        [
            "shardConfig.partitionCount",
            "backendConfig.brokers",
            "accessControl.allowedApiKeys[0]",
            "accessControl.ipAllowList[1]"
        ]
    );
}

// ---- targets ----

#[test]
fn unknown_field_inside_a_target_config() {
    fails_on(
        with_target(
            json!({"identifier": "a", "type": "http", "config": {"url": "https://x", "retries": 3}}),
        ),
        "targetConfigs[0].config.retries",
    );
}

#[test]
fn duplicate_target_identifier() {
    let t = json!({"identifier": "a", "type": "http", "config": {"url": "https://x"}});
    let reason = fails_on(
        json!({"name": "n", "targetConfigs": [t.clone(), t]}),
        "targetConfigs[1].identifier",
    );
    assert!(reason.contains("duplicate"), "{reason}");
    fails_on(
        with_target(json!({"identifier": "a b", "type": "http", "config": {"url": "https://x"}})),
        "targetConfigs[0].identifier",
    );
}

#[test]
fn target_timeouts_and_fields() {
    let ok = json!({"identifier": "a", "type": "http", "config": {"url": "https://x"}});
    fails_on(
        json!({"name": "n", "targetConfigs": [ok, {"identifier": "b", "type": "http",
            "config": {"url": "https://x", "timeoutMs": 300_001}}]}),
        "targetConfigs[1].config.timeoutMs",
    );
    fails_on(
        with_target(
            json!({"identifier": "a", "type": "http", "config": {"url": "https://x", "timeoutMs": "5s"}}),
        ),
        "targetConfigs[0].config.timeoutMs",
    );
    fails_on(
        with_target(
            json!({"identifier": "a", "type": "http", "weight": 101, "config": {"url": "https://x"}}),
        ),
        "targetConfigs[0].weight",
    );
    fails_on(
        with_target(json!({"identifier": "a", "type": "http", "config": {}})),
        "targetConfigs[0].config.url",
    );
    fails_on(
        with_target(json!({"identifier": "a", "type": "http", "config": []})),
        "targetConfigs[0].config",
    );
    fails_on(
        with_target(
            json!({"identifier": "a", "type": "http", "config": {"url": "https://x", "method": "TRACE"}}),
        ),
        "targetConfigs[0].config.method",
    );
    fails_on(
        with_target(
            json!({"identifier": "a", "type": "http", "config": {"url": "https://x",
            "allowedOverrideHeaders": ["X-Tenant", "Host"]}}),
        ),
        "targetConfigs[0].config.allowedOverrideHeaders[1]",
    );
    fails_on(
        with_target(
            json!({"identifier": "a", "type": "http", "config": {"url": "https://x",
            "headers": {"Bad Header": "v"}}}),
        ),
        "targetConfigs[0].config.headers.Bad Header",
    );
}

#[test]
fn http_urls() {
    for bad in ["ftp://x/y", "/relative", "https://user:pw@x/", "not a url"] {
        fails_on(
            with_target(json!({"identifier": "a", "type": "http", "config": {"url": bad}})),
            "targetConfigs[0].config.url",
        );
    }
    let ns = check(with_target(
        json!({"identifier": "a", "type": "http", "config": {"url": "http://10.0.0.1:8080/x?y=1"}}),
    ))
    .unwrap();
    match &ns.targets[0].kind {
        TargetKind::Http(c) => {
            assert_eq!(c.method.as_str(), "POST");
            assert_eq!(c.timeout_ms, 5000);
            assert!(c.signing_secret().is_none());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn webhook_needs_a_signing_secret_reference() {
    let reason = fails_on(
        with_target(json!({"identifier": "w", "type": "webhook", "config": {"url": "https://x"}})),
        "targetConfigs[0].config.signingSecretEnv",
    );
    assert!(reason.contains("required"), "{reason}");
    fails_on(
        with_target(
            json!({"identifier": "w", "type": "webhook", "config": {"url": "https://x",
            "signingSecretEnv": "A", "signingSecretFile": "/run/secrets/a"}}),
        ),
        "targetConfigs[0].config.signingSecretFile",
    );
    fails_on(
        with_target(
            json!({"identifier": "w", "type": "webhook", "config": {"url": "https://x",
            "signingSecretFile": "relative/path"}}),
        ),
        "targetConfigs[0].config.signingSecretFile",
    );
    // A literal secret is an unknown field.
    fails_on(
        with_target(
            json!({"identifier": "w", "type": "webhook", "config": {"url": "https://x",
            "signingSecret": "s3cr3t"}}),
        ),
        "targetConfigs[0].config.signingSecret",
    );
    let ns = check(with_target(json!({"identifier": "w", "type": "webhook",
        "config": {"url": "https://x", "signingSecretEnv": "HOOK_SECRET", "body": "envelope"}})))
    .unwrap();
    assert!(matches!(ns.targets[0].kind, TargetKind::Webhook(_)));
}

#[test]
fn database_targets() {
    let db = |config: Value| {
        with_target(json!({"identifier": "d", "type": "database", "config": config}))
    };
    fails_on(
        db(json!({"dsn": "postgres://u:p@h/db", "table": "t", "operation": "insert"})),
        "targetConfigs[0].config.dsn",
    );
    fails_on(
        db(json!({"dsnEnv": "X", "password": "p", "table": "t", "operation": "insert"})),
        "targetConfigs[0].config.password",
    );
    fails_on(
        db(json!({"table": "t", "operation": "insert"})),
        "targetConfigs[0].config.dsnEnv",
    );
    fails_on(
        db(json!({"dsnEnv": "1X", "table": "t", "operation": "insert"})),
        "targetConfigs[0].config.dsnEnv",
    );
    fails_on(
        db(json!({"dsnEnv": "X", "dsnFile": "/f", "table": "t", "operation": "insert"})),
        "targetConfigs[0].config.dsnFile",
    );
    fails_on(
        db(json!({"dsnEnv": "X", "table": "t; drop", "operation": "insert"})),
        "targetConfigs[0].config.table",
    );
    fails_on(
        db(json!({"dsnEnv": "X", "operation": "insert"})),
        "targetConfigs[0].config.table",
    );
    fails_on(
        db(json!({"dsnEnv": "X", "table": "t", "operation": "upsert"})),
        "targetConfigs[0].config.key",
    );
    fails_on(
        db(json!({"dsnEnv": "X", "table": "t", "operation": "delete", "key": ["a-b"]})),
        "targetConfigs[0].config.key[0]",
    );
    fails_on(
        db(json!({"dsnEnv": "X", "operation": "statement"})),
        "targetConfigs[0].config.statement",
    );
    fails_on(
        db(json!({"dsnEnv": "X", "table": "t", "operation": "insert", "statement": "select 1"})),
        "targetConfigs[0].config.statement",
    );
    fails_on(
        db(json!({"dsnEnv": "X", "table": "t"})),
        "targetConfigs[0].config.operation",
    );
    fails_on(
        db(json!({"dsnEnv": "X", "table": "t", "operation": "merge"})),
        "targetConfigs[0].config.operation",
    );
    let ns = check(db(
        json!({"dsnFile": "/run/secrets/dsn", "operation": "statement",
        "statement": "insert into t(id) values (:id)"}),
    ))
    .unwrap();
    match &ns.targets[0].kind {
        TargetKind::Database(c) => {
            assert_eq!(
                c.dsn(),
                Some(wal_namespace::SecretRef::File("/run/secrets/dsn".into()))
            );
            assert_eq!(c.timeout_ms, 5000);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn cache_targets() {
    let cache =
        |config: Value| with_target(json!({"identifier": "c", "type": "cache", "config": config}));
    fails_on(
        cache(json!({"url": "redis://h"})),
        "targetConfigs[0].config.url",
    );
    fails_on(cache(json!({})), "targetConfigs[0].config.urlEnv");
    fails_on(
        cache(json!({"urlEnv": "C", "ttlSeconds": 0})),
        "targetConfigs[0].config.ttlSeconds",
    );
    fails_on(
        cache(json!({"urlEnv": "C", "operation": "incr"})),
        "targetConfigs[0].config.operation",
    );
    fails_on(
        cache(json!({"urlEnv": "C", "keyPrefix": "p".repeat(257)})),
        "targetConfigs[0].config.keyPrefix",
    );
}

#[test]
fn targets_serialize_back_to_the_wire_shape() {
    let ns = check(spec_example()).unwrap();
    let v = serde_json::to_value(&ns.targets).unwrap();
    assert_eq!(v[0]["type"], "http");
    assert_eq!(v[0]["config"]["url"], "https://orders.internal/hooks");
    assert_eq!(v[0]["config"]["timeoutMs"], 5000);
    assert_eq!(v[1]["type"], "database");
    assert_eq!(v[1]["config"]["dsnEnv"], "ORDERS_PG_DSN");
    assert_eq!(v[1]["config"]["key"], json!(["id"]));
    assert_eq!(v[2]["region"], "eu-west-1");
    assert_eq!(v[2]["config"]["keyPrefix"], "order:");
    // The serialised form validates back to the same targets.
    let again = check(json!({"name": "x", "targetConfigs": v})).unwrap();
    assert_eq!(again.targets, ns.targets);
}

#[test]
fn enabled_targets_and_lookup() {
    let ns = check(json!({"name": "n", "targetConfigs": [
        {"identifier": "a", "type": "http", "config": {"url": "https://a"}},
        {"identifier": "b", "type": "http", "enabled": false, "config": {"url": "https://b"}},
        {"identifier": "c", "type": "cache", "tags": ["eu"], "config": {"urlEnv": "C"}}]}))
    .unwrap();
    let enabled: Vec<_> = ns
        .enabled_targets()
        .map(|t| t.identifier.as_str())
        .collect();
    assert_eq!(enabled, ["a", "c"]);
    assert_eq!(ns.target("b").unwrap().kind.target_type(), TargetType::Http);
    assert!(!ns.target("b").unwrap().enabled);
    assert!(ns.target("z").is_none());
}

// ---- access control ----

#[test]
fn api_keys_are_hashed_and_checked() {
    let hashed = ApiKeyHash::of("already-hashed-key-0001");
    let ns = check(
        json!({"name": "n", "accessControl": {"allowedApiKeys": [KEY, hashed.to_prefixed(), KEY]}}),
    )
    .unwrap();
    assert_eq!(ns.api_key_hashes, vec![ApiKeyHash::of(KEY), hashed]);
    assert!(ns.has_key_allow_list());
    assert!(ns.key_allowed(&ApiKeyHash::of(KEY)));
    assert!(ns.key_allowed(&ApiKeyHash::of("already-hashed-key-0001")));
    assert!(!ns.key_allowed(&ApiKeyHash::of("some-other-key-0000000")));

    let reason = fails_on(
        json!({"name": "n", "accessControl": {"allowedApiKeys": [KEY, "k-123"]}}),
        "accessControl.allowedApiKeys[1]",
    );
    assert!(reason.starts_with("too short"), "{reason}");
    assert!(!reason.contains("k-123"));
    fails_on(
        json!({"name": "n", "accessControl": {"allowedApiKeys": ["sha256:ABC"]}}),
        "accessControl.allowedApiKeys[0]",
    );
    let upper = format!("sha256:{}", hashed.to_hex().to_uppercase());
    fails_on(
        json!({"name": "n", "accessControl": {"allowedApiKeys": [upper]}}),
        "accessControl.allowedApiKeys[0]",
    );
}

#[test]
fn keys_kept_when_absent_replaced_when_present() {
    let prev = check(json!({"name": "n", "accessControl": {"allowedApiKeys": [KEY]}})).unwrap();
    let kept = parse(json!({"maxMessageSize": 1000}))
        .unwrap()
        .validate(Some(&prev))
        .unwrap();
    assert_eq!(kept.api_key_hashes, prev.api_key_hashes);
    assert_eq!(kept.name, "n");
    assert_eq!(kept.id, prev.id);
    let kept = parse(json!({"accessControl": {"ipAllowList": ["10.0.0.0/8"]}}))
        .unwrap()
        .validate(Some(&prev))
        .unwrap();
    assert_eq!(kept.api_key_hashes, prev.api_key_hashes);
    let emptied = parse(json!({"accessControl": {"allowedApiKeys": []}}))
        .unwrap()
        .validate(Some(&prev))
        .unwrap();
    assert!(emptied.api_key_hashes.is_empty());
    let replaced = parse(json!({"accessControl": {"allowedApiKeys": ["a-brand-new-key-000001"]}}))
        .unwrap()
        .validate(Some(&prev))
        .unwrap();
    assert_eq!(
        replaced.api_key_hashes,
        vec![ApiKeyHash::of("a-brand-new-key-000001")]
    );
    // Renaming is refused.
    let e = parse(json!({"name": "m"}))
        .unwrap()
        .validate(Some(&prev))
        .unwrap_err();
    assert_eq!(fields(&e), ["name"]);
}

#[test]
fn topic_kept_on_update_when_absent() {
    let prev = check(json!({"name": "n", "topicName": "legacy-topic"})).unwrap();
    let next = parse(json!({})).unwrap().validate(Some(&prev)).unwrap();
    assert_eq!(next.topic_name, "legacy-topic");
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn ip_allow_list() {
    let open = check(json!({"name": "n"})).unwrap();
    assert!(open.ip_allowed(ip("203.0.113.9")));
    assert!(open.ip_allowed(ip("2001:db8::1")));

    let ns = check(json!({"name": "n", "accessControl": {"ipAllowList":
        ["10.0.0.0/8", "192.168.1.7", "2001:db8::/32", "::ffff:172.16.0.0/108", " 10.1.2.3/8 "]}}))
    .unwrap();
    assert_eq!(ns.ip_allow_list.len(), 4, "{:?}", ns.ip_allow_list);
    assert!(ns.ip_allowed(ip("10.20.30.40")));
    assert!(ns.ip_allowed(ip("192.168.1.7")));
    assert!(!ns.ip_allowed(ip("192.168.1.8")));
    assert!(ns.ip_allowed(ip("2001:db8:1::5")));
    assert!(!ns.ip_allowed(ip("2001:db9::1")));
    // IPv4-mapped IPv6 addresses match IPv4 entries, and mapped entries match IPv4 addresses.
    assert!(ns.ip_allowed(ip("::ffff:10.9.8.7")));
    assert!(ns.ip_allowed(ip("::ffff:192.168.1.7")));
    assert!(!ns.ip_allowed(ip("::ffff:11.0.0.1")));
    assert!(ns.ip_allowed(ip("172.16.3.4")));
    assert!(ns.ip_allowed(ip("172.31.0.1")));
    assert!(!ns.ip_allowed(ip("172.32.0.1")));

    for bad in ["10.0.0.0/33", "300.1.1.1", "fe80::/129", "example.com", ""] {
        fails_on(
            json!({"name": "n", "accessControl": {"ipAllowList": [bad]}}),
            "accessControl.ipAllowList[0]",
        );
    }
}

// ---- admin view and storage form ----

#[test]
fn view_never_contains_keys_or_hashes() {
    let ns = check(spec_example()).unwrap();
    let v = serde_json::to_value(ns.view()).unwrap();
    let text = v.to_string();
    assert!(!text.contains(KEY));
    assert!(!text.contains(&ApiKeyHash::of(KEY).to_hex()));
    assert_eq!(v["accessControl"]["allowedApiKeyCount"], 1);
    assert!(v["accessControl"].get("allowedApiKeys").is_none());
    assert_eq!(v["accessControl"]["rateLimits"]["requestsPerMinute"], 6000);
    assert_eq!(v["topicName"], "orders-webhooks");
    assert_eq!(v["shardConfig"]["strategy"], "hash");
    assert_eq!(v["dlqConfig"]["alertOnDLQ"], false);
    assert_eq!(v["backendConfig"]["retention"]["maxLen"], 1_000_000);
    assert_eq!(v["targetConfigs"][1]["config"]["operation"], "upsert");
    for k in [
        "version",
        "createdAt",
        "updatedAt",
        "createdBy",
        "updatedBy",
        "maxDelaySeconds",
    ] {
        assert!(v.get(k).is_some(), "{k} missing in {v}");
    }
}

#[test]
fn storage_form_validates_back_to_the_same_namespace() {
    let ns = check(spec_example()).unwrap();
    let spec = ns.to_spec();
    let text = serde_json::to_string(&spec).unwrap();
    assert!(!text.contains(KEY));
    let mut again = parse_spec(text.as_bytes()).unwrap().validate(None).unwrap();
    again.id = ns.id.clone();
    again.created_at = ns.created_at;
    again.updated_at = ns.updated_at;
    assert_eq!(again, ns);
}
