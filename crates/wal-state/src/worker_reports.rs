//! What each worker says of a namespace it consumes — whether it runs it
//! fully or degraded (its Kafka topic or SQS queue cannot be opened), and
//! the state of each target's circuit breaker — so that the gateway's
//! namespace status can show what lives only in workers' memory.
//!
//! One hash per namespace, one field per worker, rewritten every few
//! seconds; a report older than [`FRESH_FOR`] is from a worker that is gone
//! and is not shown. A worker that stops its runner removes its field.

use std::collections::BTreeMap;
use std::time::Duration;

use fred::prelude::*;
use serde::{Deserialize, Serialize};
use wal_core::backend::BackendError;
use wal_core::keys::NamespaceKeys;
use wal_redis::{backend_error, RedisConnection};

/// How long a report counts: a few missed refreshes.
pub const FRESH_FOR: Duration = Duration::from_secs(30);

/// One worker's report on one namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerReport {
    /// The worker (its consumer name).
    pub worker: String,
    /// `running`, or `degraded` (consuming only the Redis streams).
    pub state: String,
    /// Why it is degraded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Each target's circuit breaker, by identifier.
    pub breakers: BTreeMap<String, BreakerReport>,
    /// When the report was written (ms since epoch).
    pub updated_at_ms: u64,
}

/// One target's circuit breaker, as one worker sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BreakerReport {
    /// `closed`, `open` or `half_open`.
    pub state: String,
    /// Deliveries in the breaker's window.
    pub calls: u32,
    /// Retryable failures among them.
    pub failures: u32,
}

/// Writes `report` for namespace `ns` (the hash lives [`FRESH_FOR`] past
/// its last write).
pub async fn publish(
    conn: &RedisConnection,
    ns: &str,
    report: &WorkerReport,
) -> Result<(), BackendError> {
    let client = conn.connected_client()?;
    let key = NamespaceKeys::new(ns).workers();
    let json = serde_json::to_string(report).map_err(|e| BackendError::Other(e.to_string()))?;
    let pipeline = client.pipeline();
    let _: () = pipeline
        .hset(&key, (report.worker.as_str(), json))
        .await
        .map_err(backend_error)?;
    let _: () = pipeline
        .pexpire(&key, FRESH_FOR.as_millis() as i64 * 2, None)
        .await
        .map_err(backend_error)?;
    let _: Vec<fred::types::Value> = pipeline.all().await.map_err(backend_error)?;
    Ok(())
}

/// Removes `worker`'s report on `ns`.
pub async fn remove(conn: &RedisConnection, ns: &str, worker: &str) -> Result<(), BackendError> {
    let client = conn.connected_client()?;
    let _: i64 = client
        .hdel(NamespaceKeys::new(ns).workers(), worker)
        .await
        .map_err(backend_error)?;
    Ok(())
}

/// The fresh reports on `ns` at `now_ms`; stale ones (workers that died
/// without removing theirs) are deleted.
pub async fn read(
    conn: &RedisConnection,
    ns: &str,
    now_ms: u64,
) -> Result<Vec<WorkerReport>, BackendError> {
    let client = conn.connected_client()?;
    let all: BTreeMap<String, String> = client
        .hgetall(NamespaceKeys::new(ns).workers())
        .await
        .map_err(backend_error)?;
    let fresh =
        |r: &WorkerReport| now_ms.saturating_sub(r.updated_at_ms) <= FRESH_FOR.as_millis() as u64;
    let mut reports = Vec::new();
    let mut gone = Vec::new();
    for (worker, json) in all {
        match serde_json::from_str::<WorkerReport>(&json) {
            Ok(r) if fresh(&r) => reports.push(r),
            // A worker that died without removing its report.
            _ => gone.push(worker),
        }
    }
    if !gone.is_empty() {
        let _: Result<i64, _> = client.hdel(NamespaceKeys::new(ns).workers(), gone).await;
    }
    Ok(reports)
}
