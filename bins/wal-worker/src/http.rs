//! The worker's small HTTP surface (`WAL_WORKER_LISTEN`): `/metrics`,
//! `/health/liveness`, `/health/readiness` (also under `/api/v1/`).
//!
//! * liveness: the supervisor loop completed a pass recently (it is the
//!   loop that keeps namespaces consumed; a wedged one means a dead worker);
//! * readiness: Redis answers a `PING` and the namespace store answers.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::clock::now_ms;
use crate::context::Shared;

/// The routes.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health/liveness", get(liveness))
        .route("/health/readiness", get(readiness))
        .route("/api/v1/health/liveness", get(liveness))
        .route("/api/v1/health/readiness", get(readiness))
        .with_state(shared)
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        shared.metrics.render(),
    )
        .into_response()
}

async fn liveness(State(shared): State<Arc<Shared>>) -> Response {
    let since_tick_ms = now_ms().saturating_sub(shared.supervisor_tick_ms.load(Ordering::Relaxed));
    let limit = (shared.config.store.refresh() * 10).max(Duration::from_secs(30));
    let alive = since_tick_ms <= limit.as_millis() as u64;
    let status = if alive {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if alive { "ok" } else { "stalled" },
        "uptimeSeconds": shared.started.elapsed().as_secs(),
        "msSinceSupervisorPass": since_tick_ms,
    });
    (status, Json(body)).into_response()
}

async fn readiness(State(shared): State<Arc<Shared>>) -> Response {
    let started = Instant::now();
    let redis = shared.redis.ping().await;
    let redis_ms = started.elapsed().as_secs_f64() * 1000.0;
    let store = shared.namespaces.is_db_reachable().await;
    let ready = redis.is_ok() && store;
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": {
            "redis": {"ok": redis.is_ok(), "latencyMs": redis_ms, "error": redis.err().map(|e| e.to_string())},
            "namespaceStore": {"ok": store},
        },
        "namespaces": shared.namespaces.snapshot().len(),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}
