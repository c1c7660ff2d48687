//! Purge: deleting DLQ entries — all of them in one step, or those a filter
//! matches, oldest first, chunk by chunk (so a long purge makes progress
//! even if a later read fails), each chunk's entries and index slots in one
//! `dlq_purge.lua` call. The worker's retention sweep is a purge by time.

use std::sync::LazyLock;

use fred::types::Value;
use wal_redis::LuaScript;

use super::ids::StreamId;
use super::list::Order;
use super::list::ReadBudget;
use super::{DlqError, DlqFilter, DlqStore, ADMIN_READ_BYTES, MAX_SCAN_PER_CALL, SCAN_CHUNK};

static PURGE: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new(include_str!("../scripts/dlq_purge.lua")));
static PURGE_ALL: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new(include_str!("../scripts/dlq_purge_all.lua")));

/// Result of [`DlqStore::purge`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PurgeSummary {
    /// Entries deleted.
    pub purged: u64,
    /// `false` when the scan budget stopped the purge before the end of the
    /// range (call again to continue).
    pub complete: bool,
}

impl DlqStore {
    /// Deletes the entries matching `filter` (an empty filter empties the
    /// DLQ in one step) and cleans the index.
    pub async fn purge(&self, filter: &DlqFilter) -> Result<PurgeSummary, DlqError> {
        let client = self.client()?;
        if filter.is_empty() {
            let reply = PURGE_ALL
                .call(
                    client,
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
        let mut bytes = ReadBudget::new(ADMIN_READ_BYTES);
        loop {
            if low > high {
                break;
            }
            if scanned >= MAX_SCAN_PER_CALL || bytes.spent() {
                complete = false;
                break;
            }
            let want = bytes.next_chunk(SCAN_CHUNK.min(MAX_SCAN_PER_CALL - scanned));
            let chunk = self.read_range(Order::OldestFirst, low, high, want).await?;
            bytes.record(&chunk);
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
                let reply = PURGE
                    .call(
                        client,
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
}
