//! HTTP handlers, one module per resource, and the router that mounts them.

pub mod dlq;
pub mod docs;
pub mod health;
pub mod namespaces;
pub mod params;
pub mod status;
pub mod write;

use std::sync::Arc;

use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::Router;

use crate::error::ApiError;
use crate::state::AppState;

/// The whole HTTP surface of the gateway.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/api/v1/wal/write", post(write::write))
        .route("/api/v1/wal/write/batch", post(write::write_batch))
        .route(
            "/api/v1/namespaces",
            post(namespaces::create).get(namespaces::list),
        )
        .route("/api/v1/namespaces/validate", post(namespaces::validate))
        .route(
            "/api/v1/namespaces/{name}",
            get(namespaces::get_one)
                .put(namespaces::update)
                .patch(namespaces::patch)
                .delete(namespaces::delete),
        )
        .route("/api/v1/namespaces/{name}/enable", post(namespaces::enable))
        .route(
            "/api/v1/namespaces/{name}/disable",
            post(namespaces::disable),
        )
        .route(
            "/api/v1/wal/message/{message_id}",
            get(status::message_status),
        )
        .route(
            "/api/v1/wal/namespace/{ns}/status",
            get(status::namespace_status),
        )
        .route(
            "/api/v1/wal/namespace/{ns}/dlq",
            get(dlq::list).delete(dlq::purge),
        )
        .route(
            "/api/v1/wal/namespace/{ns}/dlq/requeue",
            post(dlq::requeue_by_filter),
        )
        .route(
            "/api/v1/wal/namespace/{ns}/dlq/{message_id}",
            get(dlq::inspect),
        )
        .route(
            "/api/v1/wal/namespace/{ns}/dlq/{message_id}/requeue",
            post(dlq::requeue_message),
        )
        .route("/api/v1/health", get(health::health))
        .route("/api/v1/health/readiness", get(health::readiness))
        .route("/api/v1/health/liveness", get(health::liveness))
        .route("/metrics", get(health::metrics))
        .merge(docs::docs_router())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::guard::concurrency_guard,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::request_context::request_context,
        ))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("No such route".into())
}

/// Checks the body is declared as JSON (`application/json` or `…+json`).
pub fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let ct = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json")) {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType)
    }
}

/// Reads the whole body, refusing more than `WAL_MAX_BODY_BYTES` with `413`
/// and a body that takes longer than `WAL_BODY_READ_TIMEOUT_MS` with `408`
/// (a client trickling its body cannot hold a request slot for ever).
pub async fn read_body(state: &AppState, body: axum::body::Body) -> Result<bytes::Bytes, ApiError> {
    let limit = state.config.max_body_bytes;
    let read = axum::body::to_bytes(body, limit);
    let Ok(read) = tokio::time::timeout(state.config.body_read_timeout(), read).await else {
        return Err(ApiError::RequestTimeout);
    };
    read.map_err(|e| {
        let text = format!("{e}");
        if text.contains("length limit") {
            ApiError::TooLarge {
                actual: None,
                max: limit,
            }
        } else {
            ApiError::field("body", format!("could not read the request body: {text}"))
        }
    })
}
