//! The dead-letter queue of a namespace, in Redis: [`DlqStore`]. This file
//! holds the store itself and [`DlqStore::add`]; each other job has its own
//! file (below).
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
//! * the requeue-by-filter budget is a fixed-window counter of
//!   [`crate::rate_limit`].
//!
//! ## Files
//!
//! * `ids.rs` — stream entry ids and filters;
//! * `list.rs` — size, pages, a message's entries, the shared range scan;
//! * `requeue.rs` — back into the partition streams, and the requeue budget;
//! * `purge.rs` — deletion, by filter or all at once.

mod ids;
mod list;
mod purge;
mod requeue;

pub use ids::{DlqFilter, InvalidStreamId, StreamId};
pub use list::{DlqEntry, DlqPage};
pub use purge::PurgeSummary;
pub use requeue::{requeued_envelope, EntryRequeue, RequeueOptions, RequeueSummary, RequeuedEntry};

pub use crate::rate_limit::Permit;

use std::sync::LazyLock;

use fred::error::Error;
use fred::prelude::*;
use fred::types::Value;
use wal_core::backend::BackendError;
use wal_core::delivery::DlqRecord;
use wal_core::keys::NamespaceKeys;
use wal_redis::{backend_error, LuaScript, RedisConnection};

use crate::rate_limit::RateLimitError;

/// Most DLQ entries one list, requeue or purge call examines; a call that
/// stops there says so (a cursor, `has_more`, `complete: false`).
pub const MAX_SCAN_PER_CALL: usize = 10_000;

/// Most entries read per round trip while scanning.
const SCAN_CHUNK: usize = 200;

/// Entries read by the first round trip of a scan, before their size is known.
const FIRST_CHUNK: usize = 8;

/// Bytes one round trip of a scan aims to stay under (its entry count is
/// sized from the entries read so far).
const REPLY_BYTES: usize = 2 << 20;

/// Bytes one list call reads at the most (any key that may read the
/// namespace can call it); a call that stops there answers a cursor.
pub const LIST_READ_BYTES: usize = 8 << 20;

/// Bytes one requeue-by-filter or purge call reads at the most (admin keys).
pub const ADMIN_READ_BYTES: usize = 64 << 20;

static ADD: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new(include_str!("../scripts/dlq_add.lua")));

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

impl From<RateLimitError> for DlqError {
    fn from(e: RateLimitError) -> Self {
        match e {
            RateLimitError::Redis(e) => DlqError::from(e),
            RateLimitError::UnexpectedReply(r) => DlqError::UnexpectedReply(r),
        }
    }
}

/// The DLQ of one namespace. Cheap to build (one per request is fine).
#[derive(Clone)]
pub struct DlqStore {
    conn: RedisConnection,
    keys: NamespaceKeys,
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
        let reply = ADD
            .call(
                client,
                vec![self.keys.dlq().into(), self.keys.dlq_index().into()],
                args,
            )
            .await?;
        reply
            .as_string()
            .ok_or_else(|| DlqError::UnexpectedReply(format!("{reply:?}")))
    }
}
