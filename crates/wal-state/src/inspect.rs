//! A read-only view of a namespace's live Redis data, for the gateway's
//! namespace status endpoint: [`inspect_namespace`] — its partition streams
//! and consumer group, delayed and retry sets, and DLQ.
//!
//! It sends everything it needs as one pipeline (one round trip), and reads
//! each reply on its own: a missing stream or consumer group is reported as
//! such, never as a failure of the whole view. (Where one message stands is
//! [`crate::status::find_message_status`].)
//!
//! Nothing here writes.

use std::time::{SystemTime, UNIX_EPOCH};

use fred::error::Error;
use fred::prelude::*;
use fred::types::Value;
use wal_core::backend::BackendError;
use wal_core::keys::{NamespaceKeys, CONSUMER_GROUP};

use wal_redis::{backend_error, RedisConnection};

use crate::reply::pairs;

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

/// Partitions `from..upto` of namespace `ns` whose stream still holds
/// entries the worker group has not finished — never read, or read and not
/// acknowledged — although the namespace no longer routes to them (its
/// `partitionCount` was lowered to `from`). Workers keep reading and
/// reclaiming these until they are done, so lowering the count strands
/// nothing.
pub async fn retired_partitions(
    conn: &RedisConnection,
    ns: &str,
    from: u32,
    upto: u32,
) -> Result<Vec<u32>, BackendError> {
    if from >= upto {
        return Ok(Vec::new());
    }
    let client = conn.connected_client()?;
    let keys = NamespaceKeys::new(ns);
    let pipeline = client.pipeline();
    for p in from..upto {
        if let Err(e) = pipeline.xlen::<(), _>(keys.stream(p)).await {
            tracing::error!(error = %e, "could not queue a command in the pipeline");
        }
    }
    let lengths = pipeline.try_all::<Value>().await;
    let holding: Vec<u32> = (from..upto)
        .zip(lengths)
        .filter(|(_, len)| matches!(len, Ok(v) if v.as_u64().unwrap_or(0) > 0))
        .map(|(p, _)| p)
        .collect();
    if holding.is_empty() {
        return Ok(Vec::new());
    }
    let pipeline = client.pipeline();
    for &p in &holding {
        let queued = pipeline
            .custom::<(), Value>(
                fred::cmd!("XINFO"),
                vec!["GROUPS".into(), keys.stream(p).into()],
            )
            .await;
        if let Err(e) = queued {
            tracing::error!(error = %e, "could not queue a command in the pipeline");
        }
    }
    let groups = pipeline.try_all::<Value>().await;
    let mut out = Vec::new();
    for (p, reply) in holding.into_iter().zip(groups) {
        let unfinished = match group_info(reply)? {
            // Entries and no group: none of them was ever read.
            None => true,
            // Unknown lag (entries deleted mid-stream): assume some are unread.
            Some(g) => g.pending > 0 || g.lag != Some(0),
        };
        if unfinished {
            out.push(p);
        }
    }
    Ok(out)
}

/// Milliseconds since `then_ms`, zero if it is in the future.
pub fn age_ms(then_ms: u64) -> u64 {
    now_ms().saturating_sub(then_ms)
}
