//! The dead-letter queue of a namespace (SPEC §3). The Redis side is
//! [`wal_state::DlqStore`]; these handlers check access,
//! parse filters and shape the answers.
//!
//! | route | who |
//! | --- | --- |
//! | `GET …/namespace/{ns}/dlq` (paged list) | admin key, or a key allowed to write to `ns` |
//! | `GET …/namespace/{ns}/dlq/{messageId}` (one message, full envelopes) | same |
//! | `POST …/namespace/{ns}/dlq/{messageId}/requeue` | admin key |
//! | `POST …/namespace/{ns}/dlq/requeue` (by filter, rate-limited) | admin key |
//! | `DELETE …/namespace/{ns}/dlq` (purge by filter; no filter = all) | admin key |
//!
//! * The list is **newest first**. `limit` defaults to 50 (at most 500);
//!   `nextCursor` is opaque (it is the stream id where the next page starts)
//!   and `null` at the end. `reason` and `target` filters are applied while
//!   scanning, so a filtered page can be short or even empty and still carry
//!   a cursor: keep going until `nextCursor` is `null`. `from`/`to` (ms since
//!   epoch, inclusive) bound the time the entries were dead-lettered.
//! * A list item carries the decoded `payload` only when it is at most
//!   [`INLINE_PAYLOAD_BYTES`]; otherwise `payloadTruncated: true` (inspect
//!   the message to see it).
//! * A requeue appends a fresh attempt (attempt 0, due now, no expiry,
//!   history kept, only the failed target) to the entry's partition and
//!   removes the entry, atomically: of two concurrent requeues of one
//!   message exactly one appends; the other finds nothing (`404`). A message
//!   whose stored body is not an envelope cannot be requeued (`409`).
//! * Requeue by filter takes entries oldest first, `limit` 100 by default (at
//!   most 1000), skipping (and counting) malformed ones; it is limited to
//!   `WAL_DLQ_REQUEUE_PER_SECOND` calls per namespace per second across all
//!   gateways (`429` with `Retry-After`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use wal_core::delivery::{AttemptRecord, DlqReason};
use wal_core::validate::FieldErrors;
use wal_core::MessageId;
use wal_namespace::Namespace;
use wal_state::dlq::{DlqEntry, DlqFilter, EntryRequeue, Permit, RequeueOptions, RequeuedEntry};
use wal_state::{DlqError, DlqStore};

use crate::error::ApiError;
use crate::ingest::parse_json;
use crate::routes::params::{
    check_target, check_time_range, dlq_filter, now_ms, number_param, operated_namespace,
    query_params, readable_namespace,
};
use crate::routes::{read_body, require_json};
use crate::state::AppState;

/// Largest payload shown inline in a list item, in bytes.
pub const INLINE_PAYLOAD_BYTES: usize = 4096;
/// Default and largest `limit` of the list.
pub const LIST_LIMIT: (usize, usize) = (50, 500);
/// Default and largest `limit` of requeue by filter.
pub const REQUEUE_LIMIT: (usize, usize) = (100, 1000);
/// Most bytes of an undecodable body shown by the inspection endpoint.
const RAW_BODY_BYTES: usize = 64 * 1024;

fn dlq_error(e: DlqError) -> ApiError {
    match e {
        DlqError::Backend(b) => b.into(),
        DlqError::InvalidCursor => ApiError::field("cursor", e.to_string()),
        DlqError::UnexpectedReply(r) => ApiError::Internal(r),
    }
}

fn path_error(e: PathRejection) -> ApiError {
    ApiError::field("path", format!("invalid path: {e}"))
}

/// Checks a message id as used in the DLQ: a ULID, or the
/// `malformed-<partition>-<entry id>` id the worker gives undecodable entries.
fn check_dlq_message_id(id: &str) -> Result<(), ApiError> {
    let malformed = id.starts_with("malformed-")
        && id.len() <= 128
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if malformed || id.parse::<MessageId>().is_ok() {
        Ok(())
    } else {
        Err(ApiError::field(
            "messageId",
            "not a valid message id (expected a 26-character ULID or malformed-<partition>-<entry id>)",
        ))
    }
}

fn store(state: &AppState, ns: &Namespace) -> DlqStore {
    DlqStore::new(state.redis.clone(), &ns.name)
}

fn requeue_options(state: &AppState, ns: &Namespace) -> RequeueOptions {
    RequeueOptions {
        now_ms: now_ms(),
        partition_count: ns.shard_config.partition_count,
        status_ttl: Duration::from_secs(state.config.status_ttl_secs),
    }
}

/// One entry of the DLQ list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DlqItemView {
    /// DLQ entry id (stream id; its milliseconds are when it was dead-lettered).
    pub entry_id: String,
    /// Message id.
    pub message_id: String,
    /// Why it was dead-lettered.
    pub reason: DlqReason,
    /// The target that failed (empty when the whole entry failed).
    pub target: String,
    /// The last error.
    pub error: String,
    /// Attempts made on the target.
    pub attempts: u32,
    /// Partition it came from.
    pub partition: u32,
    /// When it was dead-lettered, ms since epoch.
    pub at_ms: u64,
    /// The message's payload, when at most 4 KiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Box<serde_json::value::RawValue>>,
    /// Size of the payload in bytes (absent when the body is not an envelope).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_size: Option<usize>,
    /// `true` when the payload is too large to be shown here.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub payload_truncated: bool,
    /// Failed attempts, most recent last.
    pub history: Vec<AttemptRecord>,
    /// Why the stored body is not a usable envelope (such an entry cannot be
    /// requeued; inspect and purge it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_error: Option<String>,
}

impl DlqItemView {
    fn of(entry: &DlqEntry) -> Self {
        let r = &entry.record;
        let mut view = Self {
            entry_id: entry.entry_id.clone(),
            message_id: r.message_id.clone(),
            reason: r.reason,
            target: r.target.clone(),
            error: r.error.clone(),
            attempts: r.attempts,
            partition: r.partition,
            at_ms: r.at_ms,
            payload: None,
            payload_size: None,
            payload_truncated: false,
            history: Vec::new(),
            body_error: None,
        };
        match entry.envelope() {
            Ok(env) => {
                let size = env.payload.get().len();
                view.payload_size = Some(size);
                if size <= INLINE_PAYLOAD_BYTES {
                    view.payload = Some(env.payload);
                } else {
                    view.payload_truncated = true;
                }
                view.history = env.history;
            }
            Err(e) => view.body_error = Some(e.to_string()),
        }
        view
    }
}

/// `GET …/dlq`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DlqPageView {
    /// The namespace.
    pub namespace: String,
    /// Always `newest_first`.
    pub order: &'static str,
    /// Matching entries of this page.
    pub items: Vec<DlqItemView>,
    /// Pass as `cursor` for the next page; `null` when there is none.
    pub next_cursor: Option<String>,
    /// Entries examined for this page (filters may skip some).
    pub scanned: usize,
}

/// Dead-lettered entries of a namespace, newest first, paged.
#[utoipa::path(get, path = "/api/v1/wal/namespace/{ns}/dlq", tag = "dlq",
    params(
        ("ns" = String, Path, description = "Namespace"),
        ("limit" = Option<usize>, Query, description = "Page size, 1..=500 (default 50)"),
        ("cursor" = Option<String>, Query, description = "`nextCursor` of the previous page"),
        ("reason" = Option<String>, Query, description = "max_attempts | permanent | expired | poison | malformed | unknown_target | foreign"),
        ("target" = Option<String>, Query, description = "Target identifier"),
        ("from" = Option<u64>, Query, description = "Dead-lettered at or after (ms since epoch)"),
        ("to" = Option<u64>, Query, description = "Dead-lettered at or before (ms since epoch)"),
        ("X-API-Key" = String, Header, description = "Admin key, or a key allowed to write to the namespace"),
    ),
    responses(
        (status = 200, description = "One page", body = DlqPageView),
        (status = 400, description = "VALIDATION_FAILED (field and reason in details)"),
        (status = 401, description = "UNAUTHORIZED"), (status = 403, description = "FORBIDDEN"),
        (status = 404, description = "NAMESPACE_NOT_FOUND"),
        (status = 503, description = "PRODUCER_UNAVAILABLE: Redis unreachable"),
    ))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    parts: Parts,
) -> Result<Response, ApiError> {
    let Path(name) = path.map_err(path_error)?;
    let ns = readable_namespace(&state, &parts, &name)?;
    let params = query_params(
        query,
        &["limit", "cursor", "reason", "target", "from", "to"],
    )?;
    let mut errors = FieldErrors::default();
    let filter = dlq_filter(&params, &mut errors);
    let limit = number_param(&params, "limit", &mut errors).unwrap_or(LIST_LIMIT.0 as u64);
    if !(1..=LIST_LIMIT.1 as u64).contains(&limit) {
        errors.push("limit", format!("must be between 1 and {}", LIST_LIMIT.1));
    }
    let cursor = params.get("cursor").map(String::as_str);
    if cursor.is_some_and(|c| c.parse::<wal_state::dlq::StreamId>().is_err()) {
        errors.push(
            "cursor",
            "invalid cursor: pass the nextCursor of a previous page",
        );
    }
    errors.into_result().map_err(ApiError::Validation)?;
    let page = store(&state, &ns)
        .list(&filter, cursor, limit as usize)
        .await
        .map_err(dlq_error)?;
    Ok(Json(DlqPageView {
        namespace: ns.name.clone(),
        order: "newest_first",
        items: page.entries.iter().map(DlqItemView::of).collect(),
        next_cursor: page.next_cursor,
        scanned: page.scanned,
    })
    .into_response())
}

/// One DLQ entry with its whole stored envelope.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DlqEntryView {
    /// DLQ entry id.
    pub entry_id: String,
    /// Why it was dead-lettered.
    pub reason: DlqReason,
    /// The target that failed (empty when the whole entry failed).
    pub target: String,
    /// The last error.
    pub error: String,
    /// Attempts made on the target.
    pub attempts: u32,
    /// Partition it came from.
    pub partition: u32,
    /// When it was dead-lettered, ms since epoch.
    pub at_ms: u64,
    /// The stored envelope (payload, targets, lifecycle, trace, attempt
    /// history, …); `null` when the body is not an envelope.
    #[schema(value_type = Option<Object>)]
    pub envelope: Option<serde_json::Value>,
    /// Failed attempts (the envelope's `history`), most recent last.
    pub history: Vec<AttemptRecord>,
    /// Why the body is not an envelope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_error: Option<String>,
    /// The undecodable body as text (lossy UTF-8, at most 64 KiB).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_body: Option<String>,
}

impl DlqEntryView {
    fn of(entry: &DlqEntry) -> Self {
        let r = &entry.record;
        let (envelope, history, body_error, raw_body) = match entry.envelope() {
            Ok(env) => {
                let history = env.history.clone();
                (serde_json::to_value(&env).ok(), history, None, None)
            }
            Err(e) => {
                let cut = r.body.len().min(RAW_BODY_BYTES);
                (
                    None,
                    Vec::new(),
                    Some(e.to_string()),
                    Some(String::from_utf8_lossy(&r.body[..cut]).into_owned()),
                )
            }
        };
        Self {
            entry_id: entry.entry_id.clone(),
            reason: r.reason,
            target: r.target.clone(),
            error: r.error.clone(),
            attempts: r.attempts,
            partition: r.partition,
            at_ms: r.at_ms,
            envelope,
            history,
            body_error,
            raw_body,
        }
    }
}

/// `GET …/dlq/{messageId}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DlqMessageView {
    /// The namespace.
    pub namespace: String,
    /// The message id.
    pub message_id: String,
    /// Its DLQ entries (one per failed target), oldest first.
    pub entries: Vec<DlqEntryView>,
}

/// Every DLQ entry of one message, with the full envelope and attempt history.
#[utoipa::path(get, path = "/api/v1/wal/namespace/{ns}/dlq/{messageId}", tag = "dlq",
    params(
        ("ns" = String, Path, description = "Namespace"),
        ("messageId" = String, Path, description = "Message id"),
        ("X-API-Key" = String, Header, description = "Admin key, or a key allowed to write to the namespace"),
    ),
    responses(
        (status = 200, description = "The message's DLQ entries", body = DlqMessageView),
        (status = 400, description = "VALIDATION_FAILED: invalid message id"),
        (status = 401, description = "UNAUTHORIZED"), (status = 403, description = "FORBIDDEN"),
        (status = 404, description = "NOT_FOUND: not in the DLQ; NAMESPACE_NOT_FOUND"),
    ))]
pub async fn inspect(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    parts: Parts,
) -> Result<Response, ApiError> {
    let Path((name, message_id)) = path.map_err(path_error)?;
    let ns = readable_namespace(&state, &parts, &name)?;
    query_params(query, &[])?;
    check_dlq_message_id(&message_id)?;
    let entries = store(&state, &ns)
        .entries_of(&message_id)
        .await
        .map_err(dlq_error)?;
    if entries.is_empty() {
        return Err(not_in_dlq(&ns, &message_id));
    }
    Ok(Json(DlqMessageView {
        namespace: ns.name.clone(),
        message_id,
        entries: entries.iter().map(DlqEntryView::of).collect(),
    })
    .into_response())
}

fn not_in_dlq(ns: &Namespace, message_id: &str) -> ApiError {
    ApiError::NotFound(format!(
        "Message '{message_id}' is not in the DLQ of namespace '{}'",
        ns.name
    ))
}

/// A requeued entry.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequeuedView {
    /// The DLQ entry id (now deleted).
    pub entry_id: String,
    /// Message id.
    pub message_id: String,
    /// The target it is requeued for (empty: every target of its envelope).
    pub target: String,
    /// Partition it was appended to.
    pub partition: u32,
    /// The new partition stream entry id.
    pub stream_entry_id: String,
}

impl From<RequeuedEntry> for RequeuedView {
    fn from(r: RequeuedEntry) -> Self {
        Self {
            entry_id: r.entry_id,
            message_id: r.message_id,
            target: r.target,
            partition: r.partition,
            stream_entry_id: r.stream_entry_id,
        }
    }
}

/// `POST …/dlq/{messageId}/requeue`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequeueMessageView {
    /// The namespace.
    pub namespace: String,
    /// The message id.
    pub message_id: String,
    /// Entries appended back to their partitions.
    pub requeued: Vec<RequeuedView>,
    /// Entries that vanished meanwhile (requeued or purged by someone else).
    pub already_gone: Vec<String>,
}

/// Requeue every DLQ entry of one message (admin).
#[utoipa::path(post, path = "/api/v1/wal/namespace/{ns}/dlq/{messageId}/requeue", tag = "dlq",
    params(
        ("ns" = String, Path, description = "Namespace"),
        ("messageId" = String, Path, description = "Message id"),
        ("X-API-Key" = String, Header, description = "Admin key"),
    ),
    responses(
        (status = 200, description = "Requeued; the new stream entry ids", body = RequeueMessageView),
        (status = 400, description = "VALIDATION_FAILED: invalid message id"),
        (status = 401, description = "UNAUTHORIZED"), (status = 403, description = "FORBIDDEN: not an admin key"),
        (status = 404, description = "NOT_FOUND: not in the DLQ (or requeued concurrently); NAMESPACE_NOT_FOUND"),
        (status = 409, description = "CONFLICT: the stored body is not an envelope; inspect and purge it"),
    ))]
pub async fn requeue_message(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    parts: Parts,
) -> Result<Response, ApiError> {
    let Path((name, message_id)) = path.map_err(path_error)?;
    let ns = operated_namespace(&state, &parts, &name)?;
    query_params(query, &[])?;
    check_dlq_message_id(&message_id)?;
    let outcomes = store(&state, &ns)
        .requeue_message(&message_id, &requeue_options(&state, &ns))
        .await
        .map_err(dlq_error)?;
    let mut requeued = Vec::new();
    let mut gone = Vec::new();
    let mut malformed = Vec::new();
    for o in outcomes {
        match o {
            EntryRequeue::Requeued(r) => requeued.push(RequeuedView::from(r)),
            EntryRequeue::Gone { entry_id } => gone.push(entry_id),
            EntryRequeue::Malformed { entry_id, error } => malformed.push((entry_id, error)),
        }
    }
    if !malformed.is_empty() {
        let (entry, error) = &malformed[0];
        return Err(ApiError::Conflict(format!(
            "DLQ entry {entry} of message '{message_id}' cannot be requeued: its stored body is not a valid envelope ({error}). Inspect it with GET /api/v1/wal/namespace/{}/dlq/{message_id} and purge it",
            ns.name
        )));
    }
    if requeued.is_empty() {
        return Err(not_in_dlq(&ns, &message_id));
    }
    tracing::info!(namespace = %ns.name, %message_id, entries = requeued.len(), "DLQ message requeued");
    Ok(Json(RequeueMessageView {
        namespace: ns.name.clone(),
        message_id,
        requeued,
        already_gone: gone,
    })
    .into_response())
}

/// Body of `POST …/dlq/requeue`; every field optional.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequeueFilterRequest {
    /// Only entries dead-lettered for this reason.
    pub reason: Option<DlqReason>,
    /// Only entries of this target.
    pub target: Option<String>,
    /// Dead-lettered at or after (ms since epoch).
    pub from: Option<u64>,
    /// Dead-lettered at or before (ms since epoch).
    pub to: Option<u64>,
    /// Most entries to requeue, 1..=1000 (default 100).
    pub limit: Option<usize>,
}

/// `POST …/dlq/requeue`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequeueFilterView {
    /// The namespace.
    pub namespace: String,
    /// Entries requeued.
    pub requeued: usize,
    /// Matching entries left in the DLQ because their body is not an envelope.
    pub skipped_malformed: usize,
    /// Matching entries that vanished meanwhile.
    pub skipped_gone: usize,
    /// Entries examined.
    pub scanned: usize,
    /// Whether matching entries may remain (call again).
    pub has_more: bool,
    /// The requeued entries, oldest first.
    pub entries: Vec<RequeuedView>,
    /// Ids of the malformed matching entries.
    pub malformed_entry_ids: Vec<String>,
}

/// Requeue the entries matching a filter, oldest first (admin, rate-limited).
#[utoipa::path(post, path = "/api/v1/wal/namespace/{ns}/dlq/requeue", tag = "dlq",
    request_body(content = RequeueFilterRequest, description = "Filter and limit; an empty body means every entry, up to 100"),
    params(
        ("ns" = String, Path, description = "Namespace"),
        ("X-API-Key" = String, Header, description = "Admin key"),
    ),
    responses(
        (status = 200, description = "What was requeued", body = RequeueFilterView),
        (status = 400, description = "VALIDATION_FAILED"),
        (status = 401, description = "UNAUTHORIZED"), (status = 403, description = "FORBIDDEN: not an admin key"),
        (status = 404, description = "NAMESPACE_NOT_FOUND"),
        (status = 415, description = "UNSUPPORTED_MEDIA_TYPE"),
        (status = 429, description = "RATE_LIMITED (see Retry-After)"),
    ))]
pub async fn requeue_by_filter(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    req: Request,
) -> Result<Response, ApiError> {
    let Path(name) = path.map_err(path_error)?;
    let (parts, body) = req.into_parts();
    let ns = operated_namespace(&state, &parts, &name)?;
    let bytes = read_body(&state, body).await?;
    let request: RequeueFilterRequest = if bytes.iter().all(u8::is_ascii_whitespace) {
        RequeueFilterRequest::default()
    } else {
        require_json(&parts.headers)?;
        parse_json(&bytes)?
    };
    let mut errors = FieldErrors::default();
    if let Some(t) = &request.target {
        check_target(t, "target", &mut errors);
    }
    let filter = DlqFilter {
        reason: request.reason,
        target: request.target.clone(),
        from_ms: request.from,
        to_ms: request.to,
    };
    check_time_range(&filter, &mut errors);
    let limit = request.limit.unwrap_or(REQUEUE_LIMIT.0);
    if !(1..=REQUEUE_LIMIT.1).contains(&limit) {
        errors.push(
            "limit",
            format!("must be between 1 and {}", REQUEUE_LIMIT.1),
        );
    }
    errors.into_result().map_err(ApiError::Validation)?;

    let dlq = store(&state, &ns);
    match dlq
        .take_requeue_permit(state.config.dlq_requeue_per_second, Duration::from_secs(1))
        .await
        .map_err(dlq_error)?
    {
        Permit::Granted => {}
        Permit::Refused(wait) => {
            return Err(ApiError::RateLimited {
                namespace: ns.name.clone(),
                retry_after_secs: wait.as_millis().div_ceil(1000).max(1) as u64,
            })
        }
    }
    let summary = dlq
        .requeue_matching(&filter, limit, &requeue_options(&state, &ns))
        .await
        .map_err(dlq_error)?;
    tracing::info!(
        namespace = %ns.name,
        requeued = summary.requeued.len(),
        skipped_malformed = summary.skipped_malformed.len(),
        "DLQ entries requeued by filter"
    );
    Ok(Json(RequeueFilterView {
        namespace: ns.name.clone(),
        requeued: summary.requeued.len(),
        skipped_malformed: summary.skipped_malformed.len(),
        skipped_gone: summary.skipped_gone,
        scanned: summary.scanned,
        has_more: summary.has_more,
        entries: summary
            .requeued
            .into_iter()
            .map(RequeuedView::from)
            .collect(),
        malformed_entry_ids: summary.skipped_malformed,
    })
    .into_response())
}

/// `DELETE …/dlq`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PurgeView {
    /// The namespace.
    pub namespace: String,
    /// Entries deleted.
    pub purged: u64,
    /// `false` when the purge stopped after examining its per-call budget
    /// (call again to continue).
    pub complete: bool,
}

/// Purge DLQ entries matching a filter; no filter empties the DLQ (admin).
#[utoipa::path(delete, path = "/api/v1/wal/namespace/{ns}/dlq", tag = "dlq",
    params(
        ("ns" = String, Path, description = "Namespace"),
        ("reason" = Option<String>, Query, description = "Only this reason"),
        ("target" = Option<String>, Query, description = "Only this target"),
        ("from" = Option<u64>, Query, description = "Dead-lettered at or after (ms since epoch)"),
        ("to" = Option<u64>, Query, description = "Dead-lettered at or before (ms since epoch)"),
        ("X-API-Key" = String, Header, description = "Admin key"),
    ),
    responses(
        (status = 200, description = "Entries deleted", body = PurgeView),
        (status = 400, description = "VALIDATION_FAILED"),
        (status = 401, description = "UNAUTHORIZED"), (status = 403, description = "FORBIDDEN: not an admin key"),
        (status = 404, description = "NAMESPACE_NOT_FOUND"),
    ))]
pub async fn purge(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    parts: Parts,
) -> Result<Response, ApiError> {
    let Path(name) = path.map_err(path_error)?;
    let ns = operated_namespace(&state, &parts, &name)?;
    let params = query_params(query, &["reason", "target", "from", "to"])?;
    let mut errors = FieldErrors::default();
    let filter = dlq_filter(&params, &mut errors);
    errors.into_result().map_err(ApiError::Validation)?;
    let summary = store(&state, &ns).purge(&filter).await.map_err(dlq_error)?;
    tracing::info!(namespace = %ns.name, purged = summary.purged, ?filter, "DLQ purged");
    Ok(Json(PurgeView {
        namespace: ns.name.clone(),
        purged: summary.purged,
        complete: summary.complete,
    })
    .into_response())
}
