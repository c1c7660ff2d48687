//! The write path, independent of HTTP framing: resolve the namespace and
//! check the caller, admit under the rate limit, validate and enrich the
//! request into an [`Envelope`], publish, and turn the backend's outcome into
//! the client's answer.
//!
//! Architecture invariant: `durable: TRUE` is only ever derived from a
//! [`PublishOutcome`] the producer returned after the backend replied.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::Rng;
use serde::Serialize;
use serde_json::value::RawValue;
use wal_core::backend::{IdempotencyClaim, OutgoingMessage, PublishOutcome};
use wal_core::envelope::{ResolvedLifecycle, TraceContext, ENVELOPE_VERSION};
use wal_core::request::{TargetRef, WriteLimits, WriteRequest};
use wal_core::routing::{choose_partition, RoutingInput};
use wal_core::validate::FieldErrors;
use wal_core::{Durability, Envelope, MessageId};
use wal_namespace::{BackendKind, Namespace, TargetKind};

use crate::auth::WriteCaller;
use crate::error::ApiError;
use crate::metrics::{BackendLabels, DurableLabels};
use crate::request_context::now_rfc3339;
use crate::state::AppState;
use wal_state::rate_limit::{Admission, Limits};

/// The answer to one accepted write (SPEC §2).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WriteResponse {
    /// `TRUE` (recorded) or `UNKNOWN` (replicas did not confirm in time).
    pub durable: Durability,
    /// The message id (the first write's id for a duplicate).
    pub message_id: String,
    /// Always null until transactions exist.
    pub transaction_id: Option<String>,
    /// Human-readable summary.
    pub message: &'static str,
    /// When the gateway answered.
    pub timestamp: String,
    /// Milliseconds until the message is due (0 for immediate delivery).
    pub estimated_processing_time_ms: u64,
    /// Whether this repeated an earlier `Idempotency-Key`.
    pub duplicate: bool,
    /// Seconds after which a retry may learn more (sent as `Retry-After`
    /// with an `UNKNOWN` duplicate), not part of the body.
    #[serde(skip)]
    pub retry_after_secs: Option<u64>,
}

/// Per-request values from headers.
#[derive(Clone, Debug, Default)]
pub struct WriteHeaders {
    /// `X-Request-ID` (validated or generated).
    pub request_id: String,
    /// `Idempotency-Key`, if sent.
    pub idempotency_key: Option<String>,
    /// Fingerprint of the request (of the batch item) the key came with;
    /// computed only when there is a key ([`request_fingerprint`]).
    pub fingerprint: String,
    /// `traceparent`, if sent.
    pub traceparent: Option<String>,
    /// `tracestate`, if sent.
    pub tracestate: Option<String>,
}

/// A write that passed every check and is ready to publish.
pub struct PreparedWrite {
    /// Its namespace.
    pub namespace: Arc<Namespace>,
    /// The message and its idempotency key.
    pub message: OutgoingMessage,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Parses a JSON body into `T`, naming the failing field (for an unknown
/// field, the path of that field itself; `body` for malformed JSON).
pub fn parse_json<T: serde::de::DeserializeOwned>(raw: &[u8]) -> Result<T, ApiError> {
    parse_json_borrowed(raw)
}

/// [`parse_json`] for types that borrow from the body.
pub fn parse_json_borrowed<'a, T: serde::Deserialize<'a>>(raw: &'a [u8]) -> Result<T, ApiError> {
    // Fast path without path tracking; parse again with it only to explain a failure.
    match serde_json::from_slice(raw) {
        Ok(v) => Ok(v),
        Err(_) => {
            let de = &mut serde_json::Deserializer::from_slice(raw);
            serde_path_to_error::deserialize(de).map_err(|e| path_error(&e))
        }
    }
}

/// A field error from a path-tracked serde failure.
fn path_error(e: &serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let reason = e.inner().to_string();
    let mut path = e.path().to_string();
    let unknown = reason.strip_prefix("unknown field `");
    let named = unknown.or_else(|| reason.strip_prefix("missing field `"));
    if let Some(rest) = named {
        if let Some(name) = rest.split('`').next() {
            // The path of an unknown field may already end with it.
            let included =
                unknown.is_some() && (path == name || path.ends_with(&format!(".{name}")));
            path = if path == "." {
                name.to_string()
            } else if included {
                path
            } else {
                format!("{path}.{name}")
            };
        }
    }
    let field = if path == "." {
        "body".to_string()
    } else {
        path
    };
    ApiError::field(field, reason)
}

/// Parses one write request body.
pub fn parse_write(raw: &[u8]) -> Result<WriteRequest, ApiError> {
    parse_json(raw)
}

/// Finds the namespace of `req` and checks the caller may write to it.
pub fn resolve_namespace(
    state: &AppState,
    caller: &WriteCaller,
    req: &WriteRequest,
) -> Result<Arc<Namespace>, ApiError> {
    let name = req.normalized_namespace();
    if !wal_core::validate::is_valid_namespace_name(&name) {
        return Err(ApiError::field(
            "namespace",
            "must match [a-z0-9][a-z0-9._-]{0,99}",
        ));
    }
    let ns = state
        .namespaces
        .get(&name)
        .ok_or_else(|| ApiError::NamespaceNotFound(name.clone()))?;
    caller.authorize(&state.keys, &ns)?;
    if !ns.enabled {
        return Err(ApiError::NamespaceDisabled(name));
    }
    Ok(ns)
}

/// The namespace's rate limits in the limiter's terms.
pub fn limits_of(ns: &Namespace) -> Limits {
    let r = &ns.rate_limits;
    Limits {
        per_minute: r.requests_per_minute,
        per_hour: r.requests_per_hour,
        burst: r.burst_limit,
    }
}

/// Takes `cost` tokens from the namespace's rate limit, or refuses: `429`
/// while the limit is reached, `422` for a request the limit can never admit
/// at once, `503` when the limit cannot be checked on a backend whose
/// appends do not need Redis (Kafka, SQS). On Redis Streams an unchecked
/// limit admits: the append itself fails then.
pub async fn admit(state: &AppState, ns: &Namespace, cost: u32) -> Result<(), ApiError> {
    let limits = limits_of(ns);
    if let Some(burst) = limits.largest_admissible().filter(|b| cost > *b) {
        return Err(ApiError::ExceedsRateLimit {
            namespace: ns.name.clone(),
            cost,
            burst,
        });
    }
    match state.rate_limiter.admit(&ns.name, limits, cost).await {
        Admission::Admitted => Ok(()),
        Admission::Refused(wait) => Err(ApiError::RateLimited {
            namespace: ns.name.clone(),
            retry_after_secs: wait.as_millis().div_ceil(1000).max(1) as u64,
        }),
        Admission::Unknown if ns.backend == BackendKind::RedisStreams => Ok(()),
        Admission::Unknown => Err(ApiError::ProducerUnavailable {
            durability: Durability::False,
        }),
    }
}

/// Resolves the request's targets against the namespace: each must exist and
/// be enabled, and may only override what its type allows.
fn resolve_targets(ns: &Namespace, req: &WriteRequest) -> Result<Vec<TargetRef>, FieldErrors> {
    let mut errors = FieldErrors::default();
    let Some(selector) = &req.target else {
        let all: Vec<TargetRef> = ns
            .enabled_targets()
            .map(|t| TargetRef::named(t.identifier.clone()))
            .collect();
        if all.is_empty() {
            errors.push("target", "the namespace has no enabled target");
        }
        return errors.into_result().map(|_| all);
    };
    let many = selector.as_slice().len() > 1
        || matches!(selector, wal_core::request::TargetSelector::Many(_));
    for (i, t) in selector.as_slice().iter().enumerate() {
        let path = |f: &str| {
            if many {
                format!("target[{i}].{f}")
            } else {
                format!("target.{f}")
            }
        };
        let Some(cfg) = ns.target(&t.identifier) else {
            errors.push(
                path("identifier"),
                format!("unknown target '{}' for this namespace", t.identifier),
            );
            continue;
        };
        if !cfg.enabled {
            errors.push(
                path("identifier"),
                format!("target '{}' is disabled", t.identifier),
            );
        }
        let http = match &cfg.kind {
            TargetKind::Http(h) | TargetKind::Webhook(h) => Some(h),
            _ => None,
        };
        if t.path_suffix.is_some() && http.is_none() {
            errors.push(
                path("pathSuffix"),
                "only HTTP and webhook targets take a path suffix",
            );
        }
        if let Some(headers) = &t.headers {
            match http {
                None => errors.push(
                    path("headers"),
                    "only HTTP and webhook targets take headers",
                ),
                Some(h) => {
                    for name in headers.keys() {
                        let allowed = h
                            .allowed_override_headers
                            .iter()
                            .any(|a| a.eq_ignore_ascii_case(name));
                        if !allowed {
                            errors.push(
                                path(&format!("headers.{name}")),
                                "this header may not be set by a request (see allowedOverrideHeaders)",
                            );
                        }
                    }
                }
            }
        }
        if let Some(prefix) = &t.key_prefix {
            match &cfg.kind {
                TargetKind::Cache(c) if !prefix.starts_with(&c.key_prefix) => errors.push(
                    path("keyPrefix"),
                    format!(
                        "must extend the target's configured prefix `{}` (start with it)",
                        c.key_prefix
                    ),
                ),
                TargetKind::Cache(_) => {}
                _ => errors.push(path("keyPrefix"), "only cache targets take a key prefix"),
            }
        }
    }
    errors.into_result().map(|_| selector.as_slice().to_vec())
}

/// A valid W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`, ids not all zero).
fn valid_traceparent(tp: &str) -> bool {
    let parts: Vec<&str> = tp.split('-').collect();
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    };
    parts.len() == 4
        && hex(parts[0], 2)
        && parts[0] != "ff"
        && hex(parts[1], 32)
        && parts[1].bytes().any(|b| b != b'0')
        && hex(parts[2], 16)
        && parts[2].bytes().any(|b| b != b'0')
        && hex(parts[3], 2)
}

/// The request's trace context, or a new sampled trace when none (or an
/// invalid one) was sent, so every message can be followed end to end.
fn trace_context(headers: &WriteHeaders) -> TraceContext {
    match &headers.traceparent {
        Some(tp) if valid_traceparent(tp) => TraceContext {
            traceparent: Some(tp.clone()),
            tracestate: headers.tracestate.clone(),
        },
        _ => {
            let mut rng = rand::rng();
            let trace: u128 = rng.random::<u128>().max(1);
            let span: u64 = rng.random::<u64>().max(1);
            TraceContext {
                traceparent: Some(format!("00-{trace:032x}-{span:016x}-01")),
                tracestate: None,
            }
        }
    }
}

/// Validates `req` against `ns` and builds its envelope.
pub fn prepare(
    state: &AppState,
    ns: Arc<Namespace>,
    req: WriteRequest,
    headers: &WriteHeaders,
) -> Result<PreparedWrite, ApiError> {
    let limits = WriteLimits {
        max_delay: Duration::from_secs(ns.max_delay_seconds),
    };
    req.validate(limits).map_err(ApiError::Validation)?;
    let targets = resolve_targets(&ns, &req).map_err(ApiError::Validation)?;
    let size = req.payload.get().len();
    if size as u64 > ns.max_message_size {
        return Err(ApiError::TooLarge {
            actual: Some(size),
            max: ns.max_message_size as usize,
        });
    }
    if let Some(key) = &headers.idempotency_key {
        wal_core::request::validate_idempotency_key(key).map_err(ApiError::Validation)?;
    }

    let lifecycle = req.lifecycle.clone().unwrap_or_default();
    let created = now_ms();
    let jitter = match lifecycle.jitter_ms {
        Some(j) if j > 0 => rand::rng().random_range(0..=j),
        _ => 0,
    };
    let due = created + lifecycle.delay().as_millis() as u64 + jitter;
    // An explicit TTL counts from the write; the namespace default counts
    // from the due time, so a long delay never expires a message by default.
    let expires_at_ms = match lifecycle.ttl {
        Some(ttl) => Some(created + ttl * 1000),
        None if ns.message_ttl_seconds > 0 => Some(due + ns.message_ttl_seconds * 1000),
        None => None,
    };
    let retry_policy = match &lifecycle.retry_policy {
        Some(over) => {
            let merged = ns.retry_policy.merged(over);
            let mut errors = FieldErrors::default();
            merged.validate("lifecycle.retryPolicy", &mut errors);
            errors.into_result().map_err(ApiError::Validation)?;
            merged
        }
        None => ns.retry_policy.clone(),
    };
    let partition = choose_partition(
        ns.shard_config.strategy,
        ns.shard_config.partition_count,
        RoutingInput {
            partition_key: req.partition_key.as_deref(),
            payload: req.payload.get().as_bytes(),
            round_robin_ticket: state.round_robin.fetch_add(1, Ordering::Relaxed),
            random: rand::rng().random(),
        },
    );
    let envelope = Envelope {
        v: ENVELOPE_VERSION,
        id: MessageId::generate(),
        namespace: ns.name.clone(),
        payload: req.payload,
        targets,
        lifecycle: ResolvedLifecycle {
            retry_policy,
            enable_dlq: lifecycle.enable_dlq.unwrap_or(ns.dlq_config.enabled),
            expires_at_ms,
        },
        partition_key: req.partition_key,
        partition,
        request_id: headers.request_id.clone(),
        trace: trace_context(headers),
        created_at_ms: created,
        due_at_ms: due,
        attempt: 0,
        metadata: req.metadata,
        priority: req.priority,
        tags: req.tags,
        history: Vec::new(),
    };
    Ok(PreparedWrite {
        namespace: ns,
        message: OutgoingMessage {
            envelope,
            idempotency: headers.idempotency_key.clone().map(|key| IdempotencyClaim {
                key,
                fingerprint: headers.fingerprint.clone(),
            }),
        },
    })
}

/// Fingerprint of one write request (`raw`: its JSON): SHA-256 of its
/// canonical form (object keys sorted, no whitespace), so that the same
/// request laid out differently is still the same request.
pub fn request_fingerprint(raw: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    match serde_json::from_slice::<serde_json::Value>(raw) {
        Ok(v) => hash_canonical(&v, &mut hasher),
        Err(_) => hasher.update(raw),
    }
    let digest = hasher.finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Feeds `v` to `hasher` with object keys in sorted order (whatever order
/// serde_json keeps them in).
fn hash_canonical(v: &serde_json::Value, hasher: &mut sha2::Sha256) {
    use serde_json::Value;
    use sha2::Digest;
    match v {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            hasher.update(b"{");
            for (k, v) in entries {
                hasher.update(Value::String(k.clone()).to_string().as_bytes());
                hasher.update(b":");
                hash_canonical(v, hasher);
                hasher.update(b",");
            }
            hasher.update(b"}");
        }
        Value::Array(items) => {
            hasher.update(b"[");
            for item in items {
                hash_canonical(item, hasher);
                hasher.update(b",");
            }
            hasher.update(b"]");
        }
        scalar => hasher.update(scalar.to_string().as_bytes()),
    }
}

/// Publishes prepared writes of ONE namespace in one backend round trip and
/// answers each in order.
pub async fn publish(
    state: &AppState,
    ns: &Namespace,
    writes: Vec<OutgoingMessage>,
) -> Vec<Result<WriteResponse, ApiError>> {
    let (producer, settings) = match state.producers.for_namespace(ns).await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "no producer for the namespace");
            return writes
                .iter()
                .map(|_| {
                    Err(ApiError::ProducerUnavailable {
                        durability: Durability::False,
                    })
                })
                .collect();
        }
    };
    // An entry the backend cannot take is refused as too large, not sent.
    let mut refused: Vec<Option<ApiError>> = Vec::new();
    let writes = match producer.max_entry_bytes() {
        None => writes,
        Some(max) => {
            let mut keep = Vec::with_capacity(writes.len());
            for m in writes {
                let size = m.envelope.encode().len();
                if size > max {
                    refused.push(Some(ApiError::TooLarge {
                        actual: Some(size),
                        max,
                    }));
                } else {
                    refused.push(None);
                    keep.push(m);
                }
            }
            keep
        }
    };
    let due: Vec<(String, u64)> = writes
        .iter()
        .map(|m| (m.envelope.id.to_string(), m.envelope.due_at_ms))
        .collect();
    let started = Instant::now();
    let outcomes = producer.publish(&settings, writes).await;
    state
        .metrics
        .publish_duration
        .get_or_create(&BackendLabels {
            backend: ns.backend.as_str(),
        })
        .observe(started.elapsed().as_secs_f64());
    let now = now_ms();
    let timestamp = now_rfc3339();
    let mut per_durability = [0u64; 3];
    let answers = outcomes
        .into_iter()
        .zip(due)
        .map(|(outcome, (id, due_at))| {
            per_durability[match outcome.durability() {
                Durability::True => 0,
                Durability::False => 1,
                Durability::Unknown => 2,
            }] += 1;
            match outcome {
                PublishOutcome::Appended { durability, .. } => Ok(WriteResponse {
                    durable: durability,
                    message_id: id,
                    transaction_id: None,
                    message: "Message accepted for processing",
                    timestamp: timestamp.clone(),
                    estimated_processing_time_ms: due_at.saturating_sub(now),
                    duplicate: false,
                    retry_after_secs: None,
                }),
                PublishOutcome::Duplicate { original, durability } => Ok(WriteResponse {
                    durable: durability,
                    message_id: original.to_string(),
                    transaction_id: None,
                    message: match durability {
                        Durability::True => "Duplicate of an earlier write with the same Idempotency-Key; nothing was published",
                        _ => "Duplicate of an earlier write with the same Idempotency-Key whose outcome is not known yet; nothing was published, retry later with the same key",
                    },
                    timestamp: timestamp.clone(),
                    estimated_processing_time_ms: 0,
                    duplicate: true,
                    retry_after_secs: (durability != Durability::True).then_some(1),
                }),
                PublishOutcome::KeyReused { original } => Err(ApiError::KeyReused {
                    original: original.to_string(),
                }),
                PublishOutcome::Failed(e) => {
                    tracing::warn!(error = %e, namespace = %ns.name, message_id = %id, "publish failed");
                    Err(ApiError::ProducerUnavailable { durability: e.durability() })
                }
            }
        })
        .collect::<Vec<_>>();
    let answers = if refused.is_empty() {
        answers
    } else {
        let mut published = answers.into_iter();
        refused
            .into_iter()
            .map(|r| match r {
                Some(e) => Err(e),
                None => published
                    .next()
                    .unwrap_or(Err(ApiError::Internal("missing publish outcome".into()))),
            })
            .collect()
    };
    for (count, durable) in per_durability.into_iter().zip(["TRUE", "FALSE", "UNKNOWN"]) {
        if count > 0 {
            state
                .metrics
                .messages_written
                .get_or_create(&DurableLabels {
                    namespace: ns.name.clone(),
                    durable,
                })
                .inc_by(count);
        }
    }
    answers
}

/// The writes of one namespace in a batch, each with its index in the batch.
pub type NamespaceGroup = (Arc<Namespace>, Vec<(usize, OutgoingMessage)>);

/// Groups prepared writes by namespace, keeping each one's index.
pub fn group_by_namespace(writes: Vec<(usize, PreparedWrite)>) -> BTreeMap<String, NamespaceGroup> {
    let mut groups: BTreeMap<String, NamespaceGroup> = BTreeMap::new();
    for (i, w) in writes {
        groups
            .entry(w.namespace.name.clone())
            .or_insert_with(|| (w.namespace.clone(), Vec::new()))
            .1
            .push((i, w.message));
    }
    groups
}

/// Reads one raw message of a batch.
pub fn parse_batch_item(raw: &RawValue) -> Result<WriteRequest, ApiError> {
    parse_write(raw.get().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_laid_out_differently_has_the_same_fingerprint() {
        let a =
            request_fingerprint(br#"{"namespace":"n","payload":{"a":1,"b":[1,{"y":2,"x":1}]}}"#);
        let b = request_fingerprint(
            br#"{ "payload": { "b": [1, {"x": 1, "y": 2}], "a": 1 }, "namespace": "n" }"#,
        );
        let c =
            request_fingerprint(br#"{"namespace":"n","payload":{"a":2,"b":[1,{"y":2,"x":1}]}}"#);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn traceparents() {
        assert!(valid_traceparent(
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        ));
        assert!(!valid_traceparent(
            "00-00000000000000000000000000000000-b7ad6b7169203331-01"
        ));
        assert!(!valid_traceparent(
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01"
        ));
        assert!(!valid_traceparent("garbage"));
        let generated = trace_context(&WriteHeaders::default());
        assert!(valid_traceparent(generated.traceparent.as_deref().unwrap()));
    }
}
