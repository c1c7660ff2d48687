//! Settling a handled entry: recording what became of each of its targets
//! and acknowledging it, in one step.
//!
//! A [`Settlement`] carries the news about one entry — target statuses,
//! delayed / retry members ([`crate::schedule`]), dead-letter records
//! ([`crate::dlq`]) — and the stream entry to `XACK`.
//! [`RedisSchedule::settle`] sends a batch of them as one pipeline:
//!
//! every settlement is one `settle.lua` call, which writes every piece and
//! acknowledges the entry last, atomically: there is no instant where an
//! entry is acked but its fate unrecorded, also when Redis refuses writes
//! (out of memory: the script stops before the `XACK`). Sent again — its
//! reply was lost and the worker retries — it records nothing twice (see
//! the script's header): no second dead letter.

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
        /// The member ([`crate::schedule_member`]).
        member: Vec<u8>,
    },
    /// A dead-letter record.
    DeadLetter(DlqRecord),
    /// A retry member parked while `target`'s circuit breaker is open,
    /// until [`crate::parking`] releases it into the retry set.
    Park {
        /// Target identifier.
        target: String,
        /// The member ([`crate::schedule_member`]).
        member: Vec<u8>,
    },
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
                let (script_keys, args) = settle_args(&NamespaceKeys::new(&s.namespace), s);
                vec![Command::script(&self.settle, script_keys, args)]
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

/// `KEYS` and `ARGV` of `settle.lua` (see the script's header).
fn settle_args(keys: &NamespaceKeys, s: &Settlement) -> (Vec<Value>, Vec<Value>) {
    // Without a stream entry to check, a settlement that writes dead letters
    // is marked by the digest of its content (a retry sends the same bytes).
    let writes_dead_letters = s.ops.iter().any(|op| matches!(op, SettleOp::DeadLetter(_)));
    let marker = (s.ack.is_none() && writes_dead_letters).then(|| digest(s));
    let mut script_keys: Vec<Value> = vec![
        keys.stream(s.partition).into(),
        keys.delayed().into(),
        keys.retry().into(),
        keys.dlq().into(),
        keys.dlq_index().into(),
        keys.status(&s.message_id).into(),
    ];
    script_keys.push(match &marker {
        Some(d) => keys.settled(d).into(),
        None => keys.status(&s.message_id).into(),
    });
    script_keys.push(keys.parked().into());
    let mut args: Vec<Value> = vec![
        CONSUMER_GROUP.into(),
        s.ack.clone().unwrap_or_default().into(),
        (s.status_ttl.as_millis().max(1) as i64).to_string().into(),
        if marker.is_some() {
            (MARKER_TTL.as_millis() as i64).to_string().into()
        } else {
            "0".into()
        },
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
            SettleOp::Park { target, member } => {
                args.push("P".into());
                args.push(target.as_str().into());
                args.push(Value::Bytes(member.clone().into()));
            }
        }
    }
    (script_keys, args)
}

/// How long the marker of a Kafka/SQS settlement is kept: far longer than
/// any retry of it takes.
const MARKER_TTL: Duration = Duration::from_secs(3600);

/// FNV-1a of what a settlement records, as hex: the same settlement sent
/// again has the same digest; another handling of the message (another
/// time, attempt or outcome) another one.
fn digest(s: &Settlement) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash ^= 0xff;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    };
    feed(s.message_id.as_bytes());
    for op in &s.ops {
        match op {
            SettleOp::Status { target, status } => {
                feed(target.as_bytes());
                feed(serde_json::to_string(status).unwrap_or_default().as_bytes());
            }
            SettleOp::Schedule { due_ms, member, .. } => {
                feed(&due_ms.to_be_bytes());
                feed(member);
            }
            SettleOp::DeadLetter(rec) => {
                for (_, value) in rec.fields() {
                    feed(&value);
                }
            }
            SettleOp::Park { target, member } => {
                feed(target.as_bytes());
                feed(member);
            }
        }
    }
    format!("{hash:016x}")
}
