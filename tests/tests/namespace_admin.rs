//! Namespace administration over HTTP: admin-only access, CRUD, whole-config
//! validation with every field error, API keys never returned, audit rows.

use serde_json::{json, Value};
use wal_tests::gateway::{namespace_body, TestGateway, ADMIN_KEY, WRITE_KEY};
use wal_tests::random_name;

async fn call(
    gw: &TestGateway,
    method: reqwest::Method,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut req = gw.client.request(method, gw.url(path));
    if let Some(k) = key {
        req = req.header("x-api-key", k);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        },
    )
}

#[tokio::test]
async fn admin_crud_with_validation_and_hidden_keys() {
    use reqwest::Method;
    let gw = TestGateway::spawn().await;
    let name = random_name("admin");
    let mut body = namespace_body(&name, 2);
    body["accessControl"] = json!({"allowedApiKeys": ["secret-writer-key-0001"]});

    // Only admin keys: none → 401, a write key → 403.
    assert_eq!(
        call(&gw, Method::POST, "/api/v1/namespaces", None, Some(&body))
            .await
            .0,
        401
    );
    let (s, b) = call(
        &gw,
        Method::POST,
        "/api/v1/namespaces",
        Some(WRITE_KEY),
        Some(&body),
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str().unwrap()),
        (403, "FORBIDDEN")
    );

    // Create, then create again → 409 CONFLICT.
    let (s, created) = call(
        &gw,
        Method::POST,
        "/api/v1/namespaces",
        Some(ADMIN_KEY),
        Some(&body),
    )
    .await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["name"], json!(name));
    assert_eq!(created["version"], 1);
    let (s, b) = call(
        &gw,
        Method::POST,
        "/api/v1/namespaces",
        Some(ADMIN_KEY),
        Some(&body),
    )
    .await;
    assert_eq!((s, b["error"]["code"].as_str().unwrap()), (409, "CONFLICT"));

    // Read: keys never returned, only their count.
    let (s, got) = call(
        &gw,
        Method::GET,
        &format!("/api/v1/namespaces/{name}"),
        Some(ADMIN_KEY),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert!(!got.to_string().contains("secret-writer-key-0001"), "{got}");
    assert_eq!(got["accessControl"]["allowedApiKeyCount"], 1, "{got}");
    let (s, list) = call(
        &gw,
        Method::GET,
        "/api/v1/namespaces",
        Some(ADMIN_KEY),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert!(list["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["name"] == json!(name)));

    // Update without allowedApiKeys keeps the keys; version increments.
    let mut update = namespace_body(&name, 2);
    update["description"] = json!("updated");
    let (s, updated) = call(
        &gw,
        Method::PUT,
        &format!("/api/v1/namespaces/{name}"),
        Some(ADMIN_KEY),
        Some(&update),
    )
    .await;
    assert_eq!(s, 200, "{updated}");
    assert_eq!(updated["version"], 2);
    assert_eq!(updated["description"], "updated");
    assert_eq!(updated["accessControl"]["allowedApiKeyCount"], 1);
    let r = gw
        .client
        .post(gw.url("/api/v1/wal/write"))
        .header("x-api-key", "secret-writer-key-0001")
        .json(&json!({"namespace": name, "payload": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202, "the kept key still writes");

    // Whole-config validation: every field error at once, with paths.
    let bad = json!({"name": "Bad Name", "shardConfig": {"partitionCount": 0},
                     "targetConfigs": [{"identifier": "t", "type": "database", "config": {"dsn": "postgres://u:p@h/db"}}],
                     "accessControl": {"ipAllowList": ["not-an-ip"]}, "colour": "blue"});
    let (s, err) = call(
        &gw,
        Method::POST,
        "/api/v1/namespaces/validate",
        Some(ADMIN_KEY),
        Some(&bad),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(err["error"]["code"], "VALIDATION_FAILED");
    assert!(
        err["error"]["details"]["field"]
            .as_str()
            .unwrap()
            .contains("colour"),
        "{err}"
    );
    let fixed_unknown = json!({"name": "Bad Name", "shardConfig": {"partitionCount": 0},
                     "targetConfigs": [{"identifier": "t", "type": "database", "config": {"dsn": "postgres://u:p@h/db"}}],
                     "accessControl": {"ipAllowList": ["not-an-ip"]}});
    let (s, err) = call(
        &gw,
        Method::POST,
        "/api/v1/namespaces",
        Some(ADMIN_KEY),
        Some(&fixed_unknown),
    )
    .await;
    assert_eq!(s, 400);
    let fields: Vec<String> = err["error"]["details"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_string())
        .collect();
    for f in [
        "name",
        "shardConfig.partitionCount",
        "targetConfigs[0].config",
        "accessControl.ipAllowList[0]",
    ] {
        assert!(
            fields.iter().any(|g| g.starts_with(f)),
            "missing {f} in {fields:?}"
        );
    }
    assert!(
        !err.to_string().contains("u:p@h"),
        "secrets are not echoed: {err}"
    );

    // Delete → 204, then 404.
    let (s, _) = call(
        &gw,
        Method::DELETE,
        &format!("/api/v1/namespaces/{name}"),
        Some(ADMIN_KEY),
        None,
    )
    .await;
    assert_eq!(s, 204);
    let (s, b) = call(
        &gw,
        Method::GET,
        &format!("/api/v1/namespaces/{name}"),
        Some(ADMIN_KEY),
        None,
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str().unwrap()),
        (404, "NAMESPACE_NOT_FOUND")
    );
    let (s, _) = call(
        &gw,
        Method::DELETE,
        &format!("/api/v1/namespaces/{name}"),
        Some(ADMIN_KEY),
        None,
    )
    .await;
    assert_eq!(s, 404);

    // Audit trail of the admin actions.
    let audit = gw.state.namespaces.store().audit_log(&name).await.unwrap();
    let actions: Vec<&str> = audit.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(actions, vec!["create", "update", "delete"], "{audit:?}");
}

#[tokio::test]
async fn patch_changes_only_what_it_names_and_put_replaces_everything() {
    use reqwest::Method;
    let gw = TestGateway::spawn().await;
    let name = random_name("patch");
    let path = format!("/api/v1/namespaces/{name}");
    let mut body = namespace_body(&name, 8);
    body["description"] = json!("first");
    body["retryPolicy"] = json!({"maxAttempts": 7});
    body["accessControl"] = json!({"allowedApiKeys": ["secret-writer-key-0001"]});
    gw.create_namespace(&body).await;

    // A partial change keeps every field it does not name.
    let (s, v) = call(
        &gw,
        Method::PATCH,
        &path,
        Some(ADMIN_KEY),
        Some(&json!({"description": "second"})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["description"], "second");
    assert_eq!(v["shardConfig"]["partitionCount"], 8);
    assert_eq!(v["retryPolicy"]["maxAttempts"], 7);
    assert_eq!(v["targetConfigs"].as_array().unwrap().len(), 2);
    // Nested objects merge; null removes.
    let (s, v) = call(
        &gw,
        Method::PATCH,
        &path,
        Some(ADMIN_KEY),
        Some(&json!({"shardConfig": {"partitionCount": 2}, "description": null})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["shardConfig"]["partitionCount"], 2);
    assert_eq!(v["shardConfig"]["strategy"], "hash");
    assert!(v.get("description").is_none_or(Value::is_null), "{v}");
    assert_eq!(v["retryPolicy"]["maxAttempts"], 7);
    // The stored API keys survive a patch that does not name them.
    let ns = gw.state.namespaces.get(&name);
    let ns = ns.expect("cached");
    assert!(ns.has_key_allow_list());
    // Invalid results answer every field error; nothing changes.
    let (s, v) = call(
        &gw,
        Method::PATCH,
        &path,
        Some(ADMIN_KEY),
        Some(&json!({"shardConfig": {"partitionCount": 0}, "bogus": 1})),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    let (_, v) = call(&gw, Method::GET, &path, Some(ADMIN_KEY), None).await;
    assert_eq!(v["shardConfig"]["partitionCount"], 2);
    // Not an object, another name, no such namespace, not an admin.
    for (patch, status) in [(json!([1]), 400), (json!({"name": "other"}), 400)] {
        assert_eq!(
            call(&gw, Method::PATCH, &path, Some(ADMIN_KEY), Some(&patch))
                .await
                .0,
            status,
            "{patch}"
        );
    }
    assert_eq!(
        call(
            &gw,
            Method::PATCH,
            "/api/v1/namespaces/nope-nope",
            Some(ADMIN_KEY),
            Some(&json!({}))
        )
        .await
        .0,
        404
    );
    assert_eq!(
        call(&gw, Method::PATCH, &path, Some(WRITE_KEY), Some(&json!({})))
            .await
            .0,
        403
    );

    // PUT replaces: what it leaves out takes its default.
    let mut replace = namespace_body(&name, 2);
    replace.as_object_mut().unwrap().remove("shardConfig");
    let (s, v) = call(&gw, Method::PUT, &path, Some(ADMIN_KEY), Some(&replace)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["shardConfig"]["partitionCount"], 4,
        "PUT without shardConfig takes the default"
    );
    assert_eq!(
        v["retryPolicy"]["maxAttempts"],
        json!(wal_core::RetryPolicy::default().max_attempts)
    );
}
