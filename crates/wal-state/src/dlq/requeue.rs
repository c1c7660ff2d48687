//! Requeue: putting dead-lettered entries back into their partition
//! streams, one entry ([`DlqStore::requeue_message`]) or every entry a
//! filter matches ([`DlqStore::requeue_matching`]), and the budget of
//! requeue-by-filter calls shared by every gateway.
//!
//! [`requeued_envelope`] turns the stored envelope into a fresh attempt:
//! `attempt = 0`, due now, no expiry (an operator asked for it, so an expired
//! message is delivered), history kept, targets narrowed to the record's
//! target when it names one, and the partition kept (modulo the current
//! partition count, in case the namespace shrank). A record whose body does
//! not decode as an envelope cannot be requeued ([`EntryRequeue::Malformed`]):
//! an operator inspects and purges it. Requeued entries are appended without
//! trimming; the next regular append trims the stream.
//!
//! Each entry moves in one `dlq_requeue.lua` call, only while the index still
//! lists it: `XADD` to its partition stream, `XDEL` from the DLQ, drop from
//! the index, mark the target(s) `pending`. Two concurrent requeues of one
//! entry therefore append it exactly once; the loser sees
//! [`EntryRequeue::Gone`]. Requeue by filter sends one script call per
//! entry in a pipeline, scanning oldest first (`XRANGE`) so requeued
//! messages re-enter the log in the order they failed: each entry moves
//! atomically, the batch does not, and calling again after a failure is
//! safe.

use std::time::Duration;

use std::sync::LazyLock;

use fred::types::Value;
use wal_core::delivery::{status_field, DlqRecord, TargetState, TargetStatus};
use wal_core::envelope::DecodeError;
use wal_core::request::TargetRef;
use wal_core::Envelope;
use wal_redis::LuaScript;

use super::ids::{DlqFilter, StreamId};
use super::list::ReadBudget;
use super::list::{DlqEntry, Order};
use super::{DlqError, DlqStore, ADMIN_READ_BYTES, MAX_SCAN_PER_CALL, SCAN_CHUNK};
use crate::rate_limit::{take_window_permit, Permit};

static REQUEUE: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new(include_str!("../scripts/dlq_requeue.lua")));

/// Settings of a requeue.
#[derive(Clone, Copy, Debug)]
pub struct RequeueOptions {
    /// The current time (ms since epoch): the new due time, and the status time.
    pub now_ms: u64,
    /// The namespace's current partition count (a record's partition is
    /// taken modulo it).
    pub partition_count: u32,
    /// TTL given to the message's status hash (renewed by the requeue).
    pub status_ttl: Duration,
}

/// A DLQ entry that was appended back to its partition stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequeuedEntry {
    /// The DLQ entry id (now deleted).
    pub entry_id: String,
    /// The message id.
    pub message_id: String,
    /// The target it is requeued for (empty: every target of its envelope).
    pub target: String,
    /// The partition it was appended to.
    pub partition: u32,
    /// The id of the new partition stream entry.
    pub stream_entry_id: String,
}

/// What happened to one entry of a requeue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryRequeue {
    /// Appended back to its partition stream and removed from the DLQ.
    Requeued(RequeuedEntry),
    /// No longer in the DLQ (requeued or purged concurrently): nothing done.
    Gone {
        /// The DLQ entry id.
        entry_id: String,
    },
    /// Its body is not a decodable envelope: left in the DLQ.
    Malformed {
        /// The DLQ entry id.
        entry_id: String,
        /// Why it cannot be decoded.
        error: String,
    },
}

/// Result of [`DlqStore::requeue_matching`].
#[derive(Clone, Debug, Default)]
pub struct RequeueSummary {
    /// Entries requeued, oldest first.
    pub requeued: Vec<RequeuedEntry>,
    /// Matching entries left in the DLQ because their body is not an envelope.
    pub skipped_malformed: Vec<String>,
    /// Matching entries that vanished between the scan and the requeue.
    pub skipped_gone: usize,
    /// Entries examined.
    pub scanned: usize,
    /// Whether matching entries may remain (the limit or the scan budget was reached).
    pub has_more: bool,
}

/// The envelope to append when requeuing `record`: attempt 0, due at
/// `now_ms`, no expiry, history kept, targets narrowed to `record.target`
/// when it names one, partition `record.partition % partition_count`.
pub fn requeued_envelope(
    record: &DlqRecord,
    now_ms: u64,
    partition_count: u32,
) -> Result<Envelope, DecodeError> {
    let mut env = Envelope::decode(&record.body)?;
    env.attempt = 0;
    env.due_at_ms = now_ms;
    env.lifecycle.expires_at_ms = None;
    env.partition = record.partition % partition_count.max(1);
    if !record.target.is_empty() {
        let narrowed: Vec<TargetRef> = env
            .targets
            .iter()
            .filter(|t| t.identifier == record.target)
            .cloned()
            .collect();
        env.targets = if narrowed.is_empty() {
            vec![TargetRef::named(record.target.clone())]
        } else {
            narrowed
        };
    }
    Ok(env)
}

impl DlqStore {
    /// Runs the requeue script for each `(entry, envelope)`, in one pipeline.
    async fn requeue_entries(
        &self,
        items: &[(&DlqEntry, Envelope)],
        opts: &RequeueOptions,
    ) -> Result<Vec<EntryRequeue>, DlqError> {
        let client = self.client()?;
        let status = TargetStatus {
            state: TargetState::Pending,
            attempt: 0,
            updated_at_ms: opts.now_ms,
            next_at_ms: None,
            last_error: None,
            reason: None,
        };
        let status_json = serde_json::to_string(&status)
            .map_err(|e| DlqError::UnexpectedReply(format!("status encoding: {e}")))?;
        let ttl_ms = opts.status_ttl.as_millis().max(1).to_string();
        let calls: Vec<(Vec<Value>, Vec<Value>)> = items
            .iter()
            .map(|(entry, env)| {
                let message_id = entry.record.message_id.clone();
                let keys: Vec<Value> = vec![
                    self.keys.dlq().into(),
                    self.keys.dlq_index().into(),
                    self.keys.stream(env.partition).into(),
                    self.keys.status(&message_id).into(),
                ];
                let mut args: Vec<Value> = vec![
                    entry.entry_id.clone().into(),
                    message_id.into(),
                    Value::Bytes(env.encode().into()),
                    status_json.clone().into(),
                    ttl_ms.clone().into(),
                    env.created_at_ms.to_string().into(),
                ];
                args.extend(
                    env.targets
                        .iter()
                        .map(|t| status_field(&t.identifier).into()),
                );
                (keys, args)
            })
            .collect();
        let replies = REQUEUE.call_many(client, calls).await;
        let mut out = Vec::with_capacity(items.len());
        for ((entry, env), reply) in items.iter().zip(replies) {
            let reply = reply?;
            let parsed = match &reply {
                Value::Array(v) if v.len() == 2 => v[0].as_i64().zip(v[1].as_string()),
                _ => None,
            };
            out.push(match parsed {
                Some((1, stream_entry_id)) => EntryRequeue::Requeued(RequeuedEntry {
                    entry_id: entry.entry_id.clone(),
                    message_id: entry.record.message_id.clone(),
                    target: entry.record.target.clone(),
                    partition: env.partition,
                    stream_entry_id,
                }),
                Some((0, _)) => EntryRequeue::Gone {
                    entry_id: entry.entry_id.clone(),
                },
                _ => return Err(DlqError::UnexpectedReply(format!("{reply:?}"))),
            });
        }
        Ok(out)
    }

    /// Requeues every DLQ entry of `message_id`. If any entry's body is not a
    /// decodable envelope, nothing is requeued and the malformed entries are
    /// returned (the caller refuses). An empty answer means the message has
    /// no DLQ entry.
    pub async fn requeue_message(
        &self,
        message_id: &str,
        opts: &RequeueOptions,
    ) -> Result<Vec<EntryRequeue>, DlqError> {
        let entries = self.entries_of(message_id).await?;
        let mut items = Vec::with_capacity(entries.len());
        let mut malformed = Vec::new();
        for entry in &entries {
            match requeued_envelope(&entry.record, opts.now_ms, opts.partition_count) {
                Ok(env) => items.push((entry, env)),
                Err(e) => malformed.push(EntryRequeue::Malformed {
                    entry_id: entry.entry_id.clone(),
                    error: e.to_string(),
                }),
            }
        }
        if !malformed.is_empty() {
            return Ok(malformed);
        }
        self.requeue_entries(&items, opts).await
    }

    /// Requeues up to `limit` entries matching `filter`, oldest first.
    /// Malformed entries are skipped (left in the DLQ) and do not count
    /// against `limit`; at most [`MAX_SCAN_PER_CALL`] entries are examined.
    pub async fn requeue_matching(
        &self,
        filter: &DlqFilter,
        limit: usize,
        opts: &RequeueOptions,
    ) -> Result<RequeueSummary, DlqError> {
        let mut summary = RequeueSummary::default();
        let (mut low, high) = filter.id_range();
        let mut bytes = ReadBudget::new(ADMIN_READ_BYTES);
        let mut scanned_total = 0usize;
        loop {
            if summary.requeued.len() >= limit {
                summary.has_more = true;
                break;
            }
            if scanned_total >= MAX_SCAN_PER_CALL || bytes.spent() {
                summary.has_more = true;
                break;
            }
            if low > high {
                break;
            }
            let want = bytes.next_chunk(SCAN_CHUNK.min(MAX_SCAN_PER_CALL - scanned_total));
            let chunk = self.read_range(Order::OldestFirst, low, high, want).await?;
            bytes.record(&chunk);
            let full = chunk.len() == want;
            let room = limit - summary.requeued.len();
            let mut items = Vec::new();
            let mut consumed = 0usize;
            for entry in &chunk {
                if items.len() == room {
                    break;
                }
                consumed += 1;
                if !filter.matches(&entry.record) {
                    continue;
                }
                match requeued_envelope(&entry.record, opts.now_ms, opts.partition_count) {
                    Ok(env) => items.push((entry, env)),
                    Err(_) => summary.skipped_malformed.push(entry.entry_id.clone()),
                }
            }
            scanned_total += consumed;
            for outcome in self.requeue_entries(&items, opts).await? {
                match outcome {
                    EntryRequeue::Requeued(r) => summary.requeued.push(r),
                    EntryRequeue::Gone { .. } => summary.skipped_gone += 1,
                    EntryRequeue::Malformed { entry_id, .. } => {
                        summary.skipped_malformed.push(entry_id)
                    }
                }
            }
            if consumed < chunk.len() {
                // Stopped by the limit with entries left in this chunk.
                summary.has_more = true;
                break;
            }
            if !full {
                break;
            }
            let Some(last) = chunk
                .last()
                .and_then(|e| e.entry_id.parse::<StreamId>().ok())
            else {
                break;
            };
            let Some(next) = last.succ() else {
                break;
            };
            low = next;
        }
        summary.scanned = scanned_total;
        Ok(summary)
    }

    /// Takes one requeue-by-filter call from the namespace's budget of
    /// `per_window` calls per `window`, shared by every gateway.
    pub async fn take_requeue_permit(
        &self,
        per_window: u32,
        window: Duration,
    ) -> Result<Permit, DlqError> {
        let client = self.client()?;
        Ok(take_window_permit(client, self.requeue_rate_key(), per_window, window).await?)
    }
}
