//! `GET /api/v1/wal/message/{id}` against the shared Redis, with status
//! records seeded in the worker's format.
//!
//! Access: a key that may not read the message's namespace gets `404` (the
//! message is only looked for where the key may read, so its existence is
//! not revealed); naming that namespace with `?namespace=` is `403`.

use reqwest::Method;
use serde_json::json;
use wal_core::delivery::{DlqReason, TargetState, TargetStatus};
use wal_core::MessageId;
use wal_tests::gateway::{
    delete_namespace_keys, namespace_body, redis_client, TestGateway, ADMIN_KEY, WRITE_KEY,
};
use wal_tests::seed::{dlq_record, failed_envelope, now_ms, seed_dlq, seed_status, target_status};
use wal_tests::{random_name, redis_url};

#[tokio::test]
async fn a_seeded_status_answers_the_combined_state_and_every_target() {
    let gw = TestGateway::spawn().await;
    let redis = redis_client(&redis_url()).await;
    let ns = random_name("ms");
    gw.create_namespace(&namespace_body(&ns, 2)).await;

    let id = MessageId::generate().to_string();
    let retrying = TargetStatus {
        next_at_ms: Some(now_ms() + 5000),
        last_error: Some("HTTP 503".into()),
        ..target_status(TargetState::Retrying, 2)
    };
    seed_status(
        &redis,
        &ns,
        &id,
        &[
            ("sink", target_status(TargetState::Delivered, 1)),
            ("cache", retrying),
        ],
    )
    .await;

    for key in [WRITE_KEY, ADMIN_KEY] {
        let (s, b) = gw
            .call(
                Method::GET,
                &format!("/api/v1/wal/message/{id}"),
                Some(key),
                None,
            )
            .await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["messageId"], json!(id));
        assert_eq!(b["namespace"], json!(ns));
        assert_eq!(b["state"], json!("retrying"), "{b}");
        assert!(b["createdAtMs"].as_u64().is_some(), "{b}");
        assert_eq!(b["targets"]["sink"]["state"], json!("delivered"));
        assert_eq!(b["targets"]["cache"]["state"], json!("retrying"));
        assert_eq!(b["targets"]["cache"]["attempt"], json!(2));
        assert_eq!(b["targets"]["cache"]["lastError"], json!("HTTP 503"));
        assert!(b["targets"]["cache"]["nextAtMs"].as_u64().is_some());
        assert!(b.get("dlq").is_none(), "no DLQ entries yet: {b}");
    }

    // Narrowed to its namespace: same answer.
    let (s, b) = gw
        .call(
            Method::GET,
            &format!("/api/v1/wal/message/{id}?namespace={ns}"),
            Some(WRITE_KEY),
            None,
        )
        .await;
    assert_eq!((s, b["state"].clone()), (200, json!("retrying")), "{b}");

    // One target dead-lettered: the message is dead_lettered and names its DLQ entry.
    let env = failed_envelope(&ns, 1, &["cache"], 3);
    let id = env.id.to_string();
    let entry = seed_dlq(
        &redis,
        &ns,
        &dlq_record(&env, DlqReason::MaxAttempts, "cache"),
    )
    .await;
    let mut dead = target_status(TargetState::DeadLettered, 3);
    dead.reason = Some(DlqReason::MaxAttempts);
    seed_status(
        &redis,
        &ns,
        &id,
        &[
            ("sink", target_status(TargetState::Delivered, 1)),
            ("cache", dead),
        ],
    )
    .await;
    let (s, b) = gw
        .call(
            Method::GET,
            &format!("/api/v1/wal/message/{id}"),
            Some(WRITE_KEY),
            None,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["state"], json!("dead_lettered"));
    assert_eq!(b["targets"]["cache"]["reason"], json!("max_attempts"));
    assert_eq!(b["dlq"], json!([entry]));

    delete_namespace_keys(&redis, &ns).await;
}

#[tokio::test]
async fn unknown_and_invalid_ids() {
    let gw = TestGateway::spawn().await;
    let ns = random_name("ms");
    gw.create_namespace(&namespace_body(&ns, 1)).await;

    let id = MessageId::generate();
    let (s, b) = gw
        .call(
            Method::GET,
            &format!("/api/v1/wal/message/{id}"),
            Some(WRITE_KEY),
            None,
        )
        .await;
    assert_eq!(s, 404, "{b}");
    assert_eq!(b["error"]["code"], json!("NOT_FOUND"));
    let message = b["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("not yet picked up") && message.contains("expired"),
        "{message}"
    );
    assert_eq!(
        b["metadata"]["path"],
        json!(format!("/api/v1/wal/message/{id}"))
    );

    let (s, b) = gw
        .call(
            Method::GET,
            "/api/v1/wal/message/not-a-ulid",
            Some(WRITE_KEY),
            None,
        )
        .await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["error"]["code"], json!("VALIDATION_FAILED"));
    assert_eq!(b["error"]["details"]["field"], json!("messageId"));

    // Unknown query parameters and namespaces.
    let (s, b) = gw
        .call(
            Method::GET,
            &format!("/api/v1/wal/message/{id}?nope=1"),
            Some(WRITE_KEY),
            None,
        )
        .await;
    assert_eq!(
        (s, b["error"]["details"]["field"].clone()),
        (400, json!("nope"))
    );
    let (s, b) = gw
        .call(
            Method::GET,
            &format!("/api/v1/wal/message/{id}?namespace=missing-{ns}"),
            Some(WRITE_KEY),
            None,
        )
        .await;
    assert_eq!(
        (s, b["error"]["code"].clone()),
        (404, json!("NAMESPACE_NOT_FOUND"))
    );

    // No key at all.
    let (s, _) = gw
        .call(
            Method::GET,
            &format!("/api/v1/wal/message/{id}"),
            None,
            None,
        )
        .await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn a_key_of_another_namespace_cannot_read_the_message() {
    let gw = TestGateway::spawn().await;
    let redis = redis_client(&redis_url()).await;
    let (ns_a, ns_b) = (random_name("msa"), random_name("msb"));
    let (key_a, key_b) = ("key-of-namespace-a-000001", "key-of-namespace-b-000001");
    let mut a = namespace_body(&ns_a, 1);
    a["accessControl"] = json!({"allowedApiKeys": [key_a]});
    let mut b = namespace_body(&ns_b, 1);
    b["accessControl"] = json!({"allowedApiKeys": [key_b]});
    gw.create_namespace(&a).await;
    gw.create_namespace(&b).await;

    let id = MessageId::generate().to_string();
    seed_status(
        &redis,
        &ns_a,
        &id,
        &[("sink", target_status(TargetState::Pending, 0))],
    )
    .await;
    let path = format!("/api/v1/wal/message/{id}");

    let (s, body) = gw.call(Method::GET, &path, Some(key_a), None).await;
    assert_eq!(
        (s, body["state"].clone()),
        (200, json!("pending")),
        "{body}"
    );
    // Not looked for where key B may not read: not found.
    let (s, body) = gw.call(Method::GET, &path, Some(key_b), None).await;
    assert_eq!(
        (s, body["error"]["code"].clone()),
        (404, json!("NOT_FOUND")),
        "{body}"
    );
    // Naming namespace A explicitly: forbidden.
    let (s, body) = gw
        .call(
            Method::GET,
            &format!("{path}?namespace={ns_a}"),
            Some(key_b),
            None,
        )
        .await;
    assert_eq!(
        (s, body["error"]["code"].clone()),
        (403, json!("FORBIDDEN")),
        "{body}"
    );
    // The global write key is not on A's allow-list either.
    let (s, _) = gw.call(Method::GET, &path, Some(WRITE_KEY), None).await;
    assert_eq!(s, 404);
    // The admin key reads everything.
    let (s, _) = gw.call(Method::GET, &path, Some(ADMIN_KEY), None).await;
    assert_eq!(s, 200);

    delete_namespace_keys(&redis, &ns_a).await;
    delete_namespace_keys(&redis, &ns_b).await;
}
