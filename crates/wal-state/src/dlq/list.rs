//! Reading the DLQ: the size, pages newest first ([`DlqStore::list`]), the
//! entries of one message through the index ([`DlqStore::entries_of`]), and
//! the chunked range scan that listing, requeue and purge share.
//!
//! [`DlqStore::list`] pages newest first (`XREVRANGE`); the cursor it
//! returns is the (inclusive) stream id where the next page starts, or
//! `None` when the range is exhausted. Filters on reason and target are
//! applied while scanning, so a filtered page may hold fewer than `limit`
//! entries (even none) and still carry a cursor; every call examines at most
//! [`MAX_SCAN_PER_CALL`] entries and reads at most [`LIST_READ_BYTES`] (a
//! writer who fills their own DLQ with large messages cannot make one call
//! read all of it). The first round trip reads a few entries; later ones are
//! sized from the entries seen so a reply stays near `REPLY_BYTES`
//! ([`ReadBudget`]).

use std::collections::BTreeMap;

use fred::prelude::*;
use fred::types::Value;
use wal_core::delivery::{dlq_fields, DlqReason, DlqRecord};
use wal_core::envelope::DecodeError;
use wal_core::Envelope;

use super::ids::{DlqFilter, StreamId};
use super::{
    DlqError, DlqStore, FIRST_CHUNK, LIST_READ_BYTES, MAX_SCAN_PER_CALL, REPLY_BYTES, SCAN_CHUNK,
};

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

    /// About how many bytes the entry took to read.
    pub(super) fn size(&self) -> usize {
        self.record.body.len()
            + self.record.error.len()
            + self.record.message_id.len()
            + self.record.target.len()
            + 64
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

/// `[[id, [field, value, …]], …]` → entries.
pub(super) fn parse_range(reply: Value) -> Result<Vec<DlqEntry>, DlqError> {
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

/// Direction of a scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Order {
    /// `XREVRANGE`.
    NewestFirst,
    /// `XRANGE`.
    OldestFirst,
}

/// How much a scan may still read, and how many entries to ask for next.
#[derive(Clone, Debug)]
pub(super) struct ReadBudget {
    total: usize,
    used: usize,
    seen: usize,
}

impl ReadBudget {
    /// At most `total` bytes.
    pub(super) fn new(total: usize) -> Self {
        Self {
            total,
            used: 0,
            seen: 0,
        }
    }

    /// Entries to ask for next, at most `want`: a few before anything is
    /// known, then as many as fit a reply of `REPLY_BYTES` (and the rest of
    /// the budget) at the average size seen so far.
    pub(super) fn next_chunk(&self, want: usize) -> usize {
        let fit = match self.used.checked_div(self.seen) {
            None => FIRST_CHUNK,
            Some(average) => REPLY_BYTES.min(self.total.saturating_sub(self.used)) / average.max(1),
        };
        fit.clamp(1, want.max(1))
    }

    /// Counts what a round trip read.
    pub(super) fn record(&mut self, entries: &[DlqEntry]) {
        self.seen += entries.len();
        self.used += entries.iter().map(DlqEntry::size).sum::<usize>();
    }

    /// Whether the budget is spent.
    pub(super) fn spent(&self) -> bool {
        self.used >= self.total
    }
}

/// What a scan visitor asks for after a chunk.
enum ScanStep {
    /// Keep going.
    Continue,
    /// Stop; only the first `n` entries of this chunk were consumed.
    StopAfter(usize),
}

impl DlqStore {
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
    pub(super) async fn read_range(
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
        let mut bytes = ReadBudget::new(LIST_READ_BYTES);
        loop {
            if low > high {
                return Ok((None, scanned));
            }
            let want = bytes.next_chunk(chunk.min(budget.saturating_sub(scanned)));
            let entries = self.read_range(order, low, high, want).await?;
            bytes.record(&entries);
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
            if scanned >= budget || bytes.spent() {
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
