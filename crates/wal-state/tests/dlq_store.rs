//! The DLQ store against the Redis of `WAL_TEST_REDIS_URL` (default
//! `127.0.0.1:6379`), each test in its own random namespace, deleting its
//! keys at the end.

mod common;

use common::{cleanup, connect, random_ns};

use std::time::Duration;

use fred::prelude::*;
use wal_core::delivery::{DlqReason, DlqRecord, TargetState, TargetStatus};
use wal_core::request::TargetRef;
use wal_core::Envelope;
use wal_state::dlq::{
    requeued_envelope, DlqError, DlqFilter, DlqStore, EntryRequeue, Permit, PurgeSummary,
    RequeueOptions, RequeuedEntry,
};

fn envelope(ns: &str, targets: &[&str]) -> Envelope {
    let json = serde_json::json!({
        "v": 1, "id": wal_core::MessageId::generate().to_string(), "namespace": ns,
        "payload": {"k": 1},
        "targets": targets.iter().map(|t| serde_json::json!({"identifier": t})).collect::<Vec<_>>(),
        "lifecycle": {"retryPolicy": {}, "enableDlq": true, "expiresAtMs": 5},
        "partition": 3, "requestId": "r", "createdAtMs": 1, "dueAtMs": 1, "attempt": 4,
        "history": [{"target": targets[0], "attempt": 4, "atMs": 2, "outcome": "permanent", "error": "HTTP 400"}],
    });
    Envelope::decode(json.to_string().as_bytes()).unwrap()
}

fn record(env: &Envelope, reason: DlqReason, target: &str) -> DlqRecord {
    DlqRecord {
        message_id: env.id.to_string(),
        reason,
        target: target.into(),
        error: "HTTP 400".into(),
        attempts: 4,
        partition: env.partition,
        at_ms: 10,
        body: env.encode(),
    }
}

fn opts(partition_count: u32) -> RequeueOptions {
    RequeueOptions {
        now_ms: 1_000,
        partition_count,
        status_ttl: Duration::from_secs(60),
    }
}

#[test]
fn the_requeued_envelope_is_a_fresh_attempt_for_the_failed_target() {
    let env = envelope("ns", &["a", "b"]);
    let rec = record(&env, DlqReason::Expired, "b");
    let back = requeued_envelope(&rec, 1_000, 2).unwrap();
    assert_eq!(back.attempt, 0);
    assert_eq!(back.due_at_ms, 1_000);
    assert_eq!(back.lifecycle.expires_at_ms, None);
    assert_eq!(back.partition, 1, "3 modulo 2 partitions");
    assert_eq!(back.targets, vec![TargetRef::named("b")]);
    assert_eq!(back.history.len(), 1);
    // A record without a target (poison) keeps every target.
    let rec = record(&env, DlqReason::Poison, "");
    assert_eq!(requeued_envelope(&rec, 1, 8).unwrap().targets.len(), 2);
    // Garbage is refused.
    let mut rec = record(&env, DlqReason::Malformed, "");
    rec.body = b"nope".to_vec();
    assert!(requeued_envelope(&rec, 1, 8).is_err());
}

#[tokio::test]
async fn add_index_list_and_inspect() {
    let conn = connect().await;
    let ns = random_ns("dlqstore");
    let store = DlqStore::new(conn.clone(), &ns);
    let env = envelope(&ns, &["a", "b"]);
    let e1 = store
        .add(&record(&env, DlqReason::Permanent, "a"))
        .await
        .unwrap();
    let e2 = store
        .add(&record(&env, DlqReason::MaxAttempts, "b"))
        .await
        .unwrap();
    let mut others = Vec::new();
    for _ in 0..7 {
        let o = envelope(&ns, &["a"]);
        others.push(
            store
                .add(&record(&o, DlqReason::Expired, "a"))
                .await
                .unwrap(),
        );
    }
    assert_eq!(store.len().await.unwrap(), 9);
    let slot: String = conn
        .pool()
        .hget(store.keys().dlq_index(), env.id.to_string())
        .await
        .unwrap();
    assert_eq!(slot, format!("{e1} {e2}"));

    let entries = store.entries_of(&env.id.to_string()).await.unwrap();
    assert_eq!(
        entries
            .iter()
            .map(|e| e.entry_id.clone())
            .collect::<Vec<_>>(),
        [e1.clone(), e2.clone()]
    );
    assert_eq!(entries[0].envelope().unwrap().history.len(), 1);

    // Pages of 2, newest first, every entry once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .list(&DlqFilter::default(), cursor.as_deref(), 2)
            .await
            .unwrap();
        seen.extend(page.entries.into_iter().map(|e| e.entry_id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let mut expected: Vec<String> = [e1.clone(), e2.clone()].into_iter().chain(others).collect();
    expected.reverse();
    assert_eq!(seen, expected);

    // A filtered page.
    let filter = DlqFilter {
        reason: Some(DlqReason::MaxAttempts),
        ..Default::default()
    };
    let page = store.list(&filter, None, 10).await.unwrap();
    assert_eq!(page.entries.len(), 1);
    assert_eq!(page.entries[0].entry_id, e2);
    assert!(page.next_cursor.is_none());
    assert!(matches!(
        store.list(&filter, Some("x"), 10).await,
        Err(DlqError::InvalidCursor)
    ));
    cleanup(&conn, &ns).await;
}

#[tokio::test]
async fn requeue_is_atomic_and_happens_once() {
    let conn = connect().await;
    let ns = random_ns("dlqstore");
    let store = DlqStore::new(conn.clone(), &ns);
    let env = envelope(&ns, &["a", "b"]);
    let id = env.id.to_string();
    let entry = store
        .add(&record(&env, DlqReason::Permanent, "a"))
        .await
        .unwrap();

    let o = opts(4);
    let (r1, r2) = tokio::join!(
        store.requeue_message(&id, &o),
        store.requeue_message(&id, &o)
    );
    let all: Vec<EntryRequeue> = r1.unwrap().into_iter().chain(r2.unwrap()).collect();
    let requeued: Vec<&RequeuedEntry> = all
        .iter()
        .filter_map(|o| match o {
            EntryRequeue::Requeued(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(requeued.len(), 1, "{all:?}");
    assert_eq!(requeued[0].entry_id, entry);
    assert_eq!(requeued[0].partition, 3);
    assert_eq!(store.len().await.unwrap(), 0);
    let stream_len: u64 = conn.pool().xlen(store.keys().stream(3)).await.unwrap();
    assert_eq!(stream_len, 1);
    let slot: Option<String> = conn
        .pool()
        .hget(store.keys().dlq_index(), &id)
        .await
        .unwrap();
    assert!(slot.is_none());
    let status: String = conn
        .pool()
        .hget(store.keys().status(&id), "t:a")
        .await
        .unwrap();
    let status: TargetStatus = serde_json::from_str(&status).unwrap();
    assert_eq!(status.state, TargetState::Pending);
    let ttl: i64 = conn.pool().pttl(store.keys().status(&id)).await.unwrap();
    assert!(ttl > 0 && ttl <= 60_000, "{ttl}");
    cleanup(&conn, &ns).await;
}

#[tokio::test]
async fn requeue_by_filter_purge_and_the_rate_counter() {
    let conn = connect().await;
    let ns = random_ns("dlqstore");
    let store = DlqStore::new(conn.clone(), &ns);
    for i in 0..6 {
        let env = envelope(&ns, &["a"]);
        let reason = if i % 2 == 0 {
            DlqReason::Permanent
        } else {
            DlqReason::Expired
        };
        store.add(&record(&env, reason, "a")).await.unwrap();
    }
    let mut bad = record(&envelope(&ns, &["a"]), DlqReason::Permanent, "a");
    bad.body = b"garbage".to_vec();
    let bad_entry = store.add(&bad).await.unwrap();

    let permanent = DlqFilter {
        reason: Some(DlqReason::Permanent),
        ..Default::default()
    };
    let s = store
        .requeue_matching(&permanent, 2, &opts(4))
        .await
        .unwrap();
    assert_eq!(s.requeued.len(), 2);
    assert!(s.has_more);
    let s = store
        .requeue_matching(&permanent, 10, &opts(4))
        .await
        .unwrap();
    assert_eq!(s.requeued.len(), 1);
    assert_eq!(s.skipped_malformed, vec![bad_entry.clone()]);
    assert!(!s.has_more);
    assert_eq!(store.len().await.unwrap(), 4);

    let expired = DlqFilter {
        reason: Some(DlqReason::Expired),
        ..Default::default()
    };
    let p = store.purge(&expired).await.unwrap();
    assert_eq!(
        p,
        PurgeSummary {
            purged: 3,
            complete: true
        }
    );
    assert_eq!(store.len().await.unwrap(), 1);
    let p = store.purge(&DlqFilter::default()).await.unwrap();
    assert_eq!(p.purged, 1);
    let left: u64 = conn
        .pool()
        .exists(vec![store.keys().dlq(), store.keys().dlq_index()])
        .await
        .unwrap();
    assert_eq!(left, 0);

    let window = Duration::from_secs(5);
    assert_eq!(
        store.take_requeue_permit(2, window).await.unwrap(),
        Permit::Granted
    );
    assert_eq!(
        store.take_requeue_permit(2, window).await.unwrap(),
        Permit::Granted
    );
    match store.take_requeue_permit(2, window).await.unwrap() {
        Permit::Refused(wait) => assert!(wait <= window && !wait.is_zero(), "{wait:?}"),
        other => panic!("{other:?}"),
    }
    cleanup(&conn, &ns).await;
}

#[tokio::test]
async fn one_list_call_reads_a_bounded_amount_however_large_the_entries() {
    let conn = connect().await;
    let ns = random_ns("dlqstore");
    let store = DlqStore::new(conn.clone(), &ns);
    // 120 entries of ~100 KB that a filter skips, then the one it wants: a
    // writer who fills their own DLQ must not make one call read all of it.
    let big = serde_json::json!({"blob": "x".repeat(100_000)}).to_string();
    for _ in 0..120 {
        let mut env = envelope(&ns, &["a"]);
        env.payload = serde_json::value::RawValue::from_string(big.clone()).unwrap();
        store
            .add(&record(&env, DlqReason::Permanent, "a"))
            .await
            .unwrap();
    }
    let wanted = store
        .add(&record(&envelope(&ns, &["a"]), DlqReason::Expired, "a"))
        .await
        .unwrap();
    // Newest first: the wanted entry is the first one read; ask for the others.
    let filter = DlqFilter {
        reason: Some(DlqReason::Permanent),
        ..Default::default()
    };
    let first = store.list(&filter, None, 1000).await.unwrap();
    assert!(
        first.scanned < 100,
        "one call read {} entries of ~100 KB",
        first.scanned
    );
    assert!(first.next_cursor.is_some(), "and says where to go on");
    // Following the cursors reaches every entry, each once.
    let mut seen = first.entries.len();
    let mut cursor = first.next_cursor;
    while let Some(c) = cursor {
        let page = store.list(&filter, Some(&c), 1000).await.unwrap();
        seen += page.entries.len();
        cursor = page.next_cursor;
    }
    assert_eq!(seen, 120);
    let expired = DlqFilter {
        reason: Some(DlqReason::Expired),
        ..Default::default()
    };
    let page = store.list(&expired, None, 10).await.unwrap();
    assert_eq!(page.entries[0].entry_id, wanted);
    cleanup(&conn, &ns).await;
}
