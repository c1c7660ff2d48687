//! Reads a namespace's partition streams through the worker consumer group.
//!
//! * `receive`: `XREADGROUP … >` over the consumer's partitions. A `NOGROUP`
//!   error (the group or the stream vanished: Redis restarted without
//!   persistence, or someone deleted the key) re-creates the group and the
//!   read is tried again, so the worker heals by itself.
//! * `ack`: `XACK`, grouped per stream.
//! * `extend_visibility`: `XCLAIM <id> … 0 JUSTID` by the owner resets the
//!   entry's idle time without counting a delivery.
//! * `reclaim`: `XAUTOCLAIM` of entries idle longer than the visibility
//!   timeout, each pass going on from the cursor the last one returned, with their delivery counts read from `XPENDING`, so the worker
//!   can park an entry that keeps killing workers (`poison`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use fred::error::Error;
use fred::prelude::*;
use fred::types::Value;
use wal_core::backend::{
    AckToken, BackendError, LogConsumer, Position, ReceivedEntry, ReclaimAbandoned,
};
use wal_core::keys::{NamespaceKeys, CONSUMER_GROUP};

use wal_redis::{backend_error, RedisConnection};

/// A member of the worker consumer group on some partitions of one namespace.
pub struct RedisStreamConsumer {
    /// A dedicated connection: `XREADGROUP … BLOCK` holds its connection
    /// while it waits, so it must not share one with other traffic.
    client: Client,
    /// Everything else (acks, visibility, reclaim) goes through the shared
    /// pool, so it never queues behind a blocked read.
    conn: RedisConnection,
    keys: NamespaceKeys,
    partitions: Vec<u32>,
    consumer: String,
    /// Where the next `XAUTOCLAIM` of each partition starts (`0-0` after a
    /// full pass).
    reclaim_cursors: Mutex<HashMap<u32, String>>,
}

impl RedisStreamConsumer {
    /// A consumer named `consumer` reading `partitions` of namespace `ns`.
    /// Creates the group on each stream if it is missing.
    pub async fn new(
        conn: &RedisConnection,
        ns: &str,
        partitions: Vec<u32>,
        consumer: impl Into<String>,
    ) -> Result<Self, BackendError> {
        let client = conn.pool().next().clone_new();
        client.init().await.map_err(backend_error)?;
        let this = Self {
            client,
            conn: conn.clone(),
            keys: NamespaceKeys::new(ns),
            partitions,
            consumer: consumer.into(),
            reclaim_cursors: Mutex::new(HashMap::new()),
        };
        this.ensure_groups().await?;
        Ok(this)
    }

    /// Creates the consumer group on every partition stream where it is
    /// missing (`MKSTREAM`, from the start of the stream so nothing written
    /// before the group existed is skipped).
    pub async fn ensure_groups(&self) -> Result<(), BackendError> {
        for &p in &self.partitions {
            let res: Result<Value, Error> = self
                .client
                .xgroup_create(self.keys.stream(p), CONSUMER_GROUP, "0", true)
                .await;
            if let Err(e) = res {
                if !e.details().contains("BUSYGROUP") {
                    return Err(backend_error(e));
                }
            }
        }
        Ok(())
    }

    fn stream_of(&self, token: &AckToken) -> String {
        self.keys.stream(token.partition)
    }

    fn partition_of(&self, stream: &str) -> Option<u32> {
        self.partitions
            .iter()
            .copied()
            .find(|&p| self.keys.stream(p) == stream)
    }

    async fn read_new(&self, max: usize, wait: Duration) -> Result<Vec<ReceivedEntry>, Error> {
        let streams: Vec<String> = self
            .partitions
            .iter()
            .map(|&p| self.keys.stream(p))
            .collect();
        let ids: Vec<&str> = streams.iter().map(|_| ">").collect();
        let block = wait.as_millis().max(1) as u64;
        let reply: Value = self
            .client
            .xreadgroup(
                CONSUMER_GROUP,
                &self.consumer,
                Some(max as u64),
                Some(block),
                false,
                streams,
                ids,
            )
            .await?;
        let mut out = Vec::new();
        for (stream, entries) in parse_xread(reply) {
            let Some(partition) = self.partition_of(&stream) else {
                continue;
            };
            for (id, body) in entries {
                out.push(ReceivedEntry {
                    token: AckToken {
                        partition,
                        position: Position::StreamEntry(id),
                    },
                    body,
                    delivery_count: 1,
                });
            }
        }
        Ok(out)
    }
}

/// The `env` field of an entry's field list (empty when missing: the worker
/// then sees an undecodable entry and dead-letters it as malformed).
fn env_field(fields: &Value) -> Vec<u8> {
    let Value::Array(items) = fields else {
        return Vec::new();
    };
    items
        .chunks(2)
        .find(|kv| kv.len() == 2 && kv[0].as_str().as_deref() == Some("env"))
        .and_then(|kv| kv[1].as_bytes().map(<[u8]>::to_vec))
        .unwrap_or_default()
}

/// `[[id, [field, value, …]], …]` → `[(id, env bytes)]`.
fn parse_entries(v: &Value) -> StreamEntries {
    let Value::Array(entries) = v else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|e| match e {
            Value::Array(pair) if pair.len() == 2 => {
                Some((pair[0].as_string()?, env_field(&pair[1])))
            }
            _ => None,
        })
        .collect()
}

/// Entries of one stream: `(entry id, env bytes)`.
type StreamEntries = Vec<(String, Vec<u8>)>;

/// RESP2 `XREADGROUP` reply: `[[stream, entries], …]` or nil.
fn parse_xread(v: Value) -> Vec<(String, StreamEntries)> {
    match v {
        Value::Array(streams) => streams
            .iter()
            .filter_map(|s| match s {
                Value::Array(pair) if pair.len() == 2 => {
                    Some((pair[0].as_string()?, parse_entries(&pair[1])))
                }
                _ => None,
            })
            .collect(),
        Value::Map(map) => map
            .inner()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str()?.to_string(), parse_entries(v))))
            .collect(),
        _ => Vec::new(),
    }
}

fn is_nogroup(e: &Error) -> bool {
    e.details().contains("NOGROUP")
}

/// The dedicated connection is this consumer's alone: it closes with it.
/// (fred keeps a client's connection task alive, reconnecting for ever,
/// until it is told to quit, so a dropped consumer would otherwise leave a
/// connection open on the server for good.)
impl Drop for RedisStreamConsumer {
    fn drop(&mut self) {
        let client = self.client.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = client.quit().await;
            });
        }
    }
}

#[async_trait]
impl LogConsumer for RedisStreamConsumer {
    async fn receive(
        &self,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<ReceivedEntry>, BackendError> {
        match self.read_new(max, wait).await {
            Err(e) if is_nogroup(&e) => {
                tracing::warn!(consumer = %self.consumer, "consumer group missing; re-creating it");
                self.ensure_groups().await?;
                self.read_new(max, wait).await.map_err(backend_error)
            }
            other => other.map_err(backend_error),
        }
    }

    async fn ack(&self, tokens: &[AckToken]) -> Result<(), BackendError> {
        let client = self.conn.connected_client()?;
        let mut per_stream: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for t in tokens {
            if let Position::StreamEntry(id) = &t.position {
                per_stream
                    .entry(self.stream_of(t))
                    .or_default()
                    .push(id.clone());
            }
        }
        for (stream, ids) in per_stream {
            let _: i64 = client
                .xack(stream, CONSUMER_GROUP, ids)
                .await
                .map_err(backend_error)?;
        }
        Ok(())
    }

    async fn extend_visibility(&self, tokens: &[AckToken]) -> Result<(), BackendError> {
        self.claim_again(tokens, None).await
    }

    /// `XCLAIM … IDLE <large> JUSTID`: the entry stays pending but looks
    /// abandoned, so the next `XAUTOCLAIM` of any worker takes it.
    async fn release(&self, tokens: &[AckToken]) -> Result<(), BackendError> {
        self.claim_again(tokens, Some(RELEASED_IDLE_MS)).await
    }

    fn reclaimer(&self) -> Option<&dyn ReclaimAbandoned> {
        Some(self)
    }
}

/// Idle time given to a released entry: a day, longer than any visibility timeout.
const RELEASED_IDLE_MS: &str = "86400000";

#[async_trait]
impl ReclaimAbandoned for RedisStreamConsumer {
    /// Up to `max` entries *per partition*, so a backlog on one partition
    /// never hides another's.
    async fn reclaim(
        &self,
        min_idle: Duration,
        max: usize,
    ) -> Result<Vec<ReceivedEntry>, BackendError> {
        let client = self.conn.connected_client()?;
        let mut out = Vec::new();
        for &p in &self.partitions {
            let stream = self.keys.stream(p);
            // Go on where the last pass stopped: XAUTOCLAIM examines a
            // bounded slice of the pending list per call, so always starting
            // at 0-0 would never get past a long run of live entries.
            let cursor = self
                .reclaim_cursors()
                .get(&p)
                .cloned()
                .unwrap_or_else(|| "0-0".to_string());
            let reply: Value = client
                .xautoclaim(
                    &stream,
                    CONSUMER_GROUP,
                    &self.consumer,
                    min_idle.as_millis() as u64,
                    cursor.as_str(),
                    Some(max.max(1) as u64),
                    false,
                )
                .await
                .map_err(backend_error)?;
            let Value::Array(parts) = reply else { continue };
            if let Some(next) = parts.first().and_then(Value::as_string) {
                self.reclaim_cursors().insert(p, next);
            }
            let Some(entries) = parts.get(1) else {
                continue;
            };
            let entries = parse_entries(entries);
            let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
                continue;
            };
            let counts = self
                .delivery_counts(client, &stream, &first.0, &last.0, entries.len())
                .await
                .unwrap_or_default();
            for (id, body) in entries {
                let delivery_count = counts.get(&id).copied().unwrap_or(1);
                out.push(ReceivedEntry {
                    token: AckToken {
                        partition: p,
                        position: Position::StreamEntry(id),
                    },
                    body,
                    delivery_count,
                });
            }
        }
        Ok(out)
    }

    /// `XINFO CONSUMERS` of each partition, then `XGROUP DELCONSUMER` of every
    /// other consumer idle past `min_idle` with no pending entry. (Removing
    /// one that is alive after all costs nothing: its next read re-creates
    /// it.)
    async fn forget_idle_consumers(&self, min_idle: Duration) -> Result<Vec<String>, BackendError> {
        let client = self.conn.connected_client()?;
        let mut removed = Vec::new();
        for &p in &self.partitions {
            let stream = self.keys.stream(p);
            let reply: Result<Value, Error> = client
                .custom(
                    fred::cmd!("XINFO"),
                    vec![
                        Value::from("CONSUMERS"),
                        stream.as_str().into(),
                        CONSUMER_GROUP.into(),
                    ],
                )
                .await;
            let consumers = match reply {
                Ok(v) => v.into_array(),
                // No stream or group yet: nobody to forget.
                Err(e)
                    if e.details().contains("NOGROUP") || e.details().contains("no such key") =>
                {
                    continue
                }
                Err(e) => return Err(backend_error(e)),
            };
            for c in consumers {
                let fields = c.into_array();
                let get = |name: &str| {
                    fields
                        .chunks(2)
                        .find(|kv| kv[0].as_str().as_deref() == Some(name))
                        .map(|kv| kv[1].clone())
                };
                let (Some(name), Some(pending), Some(idle)) = (
                    get("name").and_then(|v| v.as_string()),
                    get("pending").and_then(|v| v.as_u64()),
                    get("idle").and_then(|v| v.as_u64()),
                ) else {
                    continue;
                };
                if name == self.consumer || pending > 0 || idle < min_idle.as_millis() as u64 {
                    continue;
                }
                let _: Value = client
                    .custom(
                        fred::cmd!("XGROUP"),
                        vec![
                            Value::from("DELCONSUMER"),
                            stream.as_str().into(),
                            CONSUMER_GROUP.into(),
                            name.as_str().into(),
                        ],
                    )
                    .await
                    .map_err(backend_error)?;
                removed.push(name);
            }
        }
        Ok(removed)
    }
}

impl RedisStreamConsumer {
    fn reclaim_cursors(&self) -> std::sync::MutexGuard<'_, HashMap<u32, String>> {
        self.reclaim_cursors
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `XCLAIM <ids> … [IDLE ms] JUSTID` by the owner, pipelined: resets
    /// (or, with `idle`, sets) the idle time without counting a delivery.
    async fn claim_again(
        &self,
        tokens: &[AckToken],
        idle: Option<&str>,
    ) -> Result<(), BackendError> {
        let mut per_stream: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for t in tokens {
            if let Position::StreamEntry(id) = &t.position {
                per_stream
                    .entry(self.stream_of(t))
                    .or_default()
                    .push(id.clone());
            }
        }
        if per_stream.is_empty() {
            return Ok(());
        }
        let client = self.conn.connected_client()?;
        let pipeline = client.pipeline();
        for (stream, ids) in per_stream {
            let mut args: Vec<String> = vec![
                stream,
                CONSUMER_GROUP.into(),
                self.consumer.clone(),
                "0".into(),
            ];
            args.extend(ids);
            if let Some(ms) = idle {
                args.push("IDLE".into());
                args.push(ms.into());
            }
            args.push("JUSTID".into());
            let _: () = pipeline
                .custom(fred::cmd!("XCLAIM"), args)
                .await
                .map_err(backend_error)?;
        }
        let _: Vec<Value> = pipeline.all().await.map_err(backend_error)?;
        Ok(())
    }

    /// How many times the group handed out each of this consumer's pending
    /// entries between `first` and `last` (one `XPENDING` range query).
    async fn delivery_counts(
        &self,
        client: &Client,
        stream: &str,
        first: &str,
        last: &str,
        count: usize,
    ) -> Result<std::collections::HashMap<String, u32>, Error> {
        let reply: Value = client
            .custom(
                fred::cmd!("XPENDING"),
                vec![
                    stream.to_string(),
                    CONSUMER_GROUP.to_string(),
                    first.to_string(),
                    last.to_string(),
                    count.max(1).to_string(),
                    self.consumer.clone(),
                ],
            )
            .await?;
        let mut out = std::collections::HashMap::new();
        if let Value::Array(rows) = reply {
            for row in rows {
                if let Value::Array(cols) = row {
                    if let (Some(id), Some(n)) = (
                        cols.first().and_then(Value::as_string),
                        cols.get(3).and_then(Value::as_i64),
                    ) {
                        out.insert(id, n.max(1) as u32);
                    }
                }
            }
        }
        Ok(out)
    }
}
