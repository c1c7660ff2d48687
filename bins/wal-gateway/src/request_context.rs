//! Per-request context: the `X-Request-ID` (echoed when valid, generated
//! otherwise, returned on every response), the request span, HTTP metrics,
//! and the `metadata` block of error envelopes.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::error::ErrorMarker;
use crate::metrics::{HttpLabels, RouteLabels};
use crate::state::AppState;

/// The request id of the current request (a request extension).
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// Header carrying the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

fn valid_request_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    (!s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic()))
        .then(|| s.to_string())
}

/// Current time as an RFC 3339 string with milliseconds.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The middleware.
pub async fn request_context(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(valid_request_id)
        .unwrap_or_else(|| ulid::Ulid::new().to_string());
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    req.extensions_mut().insert(RequestId(request_id.clone()));

    let span = tracing::info_span!("request", %method, %route, request_id = %request_id);
    let mut resp = next.run(req).instrument(span.clone()).await;

    if resp.extensions().get::<ErrorMarker>().is_some() {
        resp = add_error_metadata(resp, &request_id, &path, method.as_str()).await;
    }
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert(REQUEST_ID_HEADER, v);
    }

    let status = resp.status().as_u16();
    state
        .metrics
        .http_requests
        .get_or_create(&HttpLabels {
            method: method.to_string(),
            route: route.clone(),
            status,
        })
        .inc();
    state
        .metrics
        .http_duration
        .get_or_create(&RouteLabels {
            method: method.to_string(),
            route,
        })
        .observe(started.elapsed().as_secs_f64());
    span.in_scope(|| {
        tracing::debug!(
            status,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "answered"
        )
    });
    resp
}

/// Adds `metadata {requestId, timestamp, path, method}` to an error envelope.
async fn add_error_metadata(
    resp: Response,
    request_id: &str,
    path: &str,
    method: &str,
) -> Response {
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let mut json: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(_) => return Response::from_parts(parts, Body::from(bytes)),
    };
    json["metadata"] = serde_json::json!({
        "requestId": request_id,
        "timestamp": now_rfc3339(),
        "path": path,
        "method": method,
    });
    let out = serde_json::to_vec(&json).unwrap_or_default();
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(out))
}
