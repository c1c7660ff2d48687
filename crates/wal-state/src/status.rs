//! Per-message status records: `wal:{ns}:status:<id>`, a hash with a field
//! per target (`t:<identifier>` → [`TargetStatus`] JSON), `createdAtMs`, and
//! for backends that do not count deliveries (Kafka) a `deliveries` counter.
//!
//! The worker writes target fields when it settles an entry
//! ([`crate::settle`]) and a requeue marks them `pending` ([`crate::dlq`]);
//! this module holds the other reads and writes of a record:
//!
//! * [`count_delivery`] — one more delivery of a message (poison detection
//!   for Kafka);
//! * [`target_statuses`] — what earlier handlings recorded for a message's
//!   targets, so a redelivered entry does not act on them again;
//! * [`find_message_status`] — where a message stands, for the gateway's
//!   message status endpoint.
//!
//! Every write renews the record's TTL.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use fred::error::Error;
use fred::prelude::*;
use fred::types::Value;
use wal_core::backend::BackendError;
use wal_core::delivery::{
    status_field, TargetStatus, DELIVERY_COUNT_FIELD, STATUS_TARGET_FIELD_PREFIX,
};
use wal_core::keys::NamespaceKeys;
use wal_redis::{backend_error, RedisConnection};

use crate::reply::pairs;

/// Counts one more delivery of `message_id` in its status record and renews
/// the record's TTL; the count after this one.
pub async fn count_delivery(
    conn: &RedisConnection,
    namespace: &str,
    message_id: &str,
    ttl: Duration,
) -> Result<u32, BackendError> {
    let client = conn.connected_client()?;
    let key = NamespaceKeys::new(namespace).status(message_id);
    let pipeline = client.pipeline();
    let _: Result<(), _> = pipeline.hincrby(&key, DELIVERY_COUNT_FIELD, 1).await;
    let _: Result<(), _> = pipeline.pexpire(&key, ttl.as_millis() as i64, None).await;
    let (count, _): (i64, i64) = pipeline.all().await.map_err(backend_error)?;
    Ok(u32::try_from(count.max(1)).unwrap_or(u32::MAX))
}

/// The status of each of `targets` in the record of `message_id` (targets
/// without a readable status are left out).
pub async fn target_statuses(
    conn: &RedisConnection,
    namespace: &str,
    message_id: &str,
    targets: &[&str],
) -> Result<HashMap<String, TargetStatus>, BackendError> {
    let client = conn.connected_client()?;
    let key = NamespaceKeys::new(namespace).status(message_id);
    let fields: Vec<String> = targets.iter().map(|t| status_field(t)).collect();
    let values: Vec<Option<String>> = client.hmget(key, fields).await.map_err(backend_error)?;
    Ok(targets
        .iter()
        .zip(values)
        .filter_map(|(t, v)| {
            let status = serde_json::from_str::<TargetStatus>(v.as_deref()?).ok()?;
            Some((t.to_string(), status))
        })
        .collect())
}

/// The status record of a message, as found in Redis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageStatusRecord {
    /// The namespace it was found in.
    pub namespace: String,
    /// `createdAtMs` of the record, if set.
    pub created_at_ms: Option<u64>,
    /// Target identifier → its status (fields that do not parse are skipped
    /// with a warning).
    pub targets: BTreeMap<String, TargetStatus>,
    /// The message's DLQ entry ids (from the DLQ index), oldest first.
    pub dlq_entry_ids: Vec<String>,
}

/// Looks for the status record of `message_id` in each of `namespaces` (one
/// pipeline: `HGETALL` of the status hash and `HGET` of the DLQ index slot
/// per namespace) and returns the first found.
pub async fn find_message_status(
    conn: &RedisConnection,
    namespaces: &[String],
    message_id: &str,
) -> Result<Option<MessageStatusRecord>, BackendError> {
    if namespaces.is_empty() {
        return Ok(None);
    }
    let client = conn.connected_client()?;
    let pipeline = client.pipeline();
    for ns in namespaces {
        let keys = NamespaceKeys::new(ns);
        let queued: Result<(), Error> = async {
            pipeline
                .custom::<(), Value>(fred::cmd!("HGETALL"), vec![keys.status(message_id).into()])
                .await?;
            pipeline
                .custom::<(), Value>(
                    fred::cmd!("HGET"),
                    vec![keys.dlq_index().into(), message_id.into()],
                )
                .await
        }
        .await;
        if let Err(e) = queued {
            tracing::error!(error = %e, "could not queue a command in the pipeline");
        }
    }
    let replies = pipeline.try_all::<Value>().await;
    let mut replies = replies.into_iter();
    for ns in namespaces {
        let (Some(hash), Some(slot)) = (replies.next(), replies.next()) else {
            return Err(BackendError::Other("missing pipeline reply".into()));
        };
        let fields = pairs(hash.map_err(backend_error)?);
        if fields.is_empty() {
            continue;
        }
        let mut targets = BTreeMap::new();
        let mut created_at_ms = None;
        for (name, value) in fields {
            if name == "createdAtMs" {
                created_at_ms = value.as_string().and_then(|s| s.parse().ok());
            } else if let Some(target) = name.strip_prefix(STATUS_TARGET_FIELD_PREFIX) {
                let parsed = value.as_bytes().map(serde_json::from_slice::<TargetStatus>);
                match parsed {
                    Some(Ok(status)) => {
                        targets.insert(target.to_string(), status);
                    }
                    _ => tracing::warn!(
                        namespace = %ns,
                        message_id,
                        field = %name,
                        "unreadable target status field; skipped"
                    ),
                }
            }
        }
        let dlq_entry_ids = slot
            .map_err(backend_error)?
            .as_string()
            .map(|s| s.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default();
        return Ok(Some(MessageStatusRecord {
            namespace: ns.clone(),
            created_at_ms,
            targets,
            dlq_entry_ids,
        }));
    }
    Ok(None)
}
