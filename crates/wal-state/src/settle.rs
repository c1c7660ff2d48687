//! Settling a handled entry: recording what became of each of its targets
//! and acknowledging it, in one step.
//!
//! A [`Settlement`] carries the news about one entry — target statuses,
//! delayed / retry members ([`crate::schedule`]), dead-letter records
//! ([`crate::dlq`]) — and the stream entry to `XACK`.
//! [`RedisSchedule::settle`] sends a batch of them as one pipeline:
//!
//! * an entry with anything beyond statuses goes through `settle.lua`, which
//!   writes every piece and acknowledges the entry atomically, so there is
//!   no instant where an entry is acked but its fate unrecorded;
//! * an entry whose only news is statuses (the all-delivered hot path) skips
//!   Lua: `HSET` of the status fields, `PEXPIRE`, `XACK`, pipelined.

use std::time::Duration;

use fred::types::Value;
use wal_core::backend::BackendError;
use wal_core::delivery::{status_field, DlqRecord, TargetStatus};
use wal_core::keys::{NamespaceKeys, CONSUMER_GROUP};
use wal_redis::{backend_error, run_pipeline, Command};

use crate::schedule::{RedisSchedule, ScheduleSet};

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

impl RedisSchedule {
    /// Records several settlements in one pipeline. One result per
    /// settlement, in order: the DLQ entry ids written, or why it failed (a
    /// failed settlement did not acknowledge its entry).
    pub async fn settle(
        &self,
        batch: &[Settlement],
    ) -> Result<Vec<Result<Vec<String>, BackendError>>, BackendError> {
        let client = self.conn.connected_client()?;
        let items = batch
            .iter()
            .map(|s| {
                let keys = NamespaceKeys::new(&s.namespace);
                if s.is_plain() {
                    plain_commands(&keys, s)
                } else {
                    let (script_keys, args) = settle_args(&keys, s);
                    vec![Command::script(&self.settle, script_keys, args)]
                }
            })
            .collect();
        Ok(run_pipeline(client, items)
            .await
            .into_iter()
            .map(|reply| reply.map(settle_reply).map_err(backend_error))
            .collect())
    }
}

fn settle_reply(v: Value) -> Vec<String> {
    match v {
        Value::Array(ids) => ids.iter().filter_map(Value::as_string).collect(),
        _ => Vec::new(),
    }
}

/// `HSET` + `PEXPIRE` of the status record (when there is news) and `XACK`.
fn plain_commands(keys: &NamespaceKeys, s: &Settlement) -> Vec<Command<'static>> {
    let mut commands = Vec::with_capacity(3);
    if !s.ops.is_empty() {
        let status_key = keys.status(&s.message_id);
        let mut hset: Vec<Value> = Vec::with_capacity(1 + 2 * s.ops.len());
        hset.push(status_key.as_str().into());
        for op in &s.ops {
            if let SettleOp::Status { target, status } = op {
                hset.push(status_field(target).into());
                hset.push(serde_json::to_string(status).unwrap_or_default().into());
            }
        }
        commands.push(Command::plain("HSET", hset));
        commands.push(Command::plain(
            "PEXPIRE",
            vec![
                status_key.into(),
                (s.status_ttl.as_millis().max(1) as i64).into(),
            ],
        ));
    }
    if let Some(id) = &s.ack {
        commands.push(Command::plain(
            "XACK",
            vec![
                keys.stream(s.partition).into(),
                CONSUMER_GROUP.into(),
                id.as_str().into(),
            ],
        ));
    }
    commands
}

/// `KEYS` and `ARGV` of `settle.lua` (see the script's header).
fn settle_args(keys: &NamespaceKeys, s: &Settlement) -> (Vec<Value>, Vec<Value>) {
    let script_keys: Vec<Value> = vec![
        keys.stream(s.partition).into(),
        keys.delayed().into(),
        keys.retry().into(),
        keys.dlq().into(),
        keys.dlq_index().into(),
        keys.status(&s.message_id).into(),
    ];
    let mut args: Vec<Value> = vec![
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
    (script_keys, args)
}
