//! The dead-letter queue of a namespace, in Redis: [`DlqStore`].
//!
//! ## Layout (see [`wal_core::keys`] and [`wal_core::delivery`])
//!
//! * `wal:{ns}:dlq` — a stream, one entry per dead-lettered *(message,
//!   target)*, with the fields of [`DlqRecord::fields`]. Entry ids are
//!   assigned by Redis (`XADD … *`), so an entry id's milliseconds are the
//!   time it was dead-lettered; time filters are stream-id ranges.
//! * `wal:{ns}:dlq:idx` — a hash: message id → its DLQ entry ids,
//!   space-separated, oldest first. The index is the authority on whether an
//!   entry is still in the DLQ: [`DlqStore::add`] writes the entry and its
//!   index slot in one script, and requeue and purge remove both in one
//!   script. Readers tolerate an index slot whose stream entry is gone (the
//!   stream may be trimmed by retention) by skipping it.
//!
//! ## Atomicity
//!
//! Every move is one Lua script on keys sharing the namespace's hash tag:
//!
//! * `dlq_add.lua` — `XADD` to the DLQ + append to the index slot.
//! * `dlq_requeue.lua` — only while the index still lists the entry: `XADD`
//!   the requeued envelope to its partition stream (fields `id`, `env`, as the
//!   producer writes them), `XDEL` the DLQ entry, drop it from the index
//!   (`HDEL` when the slot becomes empty) and mark the target(s) `pending` in
//!   the status hash. Two concurrent requeues of one entry therefore append it
//!   exactly once; the loser sees [`EntryRequeue::Gone`].
//! * `dlq_purge.lua` — `XDEL` + index cleanup of a set of entries;
//!   `dlq_purge_all.lua` — delete the stream and the index together.
//! * `dlq_requeue_rate.lua` — the fixed-window counter that limits
//!   requeue-by-filter calls per namespace across all gateways.
//!
//! ## Scanning
//!
//! [`DlqStore::list`] pages newest first (`XREVRANGE`); the cursor it returns
//! is the (inclusive) stream id where the next page starts, or `None` when the
//! range is exhausted. Filters on reason and target are applied while
//! scanning, so a filtered page may hold fewer than `limit` entries (even
//! none) and still carry a cursor; every call examines at most
//! [`MAX_SCAN_PER_CALL`] entries. Requeue-by-filter and purge scan oldest
//! first (`XRANGE`), so requeued messages re-enter the log in the order they
//! failed.
//!
//! ## Requeue
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
//! Requeue by filter sends one script call per entry in a pipeline: each
//! entry moves atomically, the batch does not. If Redis fails part-way, some
//! entries may already be back in their streams; calling again is safe,
//! since an entry leaves the DLQ (and its index) in the same step that
//! re-appends it and is therefore requeued at most once.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use fred::error::Error;
use fred::prelude::*;
use fred::types::scripts::Script;
use fred::types::Value;
use wal_core::backend::BackendError;
use wal_core::delivery::{
    dlq_fields, status_field, DlqReason, DlqRecord, TargetState, TargetStatus,
};
use wal_core::envelope::DecodeError;
use wal_core::keys::NamespaceKeys;
use wal_core::request::TargetRef;
use wal_core::Envelope;

use super::{backend_error, connection::RedisConnection};

/// Most DLQ entries one list, requeue or purge call examines; a call that
/// stops there says so (a cursor, `has_more`, `complete: false`).
pub const MAX_SCAN_PER_CALL: usize = 10_000;

/// Entries read per round trip while scanning.
const SCAN_CHUNK: usize = 200;

/// A Lua script kept as a file, with its SHA-1 computed once.
struct LuaScript {
    source: &'static str,
    script: Script,
}

impl LuaScript {
    fn new(source: &'static str) -> Self {
        Self {
            source,
            script: Script::from_lua(source),
        }
    }
}

static ADD: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new(include_str!("scripts/dlq_add.lua")));
static REQUEUE: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new(include_str!("scripts/dlq_requeue.lua")));
static PURGE: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new(include_str!("scripts/dlq_purge.lua")));
static PURGE_ALL: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new(include_str!("scripts/dlq_purge_all.lua")));
static REQUEUE_RATE: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new(include_str!("scripts/dlq_requeue_rate.lua")));

/// Why a DLQ operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    /// Redis could not be asked, or answered with an error.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A cursor that is not a stream id (`<ms>-<seq>`).
    #[error("invalid cursor: expected the value of a previous page's nextCursor")]
    InvalidCursor,
    /// Redis answered something this code does not understand.
    #[error("unexpected reply from Redis: {0}")]
    UnexpectedReply(String),
}

impl From<Error> for DlqError {
    fn from(e: Error) -> Self {
        DlqError::Backend(backend_error(e))
    }
}

/// A Redis stream entry id, `<ms>-<seq>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    /// Milliseconds part.
    pub ms: u64,
    /// Sequence part.
    pub seq: u64,
}

impl StreamId {
    /// The smallest id.
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    /// The largest id.
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    /// The first id of millisecond `ms`.
    pub fn first_of(ms: u64) -> Self {
        Self { ms, seq: 0 }
    }

    /// The last id of millisecond `ms`.
    pub fn last_of(ms: u64) -> Self {
        Self { ms, seq: u64::MAX }
    }

    /// The id just before this one, if any.
    pub fn pred(self) -> Option<Self> {
        match (self.ms, self.seq) {
            (0, 0) => None,
            (ms, 0) => Some(Self::last_of(ms - 1)),
            (ms, seq) => Some(Self { ms, seq: seq - 1 }),
        }
    }

    /// The id just after this one, if any.
    pub fn succ(self) -> Option<Self> {
        match (self.ms, self.seq) {
            (u64::MAX, u64::MAX) => None,
            (ms, u64::MAX) => Some(Self::first_of(ms + 1)),
            (ms, seq) => Some(Self { ms, seq: seq + 1 }),
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Error for text that is not a stream id.
#[derive(Debug, thiserror::Error)]
#[error("not a stream entry id (expected <ms>-<seq>)")]
pub struct InvalidStreamId;

impl FromStr for StreamId {
    type Err = InvalidStreamId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (ms, seq) = s.split_once('-').ok_or(InvalidStreamId)?;
        let digits = |p: &str| {
            if p.is_empty() || p.len() > 20 || !p.bytes().all(|b| b.is_ascii_digit()) {
                Err(InvalidStreamId)
            } else {
                p.parse::<u64>().map_err(|_| InvalidStreamId)
            }
        };
        Ok(Self {
            ms: digits(ms)?,
            seq: digits(seq)?,
        })
    }
}

/// Which DLQ entries an operation applies to. Every set condition must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DlqFilter {
    /// Only entries dead-lettered for this reason.
    pub reason: Option<DlqReason>,
    /// Only entries of this target (exact identifier).
    pub target: Option<String>,
    /// Only entries dead-lettered at or after this time (ms since epoch).
    pub from_ms: Option<u64>,
    /// Only entries dead-lettered at or before this time (ms since epoch).
    pub to_ms: Option<u64>,
}

impl DlqFilter {
    /// Whether no condition is set (the filter matches every entry).
    pub fn is_empty(&self) -> bool {
        self.reason.is_none()
            && self.target.is_none()
            && self.from_ms.is_none()
            && self.to_ms.is_none()
    }

    /// Whether `record` passes the reason and target conditions (the time
    /// conditions are applied as the scanned stream-id range).
    pub fn matches(&self, record: &DlqRecord) -> bool {
        self.reason.is_none_or(|r| r == record.reason)
            && self.target.as_deref().is_none_or(|t| t == record.target)
    }

    /// The stream-id range of the time conditions, `(lowest, highest)`.
    fn id_range(&self) -> (StreamId, StreamId) {
        (
            self.from_ms
                .map(StreamId::first_of)
                .unwrap_or(StreamId::MIN),
            self.to_ms.map(StreamId::last_of).unwrap_or(StreamId::MAX),
        )
    }
}

/// One entry of the DLQ stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DlqEntry {
    /// The stream entry id (the handle for requeue and purge).
    pub entry_id: String,
    /// The record. An entry whose fields are not a valid record is shown as
    /// reason `malformed`, with what could be read and the problem as error.
    pub record: DlqRecord,
}

impl DlqEntry {
    /// Builds an entry from stream fields; never fails (see [`DlqEntry::record`]).
    pub fn from_fields(entry_id: String, fields: BTreeMap<String, Vec<u8>>) -> Self {
        let record = match DlqRecord::from_fields(&fields) {
            Ok(r) => r,
            Err(e) => {
                let text = |name: &str| {
                    fields
                        .get(name)
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                };
                let number = |name: &str| text(name).and_then(|t| t.parse::<u64>().ok());
                DlqRecord {
                    message_id: text(dlq_fields::ID)
                        .filter(|id| !id.is_empty())
                        .unwrap_or_else(|| format!("malformed-dlq-{entry_id}")),
                    reason: DlqReason::Malformed,
                    target: text(dlq_fields::TARGET).unwrap_or_default(),
                    error: format!("unreadable dead-letter record: {e}"),
                    attempts: number(dlq_fields::ATTEMPTS).unwrap_or(0) as u32,
                    partition: number(dlq_fields::PARTITION).unwrap_or(0) as u32,
                    at_ms: number(dlq_fields::AT)
                        .unwrap_or_else(|| entry_id.parse::<StreamId>().map(|i| i.ms).unwrap_or(0)),
                    body: fields.get(dlq_fields::ENV).cloned().unwrap_or_default(),
                }
            }
        };
        Self { entry_id, record }
    }

    /// The stored envelope, decoded.
    pub fn envelope(&self) -> Result<Envelope, DecodeError> {
        Envelope::decode(&self.record.body)
    }
}

/// One page of [`DlqStore::list`].
#[derive(Clone, Debug, Default)]
pub struct DlqPage {
    /// Matching entries, newest first.
    pub entries: Vec<DlqEntry>,
    /// Where the next page starts (pass it back as `cursor`), `None` at the end.
    pub next_cursor: Option<String>,
    /// Entries examined for this page.
    pub scanned: usize,
}

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

/// Result of [`DlqStore::purge`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PurgeSummary {
    /// Entries deleted.
    pub purged: u64,
    /// `false` when the scan budget stopped the purge before the end of the
    /// range (call again to continue).
    pub complete: bool,
}

/// Answer of [`DlqStore::take_requeue_permit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permit {
    /// Go ahead.
    Granted,
    /// Refused; the window ends after this long.
    Refused(Duration),
}

/// The DLQ of one namespace. Cheap to build (one per request is fine).
#[derive(Clone)]
pub struct DlqStore {
    conn: RedisConnection,
    keys: NamespaceKeys,
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

/// `[[id, [field, value, …]], …]` → entries.
fn parse_range(reply: Value) -> Result<Vec<DlqEntry>, DlqError> {
    let mut out = Vec::new();
    for item in reply.into_array() {
        let mut pair = match item {
            Value::Array(pair) if pair.len() == 2 => pair,
            Value::Null => continue,
            other => return Err(DlqError::UnexpectedReply(format!("stream entry {other:?}"))),
        };
        let fields_value = pair.pop().unwrap_or(Value::Null);
        let id = pair
            .pop()
            .and_then(|v| v.as_string())
            .ok_or_else(|| DlqError::UnexpectedReply("stream entry without an id".into()))?;
        let mut fields = BTreeMap::new();
        let flat = fields_value.into_array();
        for kv in flat.chunks(2) {
            if let [k, v] = kv {
                if let (Some(k), Some(v)) = (k.as_string(), v.as_bytes()) {
                    fields.insert(k, v.to_vec());
                }
            }
        }
        out.push(DlqEntry::from_fields(id, fields));
    }
    Ok(out)
}

fn is_noscript(e: &Error) -> bool {
    e.details().starts_with("NOSCRIPT")
}

/// Runs `script` once per `(keys, args)` in one pipeline (`EVALSHA`), and
/// again with `EVAL` for the calls Redis did not have the script for
/// (`NOSCRIPT` means it did not run, so resending is safe).
async fn eval_many(
    client: &Client,
    script: &LuaScript,
    calls: &[(Vec<Value>, Vec<Value>)],
) -> Vec<Result<Value, Error>> {
    async fn send(
        client: &Client,
        script: &LuaScript,
        calls: &[&(Vec<Value>, Vec<Value>)],
        by_sha: bool,
    ) -> Vec<Result<Value, Error>> {
        let pipeline = client.pipeline();
        for (keys, args) in calls {
            let (cmd, head): (_, Value) = if by_sha {
                (fred::cmd!("EVALSHA"), script.script.sha1().clone().into())
            } else {
                (fred::cmd!("EVAL"), script.source.into())
            };
            let mut all: Vec<Value> = Vec::with_capacity(2 + keys.len() + args.len());
            all.push(head);
            all.push((keys.len() as i64).into());
            all.extend(keys.iter().cloned());
            all.extend(args.iter().cloned());
            if let Err(e) = pipeline.custom::<(), Value>(cmd, all).await {
                tracing::error!(error = %e, "could not queue a script call in the pipeline");
            }
        }
        pipeline.try_all::<Value>().await
    }
    if calls.is_empty() {
        return Vec::new();
    }
    let all: Vec<&(Vec<Value>, Vec<Value>)> = calls.iter().collect();
    let mut replies = send(client, script, &all, true).await;
    let reload: Vec<usize> = replies
        .iter()
        .enumerate()
        .filter(|(_, r)| matches!(r, Err(e) if is_noscript(e)))
        .map(|(i, _)| i)
        .collect();
    if !reload.is_empty() {
        let again: Vec<&(Vec<Value>, Vec<Value>)> = reload.iter().map(|&i| &calls[i]).collect();
        let second = send(client, script, &again, false).await;
        for (i, r) in reload.into_iter().zip(second) {
            replies[i] = r;
        }
    }
    replies
}

async fn eval_one(
    client: &Client,
    script: &LuaScript,
    keys: Vec<Value>,
    args: Vec<Value>,
) -> Result<Value, DlqError> {
    eval_many(client, script, &[(keys, args)])
        .await
        .pop()
        .unwrap_or_else(|| Err(Error::new(fred::error::ErrorKind::Unknown, "no reply")))
        .map_err(DlqError::from)
}

/// Direction of a scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Order {
    NewestFirst,
    OldestFirst,
}

impl DlqStore {
    /// The DLQ of namespace `namespace` (a validated name) over `conn`.
    pub fn new(conn: RedisConnection, namespace: &str) -> Self {
        Self {
            conn,
            keys: NamespaceKeys::new(namespace),
        }
    }

    /// The key layout this store works on.
    pub fn keys(&self) -> &NamespaceKeys {
        &self.keys
    }

    /// The key of the requeue-by-filter rate counter, `wal:{ns}:dlq:requeue-rl`.
    pub fn requeue_rate_key(&self) -> String {
        format!("{}:requeue-rl", self.keys.dlq())
    }

    fn client(&self) -> Result<&Client, DlqError> {
        Ok(self.conn.connected_client()?)
    }

    /// Dead-letters `record`: appends it to the DLQ stream and its entry id
    /// to the index slot of its message, atomically. Returns the entry id.
    pub async fn add(&self, record: &DlqRecord) -> Result<String, DlqError> {
        let client = self.client()?;
        let mut args: Vec<Value> = vec![record.message_id.clone().into()];
        for (name, value) in record.fields() {
            args.push(name.into());
            args.push(Value::Bytes(value.into()));
        }
        let reply = eval_one(
            client,
            &ADD,
            vec![self.keys.dlq().into(), self.keys.dlq_index().into()],
            args,
        )
        .await?;
        reply
            .as_string()
            .ok_or_else(|| DlqError::UnexpectedReply(format!("{reply:?}")))
    }

    /// Number of entries in the DLQ stream.
    pub async fn len(&self) -> Result<u64, DlqError> {
        let client = self.client()?;
        Ok(client
            .with_options(&self.conn.command_options())
            .xlen::<u64, _>(self.keys.dlq())
            .await?)
    }

    /// Whether the DLQ stream is empty.
    pub async fn is_empty(&self) -> Result<bool, DlqError> {
        Ok(self.len().await? == 0)
    }

    /// Reads up to `count` entries between `low` and `high` (inclusive).
    async fn read_range(
        &self,
        order: Order,
        low: StreamId,
        high: StreamId,
        count: usize,
    ) -> Result<Vec<DlqEntry>, DlqError> {
        let client = self.client()?.with_options(&self.conn.command_options());
        let reply: Value = match order {
            Order::NewestFirst => {
                client
                    .xrevrange(
                        self.keys.dlq(),
                        high.to_string(),
                        low.to_string(),
                        Some(count as u64),
                    )
                    .await?
            }
            Order::OldestFirst => {
                client
                    .xrange(
                        self.keys.dlq(),
                        low.to_string(),
                        high.to_string(),
                        Some(count as u64),
                    )
                    .await?
            }
        };
        parse_range(reply)
    }

    /// Scans `[low, high]` in `order`, handing each chunk to `visit`, which
    /// says whether to go on. Returns where the scan stopped: the next id to
    /// examine (`None` when the range is exhausted) and the entries examined.
    async fn scan<F>(
        &self,
        order: Order,
        (mut low, mut high): (StreamId, StreamId),
        chunk: usize,
        budget: usize,
        mut visit: F,
    ) -> Result<(Option<StreamId>, usize), DlqError>
    where
        F: FnMut(&[DlqEntry]) -> ScanStep,
    {
        let mut scanned = 0usize;
        loop {
            if low > high {
                return Ok((None, scanned));
            }
            let want = chunk.min(budget.saturating_sub(scanned)).max(1);
            let entries = self.read_range(order, low, high, want).await?;
            let full = entries.len() == want;
            let step = visit(&entries);
            let consumed = match step {
                ScanStep::Continue => entries.len(),
                ScanStep::StopAfter(n) => n.min(entries.len()),
            };
            scanned += consumed;
            // The next id to examine, from the last consumed entry (or the
            // first unconsumed one).
            let next = if consumed < entries.len() {
                entries[consumed].entry_id.parse::<StreamId>().ok()
            } else if let Some(last) = entries.last() {
                let last: StreamId = last
                    .entry_id
                    .parse()
                    .map_err(|_| DlqError::UnexpectedReply("invalid stream id".into()))?;
                match order {
                    Order::NewestFirst => last.pred(),
                    Order::OldestFirst => last.succ(),
                }
            } else {
                None
            };
            if matches!(step, ScanStep::StopAfter(_)) {
                // Stopped by the visitor: the next entry is known only if one was read.
                let next = if consumed < entries.len() || full {
                    next
                } else {
                    None
                };
                return Ok((next, scanned));
            }
            if !full {
                return Ok((None, scanned));
            }
            let Some(next) = next else {
                return Ok((None, scanned));
            };
            match order {
                Order::NewestFirst => high = next,
                Order::OldestFirst => low = next,
            }
            if scanned >= budget {
                return Ok((Some(next), scanned));
            }
        }
    }

    /// One page of entries matching `filter`, newest first, starting at
    /// `cursor` (a previous page's `next_cursor`), at most `limit` entries.
    pub async fn list(
        &self,
        filter: &DlqFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<DlqPage, DlqError> {
        let limit = limit.max(1);
        let (low, mut high) = filter.id_range();
        if let Some(c) = cursor {
            let c: StreamId = c.parse().map_err(|_| DlqError::InvalidCursor)?;
            high = high.min(c);
        }
        let filtered = filter.reason.is_some() || filter.target.is_some();
        // Unfiltered: read one more than the page to learn whether there is a next one.
        let chunk = if filtered {
            SCAN_CHUNK.max(limit + 1)
        } else {
            limit + 1
        };
        let mut out: Vec<DlqEntry> = Vec::new();
        let (next, scanned) = self
            .scan(
                Order::NewestFirst,
                (low, high),
                chunk,
                MAX_SCAN_PER_CALL,
                |entries| {
                    for (i, e) in entries.iter().enumerate() {
                        if out.len() == limit {
                            return ScanStep::StopAfter(i);
                        }
                        if filter.matches(&e.record) {
                            out.push(e.clone());
                        }
                    }
                    ScanStep::Continue
                },
            )
            .await?;
        Ok(DlqPage {
            entries: out,
            next_cursor: next.map(|n| n.to_string()),
            scanned,
        })
    }

    /// Every DLQ entry of message `message_id` (through the index), oldest
    /// first; entries the index names but the stream no longer holds are
    /// skipped.
    pub async fn entries_of(&self, message_id: &str) -> Result<Vec<DlqEntry>, DlqError> {
        let client = self.client()?;
        let slot: Option<String> = client
            .with_options(&self.conn.command_options())
            .hget(self.keys.dlq_index(), message_id)
            .await?;
        let ids: Vec<StreamId> = slot
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|id| id.parse().ok())
            .collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let pipeline = client.pipeline();
        for id in &ids {
            let id = id.to_string();
            let _: () = pipeline
                .xrange(self.keys.dlq(), id.as_str(), id.as_str(), Some(1))
                .await?;
        }
        let mut out = Vec::new();
        for reply in pipeline.try_all::<Value>().await {
            out.extend(parse_range(reply?)?);
        }
        Ok(out)
    }

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
        let replies = eval_many(client, &REQUEUE, &calls).await;
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
        let mut scanned_total = 0usize;
        loop {
            if summary.requeued.len() >= limit {
                summary.has_more = true;
                break;
            }
            if scanned_total >= MAX_SCAN_PER_CALL {
                summary.has_more = true;
                break;
            }
            if low > high {
                break;
            }
            let want = SCAN_CHUNK.min(MAX_SCAN_PER_CALL - scanned_total);
            let chunk = self.read_range(Order::OldestFirst, low, high, want).await?;
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

    /// Deletes the entries matching `filter` (an empty filter empties the
    /// DLQ in one step) and cleans the index.
    pub async fn purge(&self, filter: &DlqFilter) -> Result<PurgeSummary, DlqError> {
        let client = self.client()?;
        if filter.is_empty() {
            let reply = eval_one(
                client,
                &PURGE_ALL,
                vec![self.keys.dlq().into(), self.keys.dlq_index().into()],
                vec![],
            )
            .await?;
            let purged = reply
                .as_u64()
                .ok_or_else(|| DlqError::UnexpectedReply(format!("{reply:?}")))?;
            return Ok(PurgeSummary {
                purged,
                complete: true,
            });
        }
        let mut purged = 0u64;
        let (mut low, high) = filter.id_range();
        let mut scanned = 0usize;
        let mut complete = true;
        loop {
            if low > high {
                break;
            }
            if scanned >= MAX_SCAN_PER_CALL {
                complete = false;
                break;
            }
            let want = SCAN_CHUNK.min(MAX_SCAN_PER_CALL - scanned);
            let chunk = self.read_range(Order::OldestFirst, low, high, want).await?;
            scanned += chunk.len();
            // Delete chunk by chunk, so a long purge makes progress even if a later read fails.
            let args: Vec<Value> = chunk
                .iter()
                .filter(|e| filter.matches(&e.record))
                .flat_map(|e| {
                    [
                        Value::from(e.entry_id.clone()),
                        Value::from(e.record.message_id.clone()),
                    ]
                })
                .collect();
            if !args.is_empty() {
                let reply = eval_one(
                    client,
                    &PURGE,
                    vec![self.keys.dlq().into(), self.keys.dlq_index().into()],
                    args,
                )
                .await?;
                purged += reply
                    .as_u64()
                    .ok_or_else(|| DlqError::UnexpectedReply(format!("{reply:?}")))?;
            }
            if chunk.len() < want {
                break;
            }
            let Some(next) = chunk
                .last()
                .and_then(|e| e.entry_id.parse::<StreamId>().ok())
                .and_then(StreamId::succ)
            else {
                break;
            };
            low = next;
        }
        Ok(PurgeSummary { purged, complete })
    }

    /// Takes one requeue-by-filter call from the namespace's budget of
    /// `per_window` calls per `window`, shared by every gateway.
    pub async fn take_requeue_permit(
        &self,
        per_window: u32,
        window: Duration,
    ) -> Result<Permit, DlqError> {
        let client = self.client()?;
        let reply = eval_one(
            client,
            &REQUEUE_RATE,
            vec![self.requeue_rate_key().into()],
            vec![
                per_window.to_string().into(),
                window.as_millis().max(1).to_string().into(),
            ],
        )
        .await?;
        match &reply {
            Value::Array(v) if v.len() == 2 => match (v[0].as_i64(), v[1].as_i64()) {
                (Some(1), _) => Ok(Permit::Granted),
                (Some(0), Some(wait)) => {
                    Ok(Permit::Refused(Duration::from_millis(wait.max(1) as u64)))
                }
                _ => Err(DlqError::UnexpectedReply(format!("{reply:?}"))),
            },
            _ => Err(DlqError::UnexpectedReply(format!("{reply:?}"))),
        }
    }
}

/// What a scan visitor asks for after a chunk.
enum ScanStep {
    /// Keep going.
    Continue,
    /// Stop; only the first `n` entries of this chunk were consumed.
    StopAfter(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_parse_print_and_step() {
        let id: StreamId = "1700000000000-5".parse().unwrap();
        assert_eq!(
            id,
            StreamId {
                ms: 1_700_000_000_000,
                seq: 5
            }
        );
        assert_eq!(id.to_string(), "1700000000000-5");
        assert_eq!(id.pred().unwrap().to_string(), "1700000000000-4");
        assert_eq!(StreamId::first_of(7).pred().unwrap(), StreamId::last_of(6));
        assert_eq!(StreamId::last_of(6).succ().unwrap(), StreamId::first_of(7));
        assert!(StreamId::MIN.pred().is_none());
        assert!(StreamId::MAX.succ().is_none());
        for bad in [
            "",
            "1",
            "1-",
            "-1",
            "a-1",
            "1-2-3",
            "+",
            "99999999999999999999999-0",
        ] {
            assert!(bad.parse::<StreamId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn filters_match_reason_and_target() {
        let rec = DlqRecord {
            message_id: "m".into(),
            reason: DlqReason::Permanent,
            target: "sink".into(),
            error: "HTTP 400".into(),
            attempts: 1,
            partition: 0,
            at_ms: 1,
            body: vec![],
        };
        assert!(DlqFilter::default().matches(&rec));
        assert!(DlqFilter::default().is_empty());
        let by_reason = DlqFilter {
            reason: Some(DlqReason::Permanent),
            ..Default::default()
        };
        assert!(by_reason.matches(&rec));
        let other_reason = DlqFilter {
            reason: Some(DlqReason::Expired),
            ..Default::default()
        };
        assert!(!other_reason.matches(&rec));
        let other_target = DlqFilter {
            target: Some("cache".into()),
            ..Default::default()
        };
        assert!(!other_target.matches(&rec));
        let times = DlqFilter {
            from_ms: Some(10),
            to_ms: Some(20),
            ..Default::default()
        };
        assert!(!times.is_empty());
        assert_eq!(
            times.id_range(),
            (StreamId::first_of(10), StreamId::last_of(20))
        );
    }

    #[test]
    fn an_unreadable_record_is_shown_as_malformed() {
        let fields = BTreeMap::from([
            ("id".to_string(), b"01J00000000000000000000000".to_vec()),
            ("reason".to_string(), b"gremlins".to_vec()),
        ]);
        let e = DlqEntry::from_fields("42-0".into(), fields);
        assert_eq!(e.record.reason, DlqReason::Malformed);
        assert_eq!(e.record.message_id, "01J00000000000000000000000");
        assert_eq!(e.record.at_ms, 42);
        assert!(e.record.error.contains("reason"), "{}", e.record.error);
    }
}

/// Against the Redis of `WAL_TEST_REDIS_URL` (default `127.0.0.1:6379`),
/// each test in its own random namespace, deleting its keys at the end.
#[cfg(test)]
mod redis_tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::redis_streams::RedisConnectionConfig;

    async fn connect() -> RedisConnection {
        let url =
            std::env::var("WAL_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        RedisConnection::connect(
            &RedisConnectionConfig {
                url,
                ..Default::default()
            },
            Duration::from_secs(3),
        )
        .await
        .expect("Redis client")
    }

    fn random_ns() -> String {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        format!(
            "dlqstore-{}-{nanos}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )
    }

    async fn cleanup(conn: &RedisConnection, ns: &str) {
        let keys: Vec<String> = conn
            .pool()
            .custom(fred::cmd!("KEYS"), vec![format!("wal:{{{ns}}}:*")])
            .await
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: Result<i64, _> = conn.pool().del(keys).await;
        }
    }

    fn envelope(ns: &str, targets: &[&str]) -> Envelope {
        let json = serde_json::json!({
            "v": 1, "id": wal_core::MessageId::generate().to_string(), "namespace": ns,
            "payload": {"k": 1},
            "targets": targets.iter().map(|t| serde_json::json!({"identifier": t})).collect::<Vec<_>>(),
            "lifecycle": {"retryPolicy": {}, "enableDlq": true, "expiresAtMs": 5},
            "partition": 3, "requestId": "r", "createdAtMs": 1, "dueAtMs": 1, "attempt": 4,
            "history": [{"target": targets[0], "attempt": 4, "atMs": 2, "outcome": "permanent", "error": "HTTP 400"}],
        });
        Envelope::decode(json.to_string().as_bytes()).unwrap()
    }

    fn record(env: &Envelope, reason: DlqReason, target: &str) -> DlqRecord {
        DlqRecord {
            message_id: env.id.to_string(),
            reason,
            target: target.into(),
            error: "HTTP 400".into(),
            attempts: 4,
            partition: env.partition,
            at_ms: 10,
            body: env.encode(),
        }
    }

    fn opts(partition_count: u32) -> RequeueOptions {
        RequeueOptions {
            now_ms: 1_000,
            partition_count,
            status_ttl: Duration::from_secs(60),
        }
    }

    #[test]
    fn the_requeued_envelope_is_a_fresh_attempt_for_the_failed_target() {
        let env = envelope("ns", &["a", "b"]);
        let rec = record(&env, DlqReason::Expired, "b");
        let back = requeued_envelope(&rec, 1_000, 2).unwrap();
        assert_eq!(back.attempt, 0);
        assert_eq!(back.due_at_ms, 1_000);
        assert_eq!(back.lifecycle.expires_at_ms, None);
        assert_eq!(back.partition, 1, "3 modulo 2 partitions");
        assert_eq!(back.targets, vec![TargetRef::named("b")]);
        assert_eq!(back.history.len(), 1);
        // A record without a target (poison) keeps every target.
        let rec = record(&env, DlqReason::Poison, "");
        assert_eq!(requeued_envelope(&rec, 1, 8).unwrap().targets.len(), 2);
        // Garbage is refused.
        let mut rec = record(&env, DlqReason::Malformed, "");
        rec.body = b"nope".to_vec();
        assert!(requeued_envelope(&rec, 1, 8).is_err());
    }

    #[tokio::test]
    async fn add_index_list_and_inspect() {
        let conn = connect().await;
        let ns = random_ns();
        let store = DlqStore::new(conn.clone(), &ns);
        let env = envelope(&ns, &["a", "b"]);
        let e1 = store
            .add(&record(&env, DlqReason::Permanent, "a"))
            .await
            .unwrap();
        let e2 = store
            .add(&record(&env, DlqReason::MaxAttempts, "b"))
            .await
            .unwrap();
        let mut others = Vec::new();
        for _ in 0..7 {
            let o = envelope(&ns, &["a"]);
            others.push(
                store
                    .add(&record(&o, DlqReason::Expired, "a"))
                    .await
                    .unwrap(),
            );
        }
        assert_eq!(store.len().await.unwrap(), 9);
        let slot: String = conn
            .pool()
            .hget(store.keys().dlq_index(), env.id.to_string())
            .await
            .unwrap();
        assert_eq!(slot, format!("{e1} {e2}"));

        let entries = store.entries_of(&env.id.to_string()).await.unwrap();
        assert_eq!(
            entries
                .iter()
                .map(|e| e.entry_id.clone())
                .collect::<Vec<_>>(),
            [e1.clone(), e2.clone()]
        );
        assert_eq!(entries[0].envelope().unwrap().history.len(), 1);

        // Pages of 2, newest first, every entry once.
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = store
                .list(&DlqFilter::default(), cursor.as_deref(), 2)
                .await
                .unwrap();
            seen.extend(page.entries.into_iter().map(|e| e.entry_id));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let mut expected: Vec<String> =
            [e1.clone(), e2.clone()].into_iter().chain(others).collect();
        expected.reverse();
        assert_eq!(seen, expected);

        // A filtered page.
        let filter = DlqFilter {
            reason: Some(DlqReason::MaxAttempts),
            ..Default::default()
        };
        let page = store.list(&filter, None, 10).await.unwrap();
        assert_eq!(page.entries.len(), 1);
        assert_eq!(page.entries[0].entry_id, e2);
        assert!(page.next_cursor.is_none());
        assert!(matches!(
            store.list(&filter, Some("x"), 10).await,
            Err(DlqError::InvalidCursor)
        ));
        cleanup(&conn, &ns).await;
    }

    #[tokio::test]
    async fn requeue_is_atomic_and_happens_once() {
        let conn = connect().await;
        let ns = random_ns();
        let store = DlqStore::new(conn.clone(), &ns);
        let env = envelope(&ns, &["a", "b"]);
        let id = env.id.to_string();
        let entry = store
            .add(&record(&env, DlqReason::Permanent, "a"))
            .await
            .unwrap();

        let o = opts(4);
        let (r1, r2) = tokio::join!(
            store.requeue_message(&id, &o),
            store.requeue_message(&id, &o)
        );
        let all: Vec<EntryRequeue> = r1.unwrap().into_iter().chain(r2.unwrap()).collect();
        let requeued: Vec<&RequeuedEntry> = all
            .iter()
            .filter_map(|o| match o {
                EntryRequeue::Requeued(r) => Some(r),
                _ => None,
            })
            .collect();
        assert_eq!(requeued.len(), 1, "{all:?}");
        assert_eq!(requeued[0].entry_id, entry);
        assert_eq!(requeued[0].partition, 3);
        assert_eq!(store.len().await.unwrap(), 0);
        let stream_len: u64 = conn.pool().xlen(store.keys().stream(3)).await.unwrap();
        assert_eq!(stream_len, 1);
        let slot: Option<String> = conn
            .pool()
            .hget(store.keys().dlq_index(), &id)
            .await
            .unwrap();
        assert!(slot.is_none());
        let status: String = conn
            .pool()
            .hget(store.keys().status(&id), "t:a")
            .await
            .unwrap();
        let status: TargetStatus = serde_json::from_str(&status).unwrap();
        assert_eq!(status.state, TargetState::Pending);
        let ttl: i64 = conn.pool().pttl(store.keys().status(&id)).await.unwrap();
        assert!(ttl > 0 && ttl <= 60_000, "{ttl}");
        cleanup(&conn, &ns).await;
    }

    #[tokio::test]
    async fn requeue_by_filter_purge_and_the_rate_counter() {
        let conn = connect().await;
        let ns = random_ns();
        let store = DlqStore::new(conn.clone(), &ns);
        for i in 0..6 {
            let env = envelope(&ns, &["a"]);
            let reason = if i % 2 == 0 {
                DlqReason::Permanent
            } else {
                DlqReason::Expired
            };
            store.add(&record(&env, reason, "a")).await.unwrap();
        }
        let mut bad = record(&envelope(&ns, &["a"]), DlqReason::Permanent, "a");
        bad.body = b"garbage".to_vec();
        let bad_entry = store.add(&bad).await.unwrap();

        let permanent = DlqFilter {
            reason: Some(DlqReason::Permanent),
            ..Default::default()
        };
        let s = store
            .requeue_matching(&permanent, 2, &opts(4))
            .await
            .unwrap();
        assert_eq!(s.requeued.len(), 2);
        assert!(s.has_more);
        let s = store
            .requeue_matching(&permanent, 10, &opts(4))
            .await
            .unwrap();
        assert_eq!(s.requeued.len(), 1);
        assert_eq!(s.skipped_malformed, vec![bad_entry.clone()]);
        assert!(!s.has_more);
        assert_eq!(store.len().await.unwrap(), 4);

        let expired = DlqFilter {
            reason: Some(DlqReason::Expired),
            ..Default::default()
        };
        let p = store.purge(&expired).await.unwrap();
        assert_eq!(
            p,
            PurgeSummary {
                purged: 3,
                complete: true
            }
        );
        assert_eq!(store.len().await.unwrap(), 1);
        let p = store.purge(&DlqFilter::default()).await.unwrap();
        assert_eq!(p.purged, 1);
        let left: u64 = conn
            .pool()
            .exists(vec![store.keys().dlq(), store.keys().dlq_index()])
            .await
            .unwrap();
        assert_eq!(left, 0);

        let window = Duration::from_secs(5);
        assert_eq!(
            store.take_requeue_permit(2, window).await.unwrap(),
            Permit::Granted
        );
        assert_eq!(
            store.take_requeue_permit(2, window).await.unwrap(),
            Permit::Granted
        );
        match store.take_requeue_permit(2, window).await.unwrap() {
            Permit::Refused(wait) => assert!(wait <= window && !wait.is_zero(), "{wait:?}"),
            other => panic!("{other:?}"),
        }
        cleanup(&conn, &ns).await;
    }
}
