//! Read-only status, built from live Redis data:
//!
//! * `GET /api/v1/wal/message/{messageId}[?namespace=]` — where a message
//!   stands, from its status record (`wal:{ns}:status:<id>`, written by the
//!   worker) and its DLQ index slot.
//! * `GET /api/v1/wal/namespace/{ns}/status` — the namespace's queues (per
//!   partition length, consumer-group lag and pending count, oldest pending
//!   age; delayed and retry sets; DLQ size) and a summary of its config.
//!
//! Authorization: an admin key, or a key allowed to write to the namespace.
//! A message is looked for only in the namespaces the caller may read (all
//! of them in one pipeline), so a message of a namespace the key may not
//! read is simply `404 NOT_FOUND` — its existence is not revealed. Naming
//! such a namespace with `?namespace=` is `403 FORBIDDEN`, as for writes.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use wal_core::delivery::{MessageState, TargetStatus};
use wal_core::keys::CONSUMER_GROUP;
use wal_core::retry::RetryPolicy;
use wal_core::MessageId;
use wal_namespace::Namespace;
use wal_state::inspect::{age_ms, inspect_namespace, NamespaceQueues, ScheduleInfo};
use wal_state::parking::Parking;
use wal_state::status::find_message_status;
use wal_state::worker_reports;

use crate::error::ApiError;
use crate::routes::params::{namespace_named, now_ms, query_params, readable_namespace, reader};
use crate::state::AppState;

/// `GET /api/v1/wal/message/{messageId}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageStatusView {
    /// The message id.
    pub message_id: String,
    /// The namespace it belongs to.
    pub namespace: String,
    /// Overall state: the worst of its targets' states (`pending` while no
    /// target has a status yet).
    pub state: MessageState,
    /// When the status record was created (ms since epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at_ms: Option<u64>,
    /// Target identifier → its status.
    pub targets: BTreeMap<String, TargetStatus>,
    /// The message's DLQ entry ids, if it has any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dlq: Vec<String>,
}

/// Where a message stands.
#[utoipa::path(get, path = "/api/v1/wal/message/{messageId}", tag = "status",
    params(
        ("messageId" = String, Path, description = "The message id (a ULID)"),
        ("namespace" = Option<String>, Query, description = "Look only in this namespace"),
        ("X-API-Key" = String, Header, description = "Admin key, or a key allowed to write to the message's namespace"),
    ),
    responses(
        (status = 200, description = "The message's status", body = MessageStatusView),
        (status = 400, description = "VALIDATION_FAILED: not a message id, or bad query"),
        (status = 401, description = "UNAUTHORIZED"),
        (status = 403, description = "FORBIDDEN: the key may not read the namespace given in `namespace`"),
        (status = 404, description = "NOT_FOUND: unknown, not yet picked up by a worker, or status expired; NAMESPACE_NOT_FOUND"),
        (status = 503, description = "PRODUCER_UNAVAILABLE: Redis unreachable"),
    ))]
pub async fn message_status(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    parts: Parts,
) -> Result<Response, ApiError> {
    let caller = reader(&state, &parts)?;
    let Path(raw_id) =
        path.map_err(|e| ApiError::field("messageId", format!("invalid path: {e}")))?;
    let params = query_params(query, &["namespace"])?;
    let id: MessageId = raw_id
        .parse()
        .map_err(|e: wal_core::id::InvalidMessageId| ApiError::field("messageId", e.to_string()))?;
    let id = id.to_string();
    let candidates: Vec<String> = match params.get("namespace") {
        Some(name) => {
            let ns = namespace_named(&state, name)?;
            caller.authorize(&state.keys, &ns)?;
            vec![ns.name.clone()]
        }
        None => state
            .namespaces
            .snapshot()
            .all()
            .into_iter()
            .filter(|ns| caller.may_read(&state.keys, ns))
            .map(|ns| ns.name.clone())
            .collect(),
    };
    let found = find_message_status(&state.redis, &candidates, &id).await?;
    let Some(record) = found else {
        return Err(ApiError::NotFound(format!(
            "Message '{id}' has no status record: it is unknown, not yet picked up by a worker, or its status expired"
        )));
    };
    let overall = if record.targets.is_empty() {
        MessageState::Pending
    } else {
        MessageState::combine(record.targets.values().map(|t| &t.state))
    };
    Ok(Json(MessageStatusView {
        message_id: id,
        namespace: record.namespace,
        state: overall,
        created_at_ms: record.created_at_ms,
        targets: record.targets,
        dlq: record.dlq_entry_ids,
    })
    .into_response())
}

/// One target in the config summary.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetSummary {
    /// Identifier.
    pub identifier: String,
    /// `http`, `webhook`, `database` or `cache`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Whether messages are delivered to it.
    pub enabled: bool,
}

/// DLQ settings in the config summary.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DlqSettingsSummary {
    /// Whether failed deliveries are dead-lettered.
    pub enabled: bool,
    /// Retries before a message is dead-lettered.
    pub max_retries: u32,
    /// How long DLQ entries are kept, in seconds.
    pub retention_seconds: u64,
}

/// The parts of a namespace's configuration that explain its queues.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigSummary {
    /// `redis_streams`, `kafka` or `sqs`.
    pub backend: String,
    /// Whether writes are accepted.
    pub enabled: bool,
    /// Configuration version.
    pub version: i64,
    /// Number of partitions.
    pub partitions: u32,
    /// Shard strategy for messages without a partition key.
    #[schema(value_type = String)]
    pub shard_strategy: serde_json::Value,
    /// Delivery targets.
    pub targets: Vec<TargetSummary>,
    /// Default retry policy.
    pub retry_policy: RetryPolicy,
    /// Dead-letter settings.
    pub dlq: DlqSettingsSummary,
    /// Default message TTL in seconds (0: none).
    pub message_ttl_seconds: u64,
}

/// The worker consumer group on one partition.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerGroupView {
    /// Group name (`wal-workers`).
    pub name: String,
    /// Consumers registered in the group.
    pub consumers: u64,
    /// Entries delivered to a worker and not yet acknowledged.
    pub pending: u64,
    /// Entries not yet delivered to the group; `null` when Redis cannot tell.
    pub lag: Option<u64>,
    /// Last entry id delivered to the group.
    pub last_delivered_id: String,
    /// Oldest pending entry id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_pending_id: Option<String>,
    /// Age of the oldest pending entry (now − the time it was appended), ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_pending_age_ms: Option<u64>,
}

/// One partition stream.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PartitionView {
    /// Partition number.
    pub partition: u32,
    /// Stream key.
    pub stream: String,
    /// Entries in the stream.
    pub length: u64,
    /// The worker group; `null` when it does not exist yet.
    pub consumer_group: Option<ConsumerGroupView>,
}

/// Sums over the partitions.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueTotals {
    /// Entries in all partition streams.
    pub length: u64,
    /// Pending (unacknowledged) entries.
    pub pending: u64,
    /// Undelivered entries over the partitions whose lag is known (a
    /// partition without a group counts its whole length).
    pub lag: u64,
    /// Partitions whose lag Redis could not compute (not in `lag`).
    pub lag_unknown_partitions: u32,
    /// Partitions without the worker group.
    pub partitions_without_group: u32,
    /// The oldest pending entry's age over all partitions, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_pending_age_ms: Option<u64>,
}

/// A sorted set of scheduled messages.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleView {
    /// Entries in the set.
    pub size: u64,
    /// The earliest due time, ms since epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub earliest_due_at_ms: Option<u64>,
    /// How far the earliest entry is past due (0 when not yet due), ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overdue_ms: Option<u64>,
}

/// What one worker says of the namespace (refreshed every few seconds;
/// workers silent for 30 s are left out).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerView {
    /// The worker's consumer name.
    pub worker: String,
    /// `running`, or `degraded` (its Kafka topic / SQS queue cannot be
    /// opened: only the namespace's Redis streams are consumed).
    pub state: String,
    /// Why it is degraded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Each target's circuit breaker on that worker.
    pub breakers: BTreeMap<String, BreakerView>,
    /// Age of the report (ms).
    pub age_ms: u64,
}

/// One target's circuit breaker on one worker.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BreakerView {
    /// `closed`, `open` (deliveries held back, messages parked) or
    /// `half_open` (probes admitted).
    pub state: String,
    /// Deliveries in the breaker's window.
    pub calls: u32,
    /// Retryable failures among them.
    pub failures: u32,
}

/// The dead-letter stream.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DlqSizeView {
    /// Entries (one per failed message × target).
    pub size: u64,
    /// Distinct messages with an entry.
    pub messages: u64,
}

/// `GET /api/v1/wal/namespace/{ns}/status`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceStatusView {
    /// The namespace.
    pub namespace: String,
    /// When this view was read (ms since epoch).
    pub generated_at_ms: u64,
    /// Configuration summary.
    pub config: ConfigSummary,
    /// Sums over the partitions.
    pub totals: QueueTotals,
    /// Every partition.
    pub partitions: Vec<PartitionView>,
    /// Messages parked until their due time.
    pub delayed: ScheduleView,
    /// Scheduled retries.
    pub retry: ScheduleView,
    /// The DLQ.
    pub dlq: DlqSizeView,
    /// Messages parked while their target's circuit breaker is open.
    pub parked: u64,
    /// The workers consuming the namespace, as they report themselves.
    pub workers: Vec<WorkerView>,
    /// Things an operator should know (e.g. a partition without the worker group).
    pub warnings: Vec<String>,
}

fn config_summary(ns: &Namespace) -> ConfigSummary {
    ConfigSummary {
        backend: ns.backend.as_str().to_string(),
        enabled: ns.enabled,
        version: ns.version,
        partitions: ns.shard_config.partition_count,
        shard_strategy: serde_json::to_value(ns.shard_config.strategy)
            .unwrap_or(serde_json::Value::Null),
        targets: ns
            .targets
            .iter()
            .map(|t| TargetSummary {
                identifier: t.identifier.clone(),
                kind: t.kind.target_type().as_str().to_string(),
                enabled: t.enabled,
            })
            .collect(),
        retry_policy: ns.retry_policy.clone(),
        dlq: DlqSettingsSummary {
            enabled: ns.dlq_config.enabled,
            max_retries: ns.dlq_config.max_retries,
            retention_seconds: ns.dlq_config.retention_seconds,
        },
        message_ttl_seconds: ns.message_ttl_seconds,
    }
}

fn schedule_view(s: ScheduleInfo, now: u64) -> ScheduleView {
    ScheduleView {
        size: s.size,
        earliest_due_at_ms: s.earliest_due_ms,
        overdue_ms: s.earliest_due_ms.map(|d| now.saturating_sub(d)),
    }
}

/// Builds the view from the live data.
fn status_view(ns: &Namespace, queues: NamespaceQueues) -> NamespaceStatusView {
    let now = now_ms();
    let keys = wal_core::keys::NamespaceKeys::new(&ns.name);
    let mut warnings = Vec::new();
    let mut totals = QueueTotals {
        length: 0,
        pending: 0,
        lag: 0,
        lag_unknown_partitions: 0,
        partitions_without_group: 0,
        oldest_pending_age_ms: None,
    };
    let partitions = queues
        .partitions
        .into_iter()
        .map(|p| {
            totals.length += p.length;
            let consumer_group = match p.group {
                Some(g) => {
                    totals.pending += g.pending;
                    match g.lag {
                        Some(lag) => totals.lag += lag,
                        None => {
                            totals.lag_unknown_partitions += 1;
                            warnings.push(format!(
                                "partition {}: Redis cannot compute the consumer-group lag (e.g. after entries were deleted from the stream)",
                                p.partition
                            ));
                        }
                    }
                    let age = g.oldest_pending_ms.map(age_ms);
                    if let Some(a) = age {
                        totals.oldest_pending_age_ms =
                            Some(totals.oldest_pending_age_ms.map_or(a, |t: u64| t.max(a)));
                    }
                    Some(ConsumerGroupView {
                        name: CONSUMER_GROUP.to_string(),
                        consumers: g.consumers,
                        pending: g.pending,
                        lag: g.lag,
                        last_delivered_id: g.last_delivered_id,
                        oldest_pending_id: g.oldest_pending_id,
                        oldest_pending_age_ms: age,
                    })
                }
                None => {
                    totals.partitions_without_group += 1;
                    totals.lag += p.length;
                    warnings.push(format!(
                        "partition {}: consumer group '{CONSUMER_GROUP}' does not exist (no worker has read this partition yet)",
                        p.partition
                    ));
                    None
                }
            };
            PartitionView {
                partition: p.partition,
                stream: keys.stream(p.partition),
                length: p.length,
                consumer_group,
            }
        })
        .collect();
    NamespaceStatusView {
        namespace: ns.name.clone(),
        generated_at_ms: now,
        config: config_summary(ns),
        totals,
        partitions,
        delayed: schedule_view(queues.delayed, now),
        retry: schedule_view(queues.retry, now),
        dlq: DlqSizeView {
            size: queues.dlq_length,
            messages: queues.dlq_messages,
        },
        parked: 0,
        workers: Vec::new(),
        warnings,
    }
}

/// Health of a namespace's queues, from live data.
#[utoipa::path(get, path = "/api/v1/wal/namespace/{ns}/status", tag = "status",
    params(
        ("ns" = String, Path, description = "Namespace"),
        ("X-API-Key" = String, Header, description = "Admin key, or a key allowed to write to the namespace"),
    ),
    responses(
        (status = 200, description = "Live queue data and config summary", body = NamespaceStatusView),
        (status = 400, description = "VALIDATION_FAILED: invalid namespace name"),
        (status = 401, description = "UNAUTHORIZED"),
        (status = 403, description = "FORBIDDEN"),
        (status = 404, description = "NAMESPACE_NOT_FOUND"),
        (status = 503, description = "PRODUCER_UNAVAILABLE: Redis unreachable"),
    ))]
pub async fn namespace_status(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    parts: Parts,
) -> Result<Response, ApiError> {
    let Path(name) = path.map_err(|e| ApiError::field("ns", format!("invalid path: {e}")))?;
    let ns = readable_namespace(&state, &parts, &name)?;
    query_params(query, &[])?;
    let queues = inspect_namespace(&state.redis, &ns.name, ns.shard_config.partition_count).await?;
    let parked = Parking::new(state.redis.clone(), &ns.name)
        .counts(&[])
        .await?
        .total;
    let reports = worker_reports::read(&state.redis, &ns.name, now_ms()).await?;
    let mut view = status_view(&ns, queues);
    view.parked = parked;
    for r in reports {
        if let Some(why) = &r.reason {
            view.warnings.push(format!(
                "worker {} runs the namespace degraded: {why}",
                r.worker
            ));
        }
        for (target, b) in &r.breakers {
            if b.state != "closed" {
                view.warnings.push(format!(
                    "target {target}: circuit breaker {} on worker {}",
                    b.state, r.worker
                ));
            }
        }
        view.workers.push(WorkerView {
            age_ms: now_ms().saturating_sub(r.updated_at_ms),
            worker: r.worker,
            state: r.state,
            reason: r.reason,
            breakers: r
                .breakers
                .into_iter()
                .map(|(t, b)| {
                    (
                        t,
                        BreakerView {
                            state: b.state,
                            calls: b.calls,
                            failures: b.failures,
                        },
                    )
                })
                .collect(),
        });
    }
    Ok(Json(view).into_response())
}
