//! The worker's Redis-side bookkeeping: settling a handled entry and
//! activating due members of the delayed and retry sets.
//!
//! * [`RedisSchedule::settle`] records what became of one entry — target
//!   statuses, delayed / retry members, dead-letter records — and
//!   acknowledges it, in one atomic step (`settle.lua`). Entries whose only
//!   news is "delivered" skip Lua: their status fields, `PEXPIRE` and `XACK`
//!   go out as plain pipelined commands, which is the hot path.
//! * [`RedisSchedule::activate`] moves due members back into their partition
//!   streams (`activate.lua`), atomically, so two workers can never both
//!   activate one; the answer carries the new head of the set so the caller
//!   can sleep exactly until it.
//!
//! A member of either set is `<partition>:<message id>:<envelope json>`
//! ([`schedule_member`]); its score is the due time in ms.

use std::time::Duration;

use fred::clients::Pipeline;
use fred::error::Error;
use fred::prelude::*;
use fred::types::scripts::Script;
use fred::types::Value;
use wal_core::backend::{BackendError, Retention};
use wal_core::delivery::{status_field, DlqRecord, TargetStatus};
use wal_core::keys::{NamespaceKeys, CONSUMER_GROUP};

use super::backend_error;
use super::connection::RedisConnection;
use super::producer::trim_args;

const SETTLE_LUA: &str = include_str!("scripts/settle.lua");
const ACTIVATE_LUA: &str = include_str!("scripts/activate.lua");

/// Which sorted set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScheduleSet {
    /// Messages waiting for their first due time.
    Delayed,
    /// Targets waiting for their next attempt.
    Retry,
}

impl ScheduleSet {
    fn key(self, keys: &NamespaceKeys) -> String {
        match self {
            ScheduleSet::Delayed => keys.delayed(),
            ScheduleSet::Retry => keys.retry(),
        }
    }

    fn tag(self) -> &'static str {
        match self {
            ScheduleSet::Delayed => "d",
            ScheduleSet::Retry => "r",
        }
    }
}

/// The member of a delayed / retry set for an envelope.
pub fn schedule_member(partition: u32, message_id: &str, envelope_json: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(envelope_json.len() + message_id.len() + 12);
    m.extend_from_slice(partition.to_string().as_bytes());
    m.push(b':');
    m.extend_from_slice(message_id.as_bytes());
    m.push(b':');
    m.extend_from_slice(envelope_json);
    m
}

/// One piece of news about a handled entry.
#[derive(Clone, Debug)]
pub enum SettleOp {
    /// The status of one target.
    Status {
        /// Target identifier.
        target: String,
        /// Its new status.
        status: TargetStatus,
    },
    /// A member for the delayed or retry set.
    Schedule {
        /// Which set.
        set: ScheduleSet,
        /// Due time (ms since epoch).
        due_ms: u64,
        /// The member ([`schedule_member`]).
        member: Vec<u8>,
    },
    /// A dead-letter record.
    DeadLetter(DlqRecord),
}

/// Everything to record about one handled entry, and the entry to acknowledge.
#[derive(Clone, Debug)]
pub struct Settlement {
    /// Namespace of the entry.
    pub namespace: String,
    /// Partition stream the entry came from.
    pub partition: u32,
    /// Stream entry id to acknowledge, if the entry came from a stream.
    pub ack: Option<String>,
    /// Message id (names the status hash).
    pub message_id: String,
    /// The news.
    pub ops: Vec<SettleOp>,
    /// How long the status record is kept.
    pub status_ttl: Duration,
}

impl Settlement {
    /// Whether only status fields (and the ack) are recorded: no Lua needed.
    fn is_plain(&self) -> bool {
        self.ops
            .iter()
            .all(|op| matches!(op, SettleOp::Status { .. }))
    }
}

/// What one activation pass did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Activated {
    /// Members moved into streams.
    pub moved: usize,
    /// Due time of the set's new head, if the set is not empty.
    pub next_due_ms: Option<u64>,
    /// Members left in the set.
    pub remaining: u64,
}

/// Settles entries and activates due members (see the module docs).
#[derive(Clone)]
pub struct RedisSchedule {
    conn: RedisConnection,
    settle: Script,
    activate: Script,
}

impl RedisSchedule {
    /// Bookkeeping over `conn`.
    pub fn new(conn: RedisConnection) -> Self {
        Self {
            conn,
            settle: Script::from_lua(SETTLE_LUA),
            activate: Script::from_lua(ACTIVATE_LUA),
        }
    }

    /// Records several settlements in one pipeline. One result per
    /// settlement, in order: the DLQ entry ids written, or why it failed (a
    /// failed settlement did not acknowledge its entry).
    pub async fn settle(
        &self,
        batch: &[Settlement],
    ) -> Result<Vec<Result<Vec<String>, BackendError>>, BackendError> {
        let client = self.conn.connected_client()?;
        let replies = self.settle_pipeline(client, batch, true).await;
        let mut out = Vec::with_capacity(batch.len());
        let mut reload = Vec::new();
        for (i, reply) in replies.into_iter().enumerate() {
            match reply {
                Err(e) if e.details().starts_with("NOSCRIPT") => {
                    reload.push(i);
                    out.push(Ok(Vec::new()));
                }
                other => out.push(other.map(settle_reply).map_err(backend_error)),
            }
        }
        if !reload.is_empty() {
            // NOSCRIPT means the script did not run: EVAL is safe.
            let again: Vec<Settlement> = reload.iter().map(|&i| batch[i].clone()).collect();
            let replies = self.settle_pipeline(client, &again, false).await;
            for (&i, reply) in reload.iter().zip(replies) {
                out[i] = reply.map(settle_reply).map_err(backend_error);
            }
        }
        Ok(out)
    }

    /// One result per settlement: a plain one queues two or three commands
    /// whose replies fold into one result, the others one script call each.
    async fn settle_pipeline(
        &self,
        client: &Client,
        batch: &[Settlement],
        use_sha: bool,
    ) -> Vec<Result<Value, Error>> {
        let pipeline = client.pipeline();
        let mut queued: Vec<bool> = Vec::with_capacity(batch.len());
        for s in batch {
            let keys = NamespaceKeys::new(&s.namespace);
            let ok = if s.is_plain() {
                queue_plain(&pipeline, &keys, s).await
            } else {
                let (cmd, script): (_, Value) = if use_sha {
                    (fred::cmd!("EVALSHA"), self.settle.sha1().clone().into())
                } else {
                    (fred::cmd!("EVAL"), SETTLE_LUA.into())
                };
                pipeline
                    .custom::<(), Value>(cmd, settle_args(script, &keys, s))
                    .await
            };
            if let Err(e) = &ok {
                tracing::error!(error = %e, "could not queue a settlement");
            }
            queued.push(ok.is_ok());
        }
        let replies = pipeline.try_all::<Value>().await;
        // Plain settlements queued 2–3 commands; fold their replies into one.
        let mut replies = replies.into_iter();
        let mut out = Vec::with_capacity(batch.len());
        for (s, was_queued) in batch.iter().zip(queued) {
            if !was_queued {
                out.push(Err(Error::new(
                    fred::error::ErrorKind::Unknown,
                    "settlement not queued",
                )));
                continue;
            }
            let n = if s.is_plain() {
                plain_command_count(s)
            } else {
                1
            };
            let mut result: Result<Value, Error> = Ok(Value::Null);
            for _ in 0..n {
                match replies.next() {
                    Some(Err(e)) if result.is_ok() => result = Err(e),
                    Some(_) => {}
                    None => {
                        result = Err(Error::new(
                            fred::error::ErrorKind::Unknown,
                            "missing pipeline reply",
                        ))
                    }
                }
            }
            out.push(result);
        }
        out
    }

    /// Moves up to `max` members of `set` due at `now_ms` into the
    /// namespace's partition streams.
    pub async fn activate(
        &self,
        namespace: &str,
        set: ScheduleSet,
        partition_count: u32,
        retention: Retention,
        now_ms: u64,
        max: usize,
    ) -> Result<Activated, BackendError> {
        let client = self.conn.connected_client()?;
        let keys = NamespaceKeys::new(namespace);
        let mut script_keys = vec![set.key(&keys)];
        script_keys.extend((0..partition_count.max(1)).map(|p| keys.stream(p)));
        let (cap, threshold) = trim_args(retention, now_ms);
        let args = [
            now_ms.to_string(),
            max.max(1).to_string(),
            cap.to_string(),
            threshold,
        ];
        let client = client.with_options(&self.conn.command_options());
        let call = |cmd, script: Value| {
            let mut full: Vec<Value> = vec![script, (script_keys.len() as i64).into()];
            full.extend(script_keys.iter().map(|k| Value::from(k.as_str())));
            full.extend(args.iter().map(|a| Value::from(a.as_str())));
            client.custom::<Value, Value>(cmd, full)
        };
        let reply = match call(fred::cmd!("EVALSHA"), self.activate.sha1().clone().into()).await {
            // NOSCRIPT means the script did not run: EVAL is safe.
            Err(e) if e.details().starts_with("NOSCRIPT") => {
                call(fred::cmd!("EVAL"), ACTIVATE_LUA.into())
                    .await
                    .map_err(backend_error)?
            }
            other => other.map_err(backend_error)?,
        };
        parse_activated(reply)
    }

    /// Size and earliest due time of `set`.
    pub async fn peek(
        &self,
        namespace: &str,
        set: ScheduleSet,
    ) -> Result<(u64, Option<u64>), BackendError> {
        let client = self.conn.connected_client()?;
        let key = set.key(&NamespaceKeys::new(namespace));
        let pipeline = client.pipeline();
        let _: () = pipeline.zcard(&key).await.map_err(backend_error)?;
        let _: () = pipeline
            .zrange(&key, 0, 0, None, false, None, true)
            .await
            .map_err(backend_error)?;
        let (len, head): (u64, Vec<Value>) = pipeline.all().await.map_err(backend_error)?;
        let due = head.get(1).and_then(score_ms);
        Ok((len, due))
    }
}

fn score_ms(v: &Value) -> Option<u64> {
    match v {
        Value::Double(f) => Some(*f as u64),
        Value::Integer(i) => Some(*i as u64),
        other => other
            .as_string()
            .and_then(|s| s.parse::<f64>().ok())
            .map(|f| f as u64),
    }
}

fn parse_activated(v: Value) -> Result<Activated, BackendError> {
    let Value::Array(items) = v else {
        return Err(BackendError::Other("unexpected activate reply".into()));
    };
    let moved = items.first().and_then(Value::as_i64).unwrap_or(0).max(0) as usize;
    let next_due_ms = items
        .get(1)
        .and_then(score_ms)
        .filter(|_| items.get(1).and_then(Value::as_string).as_deref() != Some("-1"));
    let remaining = items.get(2).and_then(Value::as_i64).unwrap_or(0).max(0) as u64;
    Ok(Activated {
        moved,
        next_due_ms,
        remaining,
    })
}

fn settle_reply(v: Value) -> Vec<String> {
    match v {
        Value::Array(ids) => ids.iter().filter_map(Value::as_string).collect(),
        _ => Vec::new(),
    }
}

fn plain_command_count(s: &Settlement) -> usize {
    let has_status = !s.ops.is_empty();
    2 * usize::from(has_status) + usize::from(s.ack.is_some())
}

async fn queue_plain(
    pipeline: &Pipeline<Client>,
    keys: &NamespaceKeys,
    s: &Settlement,
) -> Result<(), Error> {
    if !s.ops.is_empty() {
        let status_key = keys.status(&s.message_id);
        let fields: Vec<(String, String)> = s
            .ops
            .iter()
            .filter_map(|op| match op {
                SettleOp::Status { target, status } => Some((
                    status_field(target),
                    serde_json::to_string(status).unwrap_or_default(),
                )),
                _ => None,
            })
            .collect();
        pipeline.hset::<(), _, _>(&status_key, fields).await?;
        pipeline
            .pexpire::<(), _>(&status_key, s.status_ttl.as_millis().max(1) as i64, None)
            .await?;
    }
    if let Some(id) = &s.ack {
        pipeline
            .xack::<(), _, _, _>(keys.stream(s.partition), CONSUMER_GROUP, id.as_str())
            .await?;
    }
    Ok(())
}

fn settle_args(script: Value, keys: &NamespaceKeys, s: &Settlement) -> Vec<Value> {
    let mut args: Vec<Value> = vec![
        script,
        6.into(),
        keys.stream(s.partition).into(),
        keys.delayed().into(),
        keys.retry().into(),
        keys.dlq().into(),
        keys.dlq_index().into(),
        keys.status(&s.message_id).into(),
        CONSUMER_GROUP.into(),
        s.ack.clone().unwrap_or_default().into(),
        (s.status_ttl.as_millis().max(1) as i64).to_string().into(),
    ];
    for op in &s.ops {
        match op {
            SettleOp::Status { target, status } => {
                args.push("S".into());
                args.push(status_field(target).into());
                args.push(serde_json::to_string(status).unwrap_or_default().into());
            }
            SettleOp::Schedule {
                set,
                due_ms,
                member,
            } => {
                args.push("Z".into());
                args.push(set.tag().into());
                args.push(due_ms.to_string().into());
                args.push(Value::Bytes(member.clone().into()));
            }
            SettleOp::DeadLetter(rec) => {
                args.push("D".into());
                for (_, value) in rec.fields() {
                    args.push(Value::Bytes(value.into()));
                }
            }
        }
    }
    args
}
