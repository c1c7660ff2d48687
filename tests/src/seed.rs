//! Seeding worker-written Redis data directly, in the formats of
//! `wal_core::delivery` (status hashes, DLQ entries and their index), so the
//! gateway's read and operator endpoints can be tested without a worker.
//! The writes here are deliberately raw commands (not `DlqStore`), so they
//! also check that the gateway reads the documented layout.

use std::time::{SystemTime, UNIX_EPOCH};

use fred::prelude::*;
use fred::types::Value as RedisValue;
use serde_json::{json, Value};
use wal_core::delivery::{status_field, DlqReason, DlqRecord, TargetState, TargetStatus};
use wal_core::keys::NamespaceKeys;
use wal_core::{Envelope, MessageId};

/// Now, ms since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// An envelope of namespace `ns` for `targets`, after `attempts` failed
/// attempts on the first target (each in its history), expired an hour ago.
pub fn failed_envelope(ns: &str, partition: u32, targets: &[&str], attempts: u32) -> Envelope {
    let now = now_ms();
    let history: Vec<Value> = (1..=attempts)
        .map(|n| {
            json!({"target": targets.first().copied().unwrap_or(""), "attempt": n,
                   "atMs": now - 1000 + u64::from(n), "outcome": "retryable",
                   "error": format!("HTTP 503 (attempt {n})")})
        })
        .collect();
    let env = json!({
        "v": 1,
        "id": MessageId::generate().to_string(),
        "namespace": ns,
        "payload": {"order": 42, "note": "seeded"},
        "targets": targets.iter().map(|t| json!({"identifier": t})).collect::<Vec<_>>(),
        "lifecycle": {"retryPolicy": {"maxAttempts": 3}, "enableDlq": true,
                      "expiresAtMs": now - 3_600_000},
        "partition": partition,
        "requestId": "req-seed",
        "trace": {},
        "createdAtMs": now - 5000,
        "dueAtMs": now - 5000,
        "attempt": attempts,
        "history": history,
    });
    Envelope::decode(env.to_string().as_bytes()).expect("a valid seeded envelope")
}

/// A DLQ record of `env` for `target`.
pub fn dlq_record(env: &Envelope, reason: DlqReason, target: &str) -> DlqRecord {
    DlqRecord {
        message_id: env.id.to_string(),
        reason,
        target: target.to_string(),
        error: format!("{reason} on {target}"),
        attempts: env.attempt,
        partition: env.partition,
        at_ms: now_ms(),
        body: env.encode(),
    }
}

/// Appends `record` to the namespace's DLQ stream and to the index slot of
/// its message, as the worker does. Returns the entry id.
pub async fn seed_dlq(client: &Client, ns: &str, record: &DlqRecord) -> String {
    let keys = NamespaceKeys::new(ns);
    let fields: Vec<(String, RedisValue)> = record
        .fields()
        .into_iter()
        .map(|(k, v)| (k.to_string(), RedisValue::Bytes(v.into())))
        .collect();
    let entry: String = client
        .xadd(keys.dlq(), false, None, "*", fields)
        .await
        .expect("XADD to the DLQ");
    let previous: Option<String> = client
        .hget(keys.dlq_index(), &record.message_id)
        .await
        .expect("HGET index");
    let slot = match previous {
        Some(p) if !p.is_empty() => format!("{p} {entry}"),
        _ => entry.clone(),
    };
    let _: () = client
        .hset(keys.dlq_index(), (record.message_id.as_str(), slot))
        .await
        .expect("HSET index");
    entry
}

/// A target status.
pub fn target_status(state: TargetState, attempt: u32) -> TargetStatus {
    TargetStatus {
        state,
        attempt,
        updated_at_ms: now_ms(),
        next_at_ms: None,
        last_error: None,
        reason: None,
    }
}

/// Writes the status hash of `message_id` with the given target statuses.
pub async fn seed_status(
    client: &Client,
    ns: &str,
    message_id: &str,
    targets: &[(&str, TargetStatus)],
) {
    let key = NamespaceKeys::new(ns).status(message_id);
    let mut fields: Vec<(String, String)> = targets
        .iter()
        .map(|(t, s)| (status_field(t), serde_json::to_string(s).expect("json")))
        .collect();
    fields.push(("createdAtMs".into(), (now_ms() - 5000).to_string()));
    let _: () = client.hset(&key, fields).await.expect("HSET status");
    let _: () = client.pexpire(&key, 600_000, None).await.expect("PEXPIRE");
}

/// The entries of a stream as `(entry id, field → value)`.
pub async fn stream_entries(client: &Client, key: &str) -> Vec<(String, Vec<(String, Vec<u8>)>)> {
    let entries: Vec<(String, Vec<(String, RedisValue)>)> =
        client.xrange(key, "-", "+", None).await.unwrap_or_default();
    entries
        .into_iter()
        .map(|(id, fields)| {
            let fields = fields
                .into_iter()
                .map(|(k, v)| (k, v.as_bytes().map(<[u8]>::to_vec).unwrap_or_default()))
                .collect();
            (id, fields)
        })
        .collect()
}

/// The `env` field of a stream entry's fields, decoded.
pub fn envelope_of(fields: &[(String, Vec<u8>)]) -> Envelope {
    let env = fields
        .iter()
        .find(|(k, _)| k == "env")
        .expect("an env field");
    Envelope::decode(&env.1).expect("a valid envelope")
}
