//! The three moves of an idempotency record in Redis, each a script that
//! checks whose record it is before it writes: claim (new, or a stale
//! pending claim of the same request taken over), confirm (pending →
//! confirmed), withdraw (delete our own claim).

use std::sync::LazyLock;
use std::time::Duration;

use fred::prelude::*;
use fred::types::Value;
use wal_core::idempotency::IdempotencyRecord;
use wal_redis::LuaScript;

static CLAIM: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new(include_str!("../scripts/idempotency_claim.lua")));
static CONFIRM: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new(include_str!("../scripts/idempotency_confirm.lua")));
static WITHDRAW: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new(include_str!("../scripts/idempotency_withdraw.lua")));

/// One record to claim.
pub struct ClaimRequest {
    /// The record's Redis key.
    pub record_key: String,
    /// The message id of the write claiming it.
    pub message_id: String,
    /// The fingerprint of that write's request.
    pub fingerprint: String,
}

/// What a claim found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The key is ours: publish.
    Claimed,
    /// An earlier write holds the key.
    Held(IdempotencyRecord),
}

/// Claims every record in one pipeline; one result per request, in order.
pub async fn claim(
    client: &Client,
    requests: &[ClaimRequest],
    window: Duration,
    takeover_after: Duration,
) -> Vec<Result<Claim, String>> {
    let window_ms = window.as_millis().max(1).to_string();
    let takeover_ms = takeover_after.as_millis().to_string();
    let calls = requests
        .iter()
        .map(|r| {
            (
                vec![r.record_key.as_str().into()],
                vec![
                    r.message_id.as_str().into(),
                    r.fingerprint.as_str().into(),
                    window_ms.as_str().into(),
                    takeover_ms.as_str().into(),
                ],
            )
        })
        .collect();
    CLAIM
        .call_many(client, calls)
        .await
        .into_iter()
        .map(|reply| match reply.map_err(|e| e.to_string())? {
            Value::Array(items) if items.len() == 2 => match items[0].as_i64() {
                Some(1) => Ok(Claim::Claimed),
                Some(0) => items[1]
                    .as_string()
                    .and_then(|raw| IdempotencyRecord::decode(&raw))
                    .map(Claim::Held)
                    .ok_or_else(|| "unreadable idempotency record".to_string()),
                _ => Err("unexpected claim reply".into()),
            },
            _ => Err("unexpected claim reply".into()),
        })
        .collect()
}

/// Marks the pending records `(record key, message id)` confirmed, in one
/// pipeline. A failure only costs retries an `UNKNOWN` answer, so it is
/// logged, not returned.
pub async fn confirm(client: &Client, records: Vec<(String, String)>) {
    run_logged(&CONFIRM, client, records, "confirm").await;
}

/// Deletes the claims `(record key, message id)` that are still ours, in one
/// pipeline; logged on failure (a retry then answers `UNKNOWN` until the
/// claim is stale).
pub async fn withdraw(client: &Client, records: Vec<(String, String)>) {
    run_logged(&WITHDRAW, client, records, "withdraw").await;
}

async fn run_logged(
    script: &LuaScript,
    client: &Client,
    records: Vec<(String, String)>,
    what: &str,
) {
    if records.is_empty() {
        return;
    }
    let calls = records
        .into_iter()
        .map(|(key, id)| (vec![key.into()], vec![id.into()]))
        .collect();
    for reply in script.call_many(client, calls).await {
        if let Err(e) = reply {
            tracing::warn!(error = %e, "could not {what} an idempotency record");
        }
    }
}
