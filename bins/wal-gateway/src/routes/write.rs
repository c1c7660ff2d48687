//! `POST /api/v1/wal/write` and `POST /api/v1/wal/write/batch`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tracing::Instrument;
use wal_core::request::BatchWriteRequest;

use crate::auth::{authenticate_writer, client_ip};
use crate::error::ApiError;
use crate::ingest::{self, WriteHeaders, WriteResponse};
use crate::metrics::{OperationLabels, WriteLabels};
use crate::request_context::RequestId;
use crate::routes::{read_body, require_json};
use crate::state::AppState;

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
}

fn write_headers(req_headers: &HeaderMap, request_id: String) -> WriteHeaders {
    WriteHeaders {
        request_id,
        idempotency_key: req_headers
            .get("idempotency-key")
            .map(|v| v.to_str().map(str::to_string).unwrap_or_default()),
        fingerprint: String::new(),
        traceparent: header(req_headers, "traceparent"),
        tracestate: header(req_headers, "tracestate"),
    }
}

fn status_label(result: &Result<WriteResponse, ApiError>) -> String {
    match result {
        Ok(r) if r.duplicate => "duplicate".into(),
        Ok(_) => "accepted".into(),
        Err(e) => e.code().as_str().to_ascii_lowercase(),
    }
}

/// `resp` with `Retry-After: secs`, when there are any.
fn with_retry_after(mut resp: Response, secs: Option<u64>) -> Response {
    if let Some(secs) = secs {
        resp.headers_mut()
            .insert("retry-after", axum::http::HeaderValue::from(secs));
    }
    resp
}

/// The namespace label: the name of an existing namespace, `_unknown` otherwise.
fn namespace_label(state: &AppState, namespace: &str) -> String {
    if state.namespaces.get(namespace).is_some() {
        namespace.to_string()
    } else {
        "_unknown".into()
    }
}

/// One entry of a batch answer: a write response or an error envelope.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum BatchItem {
    Accepted(WriteResponse),
    Failed { success: bool, error: Value },
}

fn record(
    state: &AppState,
    namespace: &str,
    operation: &'static str,
    status: String,
    started: Instant,
) {
    let namespace = namespace_label(state, namespace);
    state
        .metrics
        .requests
        .get_or_create(&WriteLabels {
            namespace: namespace.clone(),
            operation,
            status,
        })
        .inc();
    state
        .metrics
        .request_duration
        .get_or_create(&OperationLabels {
            namespace,
            operation,
        })
        .observe(started.elapsed().as_secs_f64());
}

/// Write one message to the log.
#[utoipa::path(
    post,
    path = "/api/v1/wal/write",
    tag = "write",
    request_body = wal_core::request::WriteRequest,
    params(
        ("X-API-Key" = String, Header, description = "API key"),
        ("X-Request-ID" = Option<String>, Header, description = "Echoed; generated when absent"),
        ("Idempotency-Key" = Option<String>, Header, description = "A repeat of the same request within the dedup window returns the first messageId with `duplicate: true`, `durable` no more than what is known of the first write (`UNKNOWN` + `Retry-After` while unresolved); another request with the key is refused (422 IDEMPOTENCY_KEY_REUSED)"),
        ("traceparent" = Option<String>, Header, description = "W3C trace context"),
    ),
    responses(
        (status = 202, description = "Recorded", body = WriteResponse),
        (status = 400, description = "VALIDATION_FAILED"),
        (status = 401, description = "UNAUTHORIZED"),
        (status = 403, description = "FORBIDDEN"),
        (status = 404, description = "NAMESPACE_NOT_FOUND"),
        (status = 409, description = "NAMESPACE_DISABLED"),
        (status = 413, description = "MESSAGE_SIZE_LIMIT_EXCEEDED"),
        (status = 415, description = "UNSUPPORTED_MEDIA_TYPE"),
        (status = 422, description = "IDEMPOTENCY_KEY_REUSED"),
        (status = 429, description = "RATE_LIMITED"),
        (status = 503, description = "PRODUCER_UNAVAILABLE (durable FALSE or UNKNOWN)"),
    )
)]
pub async fn write(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let request_id = parts
        .extensions
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let mut namespace = String::new();
    let result: Result<WriteResponse, ApiError> = async {
        require_json(&parts.headers)?;
        // The key first: an unknown caller costs no body read.
        let ip = client_ip(&parts.extensions, &parts.headers, &state.forwarded);
        let caller = authenticate_writer(&state.keys, &state.namespaces, &parts.headers, ip)?;
        let bytes = read_body(&state, body).await?;
        let write = ingest::parse_write(&bytes)?;
        namespace = write.normalized_namespace();
        let ns = ingest::resolve_namespace(&state, &caller, &write)?;
        ingest::admit(&state, &ns, 1).await?;
        let mut headers = write_headers(&parts.headers, request_id);
        if headers.idempotency_key.is_some() {
            headers.fingerprint = ingest::request_fingerprint(&bytes);
        }
        let prepared = ingest::prepare(&state, ns.clone(), write, &headers)?;
        let span = tracing::info_span!("publish", namespace = %ns.name, message_id = %prepared.message.envelope.id);
        let mut results = ingest::publish(&state, &ns, vec![prepared.message]).instrument(span).await;
        results.pop().unwrap_or_else(|| Err(ApiError::Internal("no publish outcome".into())))
    }
    .await;
    record(&state, &namespace, "write", status_label(&result), started);
    match result {
        Ok(resp) => with_retry_after(
            (StatusCode::ACCEPTED, Json(&resp)).into_response(),
            resp.retry_after_secs,
        ),
        Err(e) => e.into_response(),
    }
}

/// Write several messages in one request (one backend round trip per namespace).
#[utoipa::path(
    post,
    path = "/api/v1/wal/write/batch",
    tag = "write",
    request_body = wal_core::request::BatchWriteRequest<'static>,
    params(
        ("X-API-Key" = String, Header, description = "API key"),
        ("Idempotency-Key" = Option<String>, Header, description = "Message i is deduplicated under `<key>:<i>`"),
    ),
    responses(
        (status = 202, description = "Every message recorded; `results` in request order"),
        (status = 207, description = "Some messages failed; each result is a write response or an error envelope"),
        (status = 400, description = "VALIDATION_FAILED (the batch itself)"),
        (status = 401, description = "UNAUTHORIZED"),
    )
)]
pub async fn write_batch(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let request_id = parts
        .extensions
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    match batch_inner(&state, parts, body, request_id, started).await {
        Ok((status, results)) => {
            // The soonest a retry of an UNKNOWN duplicate may learn more.
            let retry_after = results
                .iter()
                .filter_map(|r| match r {
                    BatchItem::Accepted(a) => a.retry_after_secs,
                    BatchItem::Failed { .. } => None,
                })
                .min();
            with_retry_after(
                (status, Json(json!({ "results": results }))).into_response(),
                retry_after,
            )
        }
        Err(e) => {
            record(
                &state,
                "_unknown",
                "batch",
                e.code().as_str().to_ascii_lowercase(),
                started,
            );
            e.into_response()
        }
    }
}

async fn batch_inner(
    state: &AppState,
    parts: axum::http::request::Parts,
    body: axum::body::Body,
    request_id: String,
    started: Instant,
) -> Result<(StatusCode, Vec<BatchItem>), ApiError> {
    require_json(&parts.headers)?;
    // The key first: an unknown caller costs no body read.
    let ip = client_ip(&parts.extensions, &parts.headers, &state.forwarded);
    let caller = authenticate_writer(&state.keys, &state.namespaces, &parts.headers, ip)?;
    let bytes = read_body(state, body).await?;
    let batch: BatchWriteRequest<'_> = ingest::parse_json_borrowed(&bytes)?;
    if batch.messages.is_empty() {
        return Err(ApiError::field(
            "messages",
            "must contain at least one message",
        ));
    }
    if batch.messages.len() > state.config.max_batch {
        return Err(ApiError::field(
            "messages",
            format!("at most {} messages per batch", state.config.max_batch),
        ));
    }
    let base = write_headers(&parts.headers, request_id);
    let n = batch.messages.len();
    let mut results: Vec<Option<Result<WriteResponse, ApiError>>> = (0..n).map(|_| None).collect();

    // 1. Parse and resolve each message.
    let mut resolved = Vec::new();
    let mut names: Vec<String> = vec![String::new(); n];
    for (i, raw) in batch.messages.iter().enumerate() {
        let attempt = ingest::parse_batch_item(raw).and_then(|w| {
            names[i] = w.normalized_namespace();
            let ns = ingest::resolve_namespace(state, &caller, &w)?;
            Ok((w, ns))
        });
        match attempt {
            Ok((w, ns)) => resolved.push((i, w, ns)),
            Err(e) => results[i] = Some(Err(e.prefixed(i))),
        }
    }
    // 2. Rate limits: one token per message, per namespace.
    let mut costs: std::collections::BTreeMap<
        String,
        (std::sync::Arc<wal_namespace::Namespace>, u32),
    > = Default::default();
    for (_, _, ns) in &resolved {
        costs
            .entry(ns.name.clone())
            .or_insert_with(|| (ns.clone(), 0))
            .1 += 1;
    }
    let mut refused: std::collections::BTreeMap<String, ApiError> = Default::default();
    for (name, (ns, cost)) in &costs {
        if let Err(e) = ingest::admit(state, ns, *cost).await {
            refused.insert(name.clone(), e);
        }
    }
    // 3. Validate and enrich.
    let mut prepared = Vec::new();
    for (i, w, ns) in resolved {
        if let Some(e) = refused.get(&ns.name) {
            results[i] = Some(Err(e.clone()));
            continue;
        }
        let mut headers = base.clone();
        headers.idempotency_key = base.idempotency_key.as_ref().map(|k| format!("{k}:{i}"));
        if headers.idempotency_key.is_some() {
            headers.fingerprint = ingest::request_fingerprint(batch.messages[i].get().as_bytes());
        }
        match ingest::prepare(state, ns, w, &headers) {
            Ok(p) => prepared.push((i, p)),
            Err(e) => results[i] = Some(Err(e.prefixed(i))),
        }
    }
    // 4. Publish, one round trip per namespace.
    for (_, (ns, items)) in ingest::group_by_namespace(prepared) {
        let (indices, messages): (Vec<usize>, Vec<_>) = items.into_iter().unzip();
        for (i, r) in indices
            .into_iter()
            .zip(ingest::publish(state, &ns, messages).await)
        {
            results[i] = Some(r);
        }
    }

    // 5. Answers in request order, and one count per (namespace, outcome).
    let mut all_ok = true;
    let mut counts: std::collections::BTreeMap<(String, String), u64> = Default::default();
    let out = results
        .into_iter()
        .zip(names)
        .map(|(r, name)| {
            let r = r.unwrap_or_else(|| Err(ApiError::Internal("unprocessed batch item".into())));
            *counts.entry((name, status_label(&r))).or_default() += 1;
            match r {
                Ok(resp) => BatchItem::Accepted(resp),
                Err(e) => {
                    all_ok = false;
                    BatchItem::Failed {
                        success: false,
                        error: e.error_body(),
                    }
                }
            }
        })
        .collect();
    for ((name, status), count) in counts {
        let namespace = namespace_label(state, &name);
        state
            .metrics
            .requests
            .get_or_create(&WriteLabels {
                namespace: namespace.clone(),
                operation: "batch",
                status,
            })
            .inc_by(count);
        state
            .metrics
            .request_duration
            .get_or_create(&OperationLabels {
                namespace,
                operation: "batch",
            })
            .observe(started.elapsed().as_secs_f64());
    }
    Ok((
        if all_ok {
            StatusCode::ACCEPTED
        } else {
            StatusCode::MULTI_STATUS
        },
        out,
    ))
}
