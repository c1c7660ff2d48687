//! The DLQ endpoints against the shared Redis, with dead-letter entries and
//! their index seeded in the worker's format: paged listing and filters,
//! inspection, requeue (one, concurrent, malformed, by filter, rate limit),
//! purge, and who may do what.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use fred::prelude::*;
use reqwest::Method;
use serde_json::{json, Value};
use wal_core::delivery::{DlqReason, DlqRecord, TargetState, TargetStatus};
use wal_core::keys::NamespaceKeys;
use wal_tests::gateway::{
    delete_namespace_keys, namespace_body, redis_client, sqlite_store, TestGateway, ADMIN_KEY,
    WRITE_KEY,
};
use wal_tests::seed::{
    dlq_record, envelope_of, failed_envelope, now_ms, seed_dlq, seed_status, stream_entries,
    target_status,
};
use wal_tests::{random_name, redis_url};

async fn setup(partitions: u32) -> (TestGateway, String, Client) {
    setup_with(partitions, |_| {}).await
}

async fn setup_with(
    partitions: u32,
    tweak: impl FnOnce(&mut wal_gateway::GatewayConfig),
) -> (TestGateway, String, Client) {
    let (db, _) = sqlite_store();
    let gw = TestGateway::spawn_with(&redis_url(), &db, tweak).await;
    let ns = random_name("dlq");
    gw.create_namespace(&namespace_body(&ns, partitions)).await;
    (gw, ns, redis_client(&redis_url()).await)
}

/// Seeds `n` entries (cycling reasons and targets); returns their entry ids, oldest first.
async fn seed_many(redis: &Client, ns: &str, n: usize) -> Vec<(String, DlqRecord)> {
    let reasons = [
        DlqReason::Permanent,
        DlqReason::MaxAttempts,
        DlqReason::Expired,
    ];
    let targets = ["sink", "cache"];
    let mut out = Vec::new();
    for i in 0..n {
        let target = targets[i % 2];
        let env = failed_envelope(ns, (i % 2) as u32, &[target], 2);
        let rec = dlq_record(&env, reasons[i % 3], target);
        let id = seed_dlq(redis, ns, &rec).await;
        out.push((id, rec));
    }
    out
}

/// Walks every page of `query`; returns the items in order.
async fn walk(gw: &TestGateway, ns: &str, query: &str, key: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let mut path = format!("/api/v1/wal/namespace/{ns}/dlq?{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (s, b) = gw.call(Method::GET, &path, Some(key), None).await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["order"], json!("newest_first"));
        items.extend(b["items"].as_array().unwrap().iter().cloned());
        match b["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return items,
        }
    }
    panic!("the cursor never ended");
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["entryId"].as_str().unwrap().to_string())
        .collect()
}

fn code(b: &Value) -> &str {
    b["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn the_list_pages_newest_first_without_duplicates_or_gaps() {
    let (gw, ns, redis) = setup(2).await;
    let seeded = seed_many(&redis, &ns, 23).await;
    let mut expected: Vec<String> = seeded.iter().map(|(id, _)| id.clone()).collect();
    expected.reverse();

    for limit in [1, 5, 23, 50] {
        let items = walk(&gw, &ns, &format!("limit={limit}"), WRITE_KEY).await;
        let got = ids(&items);
        assert_eq!(got, expected, "limit {limit}");
        assert_eq!(got.iter().collect::<HashSet<_>>().len(), got.len());
    }

    // Default page: 23 < 50, so one page and no cursor.
    let (s, b) = gw
        .call(
            Method::GET,
            &format!("/api/v1/wal/namespace/{ns}/dlq"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(b["items"].as_array().unwrap().len(), 23);
    assert!(b["nextCursor"].is_null());

    // Item shape.
    let first = &b["items"][0];
    let (last_id, last_rec) = seeded.last().unwrap();
    assert_eq!(first["entryId"], json!(last_id));
    assert_eq!(first["messageId"], json!(last_rec.message_id));
    assert_eq!(first["reason"], json!(last_rec.reason.as_str()));
    assert_eq!(first["target"], json!(last_rec.target));
    assert_eq!(first["error"], json!(last_rec.error));
    assert_eq!(first["attempts"], json!(2));
    assert_eq!(first["partition"], json!(last_rec.partition));
    assert_eq!(first["atMs"], json!(last_rec.at_ms));
    assert_eq!(first["payload"], json!({"order": 42, "note": "seeded"}));
    assert_eq!(first["history"].as_array().unwrap().len(), 2);
    assert_eq!(first["history"][1]["attempt"], json!(2));

    delete_namespace_keys(&redis, &ns).await;
}

#[tokio::test]
async fn filters_on_reason_target_and_time() {
    let (gw, ns, redis) = setup(2).await;
    let early = seed_many(&redis, &ns, 12).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let late = seed_many(&redis, &ns, 6).await;
    let all: Vec<(String, DlqRecord)> = early.iter().chain(late.iter()).cloned().collect();
    let expect = |pred: &dyn Fn(&(String, DlqRecord)) -> bool| -> Vec<String> {
        let mut v: Vec<String> = all
            .iter()
            .filter(|e| pred(e))
            .map(|e| e.0.clone())
            .collect();
        v.reverse();
        v
    };

    let got = ids(&walk(&gw, &ns, "reason=permanent&limit=2", WRITE_KEY).await);
    assert_eq!(got, expect(&|e| e.1.reason == DlqReason::Permanent));
    assert!(!got.is_empty());

    let got = ids(&walk(&gw, &ns, "target=cache&limit=3", WRITE_KEY).await);
    assert_eq!(got, expect(&|e| e.1.target == "cache"));

    let got = ids(&walk(&gw, &ns, "target=sink&reason=expired&limit=1", WRITE_KEY).await);
    assert_eq!(
        got,
        expect(&|e| e.1.target == "sink" && e.1.reason == DlqReason::Expired)
    );

    let ms = |id: &str| id.split('-').next().unwrap().parse::<u64>().unwrap();
    let last_early = ms(&early.last().unwrap().0);
    let first_late = ms(&late.first().unwrap().0);
    assert!(first_late > last_early);
    let got = ids(&walk(&gw, &ns, &format!("from={first_late}&limit=4"), WRITE_KEY).await);
    assert_eq!(got, expect(&|e| ms(&e.0) >= first_late));
    assert_eq!(got.len(), late.len());
    let got = ids(&walk(&gw, &ns, &format!("to={last_early}&limit=4"), WRITE_KEY).await);
    assert_eq!(got.len(), early.len());
    let got = ids(&walk(
        &gw,
        &ns,
        &format!("from={first_late}&to={first_late}&reason=permanent"),
        WRITE_KEY,
    )
    .await);
    assert_eq!(
        got,
        expect(&|e| ms(&e.0) == first_late && e.1.reason == DlqReason::Permanent)
    );

    // Invalid input: field errors.
    for (query, field) in [
        ("reason=gremlins", "reason"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("cursor=nope", "cursor"),
        ("from=20&to=10", "from"),
        ("target=a%20b", "target"),
        ("colour=red", "colour"),
    ] {
        let (s, b) = gw
            .call(
                Method::GET,
                &format!("/api/v1/wal/namespace/{ns}/dlq?{query}"),
                Some(WRITE_KEY),
                None,
            )
            .await;
        assert_eq!(s, 400, "{query}: {b}");
        assert_eq!(code(&b), "VALIDATION_FAILED");
        assert_eq!(b["error"]["details"]["field"], json!(field), "{query}: {b}");
    }
    let (_, b) = gw
        .call(
            Method::GET,
            &format!("/api/v1/wal/namespace/{ns}/dlq?reason=gremlins"),
            Some(WRITE_KEY),
            None,
        )
        .await;
    assert!(
        b["error"]["details"]["reason"]
            .as_str()
            .unwrap()
            .contains("max_attempts"),
        "{b}"
    );

    delete_namespace_keys(&redis, &ns).await;
}

#[tokio::test]
async fn inspecting_a_message_shows_every_entry_with_its_history() {
    let (gw, ns, redis) = setup(2).await;
    let env = failed_envelope(&ns, 1, &["sink", "cache"], 3);
    let id = env.id.to_string();
    let mut sink_env = env.clone();
    sink_env.targets.retain(|t| t.identifier == "sink");
    let mut cache_env = env.clone();
    cache_env.targets.retain(|t| t.identifier == "cache");
    let e1 = seed_dlq(
        &redis,
        &ns,
        &dlq_record(&sink_env, DlqReason::MaxAttempts, "sink"),
    )
    .await;
    let e2 = seed_dlq(
        &redis,
        &ns,
        &dlq_record(&cache_env, DlqReason::Permanent, "cache"),
    )
    .await;

    let (s, b) = gw
        .call(
            Method::GET,
            &format!("/api/v1/wal/namespace/{ns}/dlq/{id}"),
            Some(WRITE_KEY),
            None,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["messageId"], json!(id));
    let entries = b["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["entryId"], json!(e1));
    assert_eq!(entries[0]["reason"], json!("max_attempts"));
    assert_eq!(entries[0]["target"], json!("sink"));
    assert_eq!(entries[1]["entryId"], json!(e2));
    assert_eq!(entries[1]["reason"], json!("permanent"));
    for e in entries {
        assert_eq!(e["history"].as_array().unwrap().len(), 3, "{e}");
        assert_eq!(e["history"][0]["error"], json!("HTTP 503 (attempt 1)"));
        let envelope = &e["envelope"];
        assert_eq!(envelope["id"], json!(id));
        assert_eq!(envelope["attempt"], json!(3));
        assert_eq!(envelope["history"].as_array().unwrap().len(), 3);
        assert_eq!(envelope["payload"], json!({"order": 42, "note": "seeded"}));
        assert_eq!(envelope["targets"].as_array().unwrap().len(), 1);
    }

    // Unknown message: 404; invalid id: 400.
    let other = wal_core::MessageId::generate();
    let (s, b) = gw
        .call(
            Method::GET,
            &format!("/api/v1/wal/namespace/{ns}/dlq/{other}"),
            Some(WRITE_KEY),
            None,
        )
        .await;
    assert_eq!((s, code(&b)), (404, "NOT_FOUND"), "{b}");
    let (s, b) = gw
        .call(
            Method::GET,
            &format!("/api/v1/wal/namespace/{ns}/dlq/bad!id"),
            Some(WRITE_KEY),
            None,
        )
        .await;
    assert_eq!((s, code(&b)), (400, "VALIDATION_FAILED"), "{b}");

    delete_namespace_keys(&redis, &ns).await;
}

#[tokio::test]
async fn requeue_moves_one_message_back_to_its_partition() {
    let (gw, ns, redis) = setup(4).await;
    let keys = NamespaceKeys::new(&ns);
    let mut env = failed_envelope(&ns, 3, &["sink", "cache"], 3);
    env.targets.retain(|t| t.identifier == "sink");
    let id = env.id.to_string();
    let entry = seed_dlq(&redis, &ns, &dlq_record(&env, DlqReason::Expired, "sink")).await;
    let mut dead = target_status(TargetState::DeadLettered, 3);
    dead.reason = Some(DlqReason::Expired);
    seed_status(
        &redis,
        &ns,
        &id,
        &[
            ("sink", dead),
            ("cache", target_status(TargetState::Delivered, 1)),
        ],
    )
    .await;

    let before = now_ms();
    let (s, b) = gw
        .call(
            Method::POST,
            &format!("/api/v1/wal/namespace/{ns}/dlq/{id}/requeue"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let requeued = b["requeued"].as_array().unwrap();
    assert_eq!(requeued.len(), 1);
    assert_eq!(requeued[0]["entryId"], json!(entry));
    assert_eq!(requeued[0]["partition"], json!(3));
    assert_eq!(requeued[0]["target"], json!("sink"));
    let stream_entry = requeued[0]["streamEntryId"].as_str().unwrap().to_string();

    // Gone from the DLQ and its index.
    let dlq_len: u64 = redis.xlen(keys.dlq()).await.unwrap();
    assert_eq!(dlq_len, 0);
    let slot: Option<String> = redis.hget(keys.dlq_index(), &id).await.unwrap();
    assert!(slot.is_none());

    // Back on partition 3 as a fresh attempt, with the producer's fields.
    let entries = stream_entries(&redis, &keys.stream(3)).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].0, stream_entry);
    let id_field = entries[0].1.iter().find(|(k, _)| k == "id").unwrap();
    assert_eq!(id_field.1, id.as_bytes());
    let back = envelope_of(&entries[0].1);
    assert_eq!(back.id.to_string(), id);
    assert_eq!(back.attempt, 0);
    assert!(back.due_at_ms >= before && back.due_at_ms <= now_ms());
    assert_eq!(back.lifecycle.expires_at_ms, None);
    assert_eq!(back.partition, 3);
    assert_eq!(
        back.targets
            .iter()
            .map(|t| t.identifier.as_str())
            .collect::<Vec<_>>(),
        ["sink"]
    );
    assert_eq!(back.history.len(), 3, "history is kept");
    for p in 0..3 {
        let len: u64 = redis.xlen(keys.stream(p)).await.unwrap();
        assert_eq!(len, 0, "partition {p}");
    }

    // Status: the requeued target is pending again; the delivered one is untouched.
    let sink: String = redis.hget(keys.status(&id), "t:sink").await.unwrap();
    let sink: TargetStatus = serde_json::from_str(&sink).unwrap();
    assert_eq!((sink.state, sink.attempt), (TargetState::Pending, 0));
    let cache: String = redis.hget(keys.status(&id), "t:cache").await.unwrap();
    let cache: TargetStatus = serde_json::from_str(&cache).unwrap();
    assert_eq!(cache.state, TargetState::Delivered);
    let (s, b) = gw
        .call(
            Method::GET,
            &format!("/api/v1/wal/message/{id}"),
            Some(WRITE_KEY),
            None,
        )
        .await;
    assert_eq!((s, b["state"].clone()), (200, json!("pending")), "{b}");

    // A second requeue finds nothing.
    let (s, b) = gw
        .call(
            Method::POST,
            &format!("/api/v1/wal/namespace/{ns}/dlq/{id}/requeue"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!((s, code(&b)), (404, "NOT_FOUND"), "{b}");

    delete_namespace_keys(&redis, &ns).await;
}

#[tokio::test]
async fn concurrent_requeues_of_one_message_append_it_once() {
    let (gw, ns, redis) = setup(2).await;
    let keys = NamespaceKeys::new(&ns);
    for round in 0..5 {
        let env = failed_envelope(&ns, 1, &["sink"], 1);
        let id = env.id.to_string();
        seed_dlq(&redis, &ns, &dlq_record(&env, DlqReason::Permanent, "sink")).await;
        let path = format!("/api/v1/wal/namespace/{ns}/dlq/{id}/requeue");
        let calls = (0..8).map(|_| gw.call(Method::POST, &path, Some(ADMIN_KEY), None));
        let results = futures_util::future::join_all(calls).await;
        let ok = results.iter().filter(|(s, _)| *s == 200).count();
        let not_found = results.iter().filter(|(s, _)| *s == 404).count();
        assert_eq!((ok, not_found), (1, 7), "round {round}: {results:?}");
        let appended = stream_entries(&redis, &keys.stream(1))
            .await
            .into_iter()
            .filter(|(_, f)| envelope_of(f).id.to_string() == id)
            .count();
        assert_eq!(appended, 1, "round {round}");
    }
    delete_namespace_keys(&redis, &ns).await;
}

#[tokio::test]
async fn a_malformed_entry_cannot_be_requeued() {
    let (gw, ns, redis) = setup(2).await;
    let keys = NamespaceKeys::new(&ns);
    let id = "malformed-1-1700000000000-0";
    let rec = DlqRecord {
        message_id: id.into(),
        reason: DlqReason::Malformed,
        target: String::new(),
        error: "undecodable envelope".into(),
        attempts: 0,
        partition: 1,
        at_ms: now_ms(),
        body: b"{not json".to_vec(),
    };
    let entry = seed_dlq(&redis, &ns, &rec).await;

    let (s, b) = gw
        .call(
            Method::POST,
            &format!("/api/v1/wal/namespace/{ns}/dlq/{id}/requeue"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!((s, code(&b)), (409, "CONFLICT"), "{b}");
    let message = b["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("purge") && message.contains(&entry),
        "{message}"
    );
    let len: u64 = redis.xlen(keys.dlq()).await.unwrap();
    assert_eq!(len, 1, "still in the DLQ");
    let len: u64 = redis.xlen(keys.stream(1)).await.unwrap();
    assert_eq!(len, 0, "nothing appended");

    // Listed and inspected with what can be shown.
    let (_, b) = gw
        .call(
            Method::GET,
            &format!("/api/v1/wal/namespace/{ns}/dlq"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    let item = &b["items"][0];
    assert_eq!(item["messageId"], json!(id));
    assert!(item["bodyError"].is_string(), "{item}");
    assert!(item.get("payload").is_none());
    let (s, b) = gw
        .call(
            Method::GET,
            &format!("/api/v1/wal/namespace/{ns}/dlq/{id}"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert!(b["entries"][0]["envelope"].is_null());
    assert_eq!(b["entries"][0]["rawBody"], json!("{not json"));

    delete_namespace_keys(&redis, &ns).await;
}

#[tokio::test]
async fn requeue_by_filter_respects_the_filter_and_the_limit() {
    let (gw, ns, redis) = setup_with(2, |c| c.dlq_requeue_per_second = 1000).await;
    let keys = NamespaceKeys::new(&ns);
    let mut permanent = Vec::new();
    for i in 0..5 {
        let env = failed_envelope(&ns, i % 2, &["sink"], 1);
        let e = seed_dlq(&redis, &ns, &dlq_record(&env, DlqReason::Permanent, "sink")).await;
        permanent.push(e);
    }
    for _ in 0..3 {
        let env = failed_envelope(&ns, 0, &["cache"], 5);
        seed_dlq(
            &redis,
            &ns,
            &dlq_record(&env, DlqReason::MaxAttempts, "cache"),
        )
        .await;
    }
    let bad = DlqRecord {
        message_id: "malformed-0-1-0".into(),
        reason: DlqReason::Permanent,
        target: "sink".into(),
        error: "x".into(),
        attempts: 1,
        partition: 0,
        at_ms: now_ms(),
        body: b"garbage".to_vec(),
    };
    let bad_entry = seed_dlq(&redis, &ns, &bad).await;
    let path = format!("/api/v1/wal/namespace/{ns}/dlq/requeue");

    // Oldest first, at most `limit`.
    let (s, b) = gw
        .call(
            Method::POST,
            &path,
            Some(ADMIN_KEY),
            Some(&json!({"reason": "permanent", "limit": 3})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["requeued"], json!(3));
    assert_eq!(b["hasMore"], json!(true));
    let first: Vec<String> = b["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["entryId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(first, permanent[..3]);

    // The rest: two more, the malformed one skipped and reported.
    let (s, b) = gw
        .call(
            Method::POST,
            &path,
            Some(ADMIN_KEY),
            Some(&json!({"reason": "permanent"})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["requeued"], json!(2));
    assert_eq!(b["skippedMalformed"], json!(1));
    assert_eq!(b["malformedEntryIds"], json!([bad_entry]));
    assert_eq!(b["hasMore"], json!(false));

    // What is left: the three max_attempts entries and the malformed one.
    let left = stream_entries(&redis, &keys.dlq()).await;
    assert_eq!(left.len(), 4);
    let reasons: BTreeSet<String> = left
        .iter()
        .map(|(_, f)| {
            String::from_utf8(f.iter().find(|(k, _)| k == "reason").unwrap().1.clone()).unwrap()
        })
        .collect();
    assert_eq!(
        reasons,
        BTreeSet::from(["max_attempts".to_string(), "permanent".to_string()])
    );
    let appended: u64 = redis.xlen(keys.stream(0)).await.unwrap_or(0)
        + redis.xlen::<u64, _>(keys.stream(1)).await.unwrap_or(0);
    assert_eq!(appended, 5);

    // Target filter and an empty body (every entry, default limit).
    let (s, b) = gw
        .call(
            Method::POST,
            &path,
            Some(ADMIN_KEY),
            Some(&json!({"target": "nobody"})),
        )
        .await;
    assert_eq!((s, b["requeued"].clone()), (200, json!(0)), "{b}");
    let resp = gw
        .client
        .post(gw.url(&path))
        .header("x-api-key", ADMIN_KEY)
        .send()
        .await
        .unwrap();
    let b: Value = resp.json().await.unwrap();
    assert_eq!(b["requeued"], json!(3), "{b}");
    assert_eq!(b["skippedMalformed"], json!(1));

    // Invalid bodies.
    for (body, field) in [
        (json!({"reason": "gremlins"}), "reason"),
        (json!({"limit": 0}), "limit"),
        (json!({"limit": 1001}), "limit"),
        (json!({"colour": "red"}), "colour"),
        (json!({"from": 5, "to": 1}), "from"),
    ] {
        let (s, b) = gw
            .call(Method::POST, &path, Some(ADMIN_KEY), Some(&body))
            .await;
        assert_eq!(s, 400, "{body}: {b}");
        assert_eq!(b["error"]["details"]["field"], json!(field), "{body}: {b}");
    }

    delete_namespace_keys(&redis, &ns).await;
}

#[tokio::test]
async fn requeue_by_filter_is_rate_limited_across_gateways() {
    let (gw, ns, redis) = setup(1).await;
    let (db, _) = sqlite_store();
    let gw2 = TestGateway::spawn_with(&redis_url(), &db, |_| {}).await;
    gw2.create_namespace(&namespace_body(&ns, 1)).await;
    let path = format!("/api/v1/wal/namespace/{ns}/dlq/requeue");

    let mut statuses = Vec::new();
    let mut refused = None;
    for i in 0..6 {
        let g = if i % 2 == 0 { &gw } else { &gw2 };
        let resp = g
            .client
            .post(g.url(&path))
            .header("x-api-key", ADMIN_KEY)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        statuses.push(status);
        if status == 429 && refused.is_none() {
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let b: Value = resp.json().await.unwrap();
            refused = Some((retry_after, b));
        }
    }
    let (retry_after, body) = refused.unwrap_or_else(|| panic!("never limited: {statuses:?}"));
    assert_eq!(retry_after, Some(1));
    assert_eq!(code(&body), "RATE_LIMITED");
    assert_eq!(statuses[0], 200);
    assert!(
        statuses.iter().filter(|s| **s == 200).count() <= 4,
        "{statuses:?}"
    );

    delete_namespace_keys(&redis, &ns).await;
}

#[tokio::test]
async fn purge_by_filter_removes_only_matching_entries() {
    let (gw, ns, redis) = setup(2).await;
    let keys = NamespaceKeys::new(&ns);
    let seeded = seed_many(&redis, &ns, 12).await;
    let matches = |r: &DlqRecord| r.reason == DlqReason::Permanent && r.target == "sink";
    let n_matching = seeded.iter().filter(|(_, r)| matches(r)).count();
    assert!(n_matching > 0);

    let (s, b) = gw
        .call(
            Method::DELETE,
            &format!("/api/v1/wal/namespace/{ns}/dlq?reason=permanent&target=sink"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["purged"], json!(n_matching));
    assert_eq!(b["complete"], json!(true));

    let left: Vec<String> = stream_entries(&redis, &keys.dlq())
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let expected: Vec<String> = seeded
        .iter()
        .filter(|(_, r)| !matches(r))
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(left, expected);
    for (_, r) in &seeded {
        let slot: Option<String> = redis.hget(keys.dlq_index(), &r.message_id).await.unwrap();
        assert_eq!(slot.is_some(), !matches(r), "{}", r.message_id);
    }

    // A time range that matches nothing purges nothing.
    let (s, b) = gw
        .call(
            Method::DELETE,
            &format!("/api/v1/wal/namespace/{ns}/dlq?to=1"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!((s, b["purged"].clone()), (200, json!(0)));
    let (s, b) = gw
        .call(
            Method::DELETE,
            &format!("/api/v1/wal/namespace/{ns}/dlq?reason=nope"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(
        (s, b["error"]["details"]["field"].clone()),
        (400, json!("reason"))
    );

    // No filter: everything, index included.
    let (s, b) = gw
        .call(
            Method::DELETE,
            &format!("/api/v1/wal/namespace/{ns}/dlq"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!((s, b["purged"].clone()), (200, json!(expected.len())));
    let exists: u64 = redis
        .exists(vec![keys.dlq(), keys.dlq_index()])
        .await
        .unwrap();
    assert_eq!(exists, 0);

    delete_namespace_keys(&redis, &ns).await;
}

#[tokio::test]
async fn operator_actions_need_the_admin_key_and_reads_a_namespace_key() {
    let (gw, ns, redis) = setup(1).await;
    let other = random_name("dlq-other");
    let mut body = namespace_body(&other, 1);
    body["accessControl"] = json!({"allowedApiKeys": ["other-namespace-key-0001"]});
    gw.create_namespace(&body).await;
    let env = failed_envelope(&ns, 0, &["sink"], 1);
    let id = env.id.to_string();
    seed_dlq(&redis, &ns, &dlq_record(&env, DlqReason::Permanent, "sink")).await;
    let base = format!("/api/v1/wal/namespace/{ns}/dlq");

    let writes = [
        (Method::POST, format!("{base}/{id}/requeue"), None),
        (Method::POST, format!("{base}/requeue"), Some(json!({}))),
        (Method::DELETE, base.clone(), None),
    ];
    for (method, path, body) in &writes {
        let (s, b) = gw
            .call(method.clone(), path, Some(WRITE_KEY), body.as_ref())
            .await;
        assert_eq!((s, code(&b)), (403, "FORBIDDEN"), "{method} {path}");
        let (s, _) = gw.call(method.clone(), path, None, body.as_ref()).await;
        assert_eq!(s, 401, "{method} {path}");
    }
    // Nothing was touched.
    let len: u64 = redis.xlen(NamespaceKeys::new(&ns).dlq()).await.unwrap();
    assert_eq!(len, 1);

    // Reads: a key allowed on the namespace, yes; a key of another namespace, no.
    for path in [base.clone(), format!("{base}/{id}")] {
        assert_eq!(
            gw.call(Method::GET, &path, Some(WRITE_KEY), None).await.0,
            200
        );
        let (s, b) = gw
            .call(Method::GET, &path, Some("other-namespace-key-0001"), None)
            .await;
        assert_eq!((s, code(&b)), (403, "FORBIDDEN"), "{path}");
    }
    // Unknown namespace.
    let (s, b) = gw
        .call(
            Method::GET,
            &format!("/api/v1/wal/namespace/missing-{ns}/dlq"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!((s, code(&b)), (404, "NAMESPACE_NOT_FOUND"));

    delete_namespace_keys(&redis, &ns).await;
    delete_namespace_keys(&redis, &other).await;
}

#[tokio::test]
async fn the_openapi_document_describes_the_status_and_dlq_routes() {
    let gw = TestGateway::spawn().await;
    let (s, doc) = gw
        .call(Method::GET, "/api/docs/openapi.json", None, None)
        .await;
    assert_eq!(s, 200);
    for (path, method) in [
        ("/api/v1/wal/message/{messageId}", "get"),
        ("/api/v1/wal/namespace/{ns}/status", "get"),
        ("/api/v1/wal/namespace/{ns}/dlq", "get"),
        ("/api/v1/wal/namespace/{ns}/dlq", "delete"),
        ("/api/v1/wal/namespace/{ns}/dlq/{messageId}", "get"),
        ("/api/v1/wal/namespace/{ns}/dlq/{messageId}/requeue", "post"),
        ("/api/v1/wal/namespace/{ns}/dlq/requeue", "post"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "openapi lacks {method} {path}"
        );
    }
    for schema in [
        "MessageStatusView",
        "NamespaceStatusView",
        "DlqPageView",
        "DlqItemView",
        "DlqMessageView",
        "RequeueMessageView",
        "RequeueFilterRequest",
        "RequeueFilterView",
        "PurgeView",
        "TargetStatus",
        "DlqReason",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "openapi lacks schema {schema}"
        );
    }
}
