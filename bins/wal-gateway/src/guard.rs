//! The concurrency guard: at most `WAL_MAX_CONCURRENT_REQUESTS` requests are
//! handled at once by one gateway; one more is answered `503
//! SERVICE_OVERLOADED` with `Retry-After` at once, before anything of it is
//! read, so a flood costs neither memory nor queueing delay for the requests
//! already admitted. Health and metrics endpoints are never refused (a
//! probe must see a busy gateway as alive). Together with the key check
//! before the body, the body read timeout and the header read timeout
//! (`serve`), this bounds what an unauthenticated or slow client can hold.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::AppState;

/// Paths the guard lets through whatever the load.
fn exempt(path: &str) -> bool {
    path == "/metrics" || path.starts_with("/api/v1/health")
}

/// The middleware.
pub async fn concurrency_guard(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    if exempt(req.uri().path()) {
        return next.run(req).await;
    }
    let Ok(_permit) = state.request_slots.clone().try_acquire_owned() else {
        state.metrics.overloaded.inc();
        return ApiError::Overloaded.into_response();
    };
    next.run(req).await
}
