//! Read-only views of a namespace's live Redis data, for the gateway's
//! status endpoints: [`inspect_namespace`] (queues of one namespace) and
//! [`find_message_status`] (where one message stands).
//!
//! Both send everything they need as one pipeline (one round trip), and read
//! each reply on its own: a missing stream or consumer group is reported as
//! such, never as a failure of the whole view.
//!
//! Nothing here writes.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use fred::error::Error;
use fred::prelude::*;
use fred::types::Value;
use wal_core::backend::BackendError;
use wal_core::delivery::{TargetStatus, STATUS_TARGET_FIELD_PREFIX};
use wal_core::keys::{NamespaceKeys, CONSUMER_GROUP};

use super::{backend_error, connection::RedisConnection};

/// The worker consumer group on one partition stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupInfo {
    /// Consumers registered in the group.
    pub consumers: u64,
    /// Entries delivered to a consumer and not yet acknowledged.
    pub pending: u64,
    /// Entries not yet delivered to the group (`None` when Redis cannot
    /// tell, e.g. after entries were deleted from the middle of the stream).
    pub lag: Option<u64>,
    /// The last entry id delivered to the group.
    pub last_delivered_id: String,
    /// Entries read by the group so far, when Redis knows.
    pub entries_read: Option<u64>,
    /// The oldest pending entry id.
    pub oldest_pending_id: Option<String>,
    /// When the oldest pending entry was appended (ms since epoch, from its id).
    pub oldest_pending_ms: Option<u64>,
}

/// One partition stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Partition number.
    pub partition: u32,
    /// Entries in the stream (`XLEN`; 0 when the stream does not exist).
    pub length: u64,
    /// The worker group, `None` when it does not exist (no worker read this
    /// partition yet, or the stream does not exist).
    pub group: Option<GroupInfo>,
}

/// A sorted set of scheduled entries (delayed or retry).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScheduleInfo {
    /// Entries in the set.
    pub size: u64,
    /// The earliest due time (ms since epoch), if the set is not empty.
    pub earliest_due_ms: Option<u64>,
}

/// Live queue data of one namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamespaceQueues {
    /// Every partition, in order.
    pub partitions: Vec<PartitionInfo>,
    /// Messages parked until their due time.
    pub delayed: ScheduleInfo,
    /// Scheduled retries.
    pub retry: ScheduleInfo,
    /// Entries in the DLQ stream.
    pub dlq_length: u64,
    /// Messages with at least one DLQ entry (slots of the DLQ index).
    pub dlq_messages: u64,
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

/// The milliseconds part of a stream id.
fn id_ms(id: &str) -> Option<u64> {
    id.split('-').next()?.parse().ok()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Reads `[k, v, k, v, …]` (or a map) into name → value.
fn pairs(v: Value) -> BTreeMap<String, Value> {
    let flat = v.into_array();
    let mut out = BTreeMap::new();
    let mut it = flat.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        if let Some(k) = k.as_string() {
            out.insert(k, v);
        }
    }
    out
}

/// Whether an error reply means "nothing there" (no stream, no group).
fn is_missing(e: &Error) -> bool {
    let d = e.details();
    d.contains("no such key") || d.starts_with("NOGROUP") || d.contains("NOGROUP")
}

fn group_info(xinfo: Result<Value, Error>) -> Result<Option<GroupInfo>, BackendError> {
    let groups = match xinfo {
        Ok(v) => v,
        Err(e) if is_missing(&e) => return Ok(None),
        Err(e) => return Err(backend_error(e)),
    };
    for g in groups.into_array() {
        let fields = pairs(g);
        if fields.get("name").and_then(Value::as_string).as_deref() != Some(CONSUMER_GROUP) {
            continue;
        }
        let num = |name: &str| fields.get(name).and_then(Value::as_u64);
        return Ok(Some(GroupInfo {
            consumers: num("consumers").unwrap_or(0),
            pending: num("pending").unwrap_or(0),
            lag: num("lag"),
            last_delivered_id: fields
                .get("last-delivered-id")
                .and_then(Value::as_string)
                .unwrap_or_default(),
            entries_read: num("entries-read"),
            oldest_pending_id: None,
            oldest_pending_ms: None,
        }));
    }
    Ok(None)
}

/// `XPENDING key group` summary → the smallest pending id.
fn oldest_pending(reply: Result<Value, Error>) -> Result<Option<String>, BackendError> {
    match reply {
        Ok(v) => {
            let items = v.into_array();
            let count = items.first().and_then(Value::as_u64).unwrap_or(0);
            if count == 0 {
                return Ok(None);
            }
            Ok(items.get(1).and_then(Value::as_string))
        }
        Err(e) if is_missing(&e) => Ok(None),
        Err(e) => Err(backend_error(e)),
    }
}

fn schedule_info(
    card: Result<Value, Error>,
    first: Result<Value, Error>,
) -> Result<ScheduleInfo, BackendError> {
    let size = card.map_err(backend_error)?.as_u64().unwrap_or(0);
    let first = first.map_err(backend_error)?.into_array();
    let earliest_due_ms = first
        .get(1)
        .and_then(|score| score.as_f64().or_else(|| score.as_string()?.parse().ok()))
        .map(|s| s.max(0.0) as u64);
    Ok(ScheduleInfo {
        size,
        earliest_due_ms: if size == 0 { None } else { earliest_due_ms },
    })
}

/// Reads the live queues of namespace `ns` with `partition_count` partitions,
/// in one round trip.
pub async fn inspect_namespace(
    conn: &RedisConnection,
    ns: &str,
    partition_count: u32,
) -> Result<NamespaceQueues, BackendError> {
    let client = conn.connected_client()?;
    let keys = NamespaceKeys::new(ns);
    let pipeline = client.pipeline();
    let queue = |r: Result<(), Error>| {
        if let Err(e) = r {
            tracing::error!(error = %e, "could not queue a command in the pipeline");
        }
    };
    for p in 0..partition_count {
        let stream = keys.stream(p);
        queue(pipeline.xlen::<(), _>(stream.as_str()).await);
        queue(
            pipeline
                .custom::<(), Value>(
                    fred::cmd!("XINFO"),
                    vec!["GROUPS".into(), stream.as_str().into()],
                )
                .await,
        );
        queue(
            pipeline
                .custom::<(), Value>(
                    fred::cmd!("XPENDING"),
                    vec![stream.as_str().into(), CONSUMER_GROUP.into()],
                )
                .await,
        );
    }
    for set in [keys.delayed(), keys.retry()] {
        queue(
            pipeline
                .custom::<(), Value>(fred::cmd!("ZCARD"), vec![set.as_str().into()])
                .await,
        );
        queue(
            pipeline
                .custom::<(), Value>(
                    fred::cmd!("ZRANGE"),
                    vec![set.as_str().into(), 0.into(), 0.into(), "WITHSCORES".into()],
                )
                .await,
        );
    }
    queue(pipeline.xlen::<(), _>(keys.dlq()).await);
    queue(
        pipeline
            .custom::<(), Value>(fred::cmd!("HLEN"), vec![keys.dlq_index().into()])
            .await,
    );

    let mut replies = pipeline.try_all::<Value>().await.into_iter();
    let mut next = || {
        replies
            .next()
            .unwrap_or_else(|| Err(Error::new(fred::error::ErrorKind::Unknown, "missing reply")))
    };
    let mut partitions = Vec::with_capacity(partition_count as usize);
    for p in 0..partition_count {
        let length = next().map_err(backend_error)?.as_u64().unwrap_or(0);
        let mut group = group_info(next())?;
        let oldest = oldest_pending(next())?;
        if let Some(g) = group.as_mut() {
            g.oldest_pending_ms = oldest.as_deref().and_then(id_ms);
            g.oldest_pending_id = oldest;
        }
        partitions.push(PartitionInfo {
            partition: p,
            length,
            group,
        });
    }
    let delayed = schedule_info(next(), next())?;
    let retry = schedule_info(next(), next())?;
    let dlq_length = next().map_err(backend_error)?.as_u64().unwrap_or(0);
    let dlq_messages = next().map_err(backend_error)?.as_u64().unwrap_or(0);
    Ok(NamespaceQueues {
        partitions,
        delayed,
        retry,
        dlq_length,
        dlq_messages,
    })
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

/// Milliseconds since `then_ms`, zero if it is in the future.
pub fn age_ms(then_ms: u64) -> u64 {
    now_ms().saturating_sub(then_ms)
}
